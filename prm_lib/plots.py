"""Figures for the chapters: token strips, step scores, aggregations, best-of-N curves, calibration, first-mistake
accuracy.

Each function draws on a new matplotlib figure (or the ``ax`` given) and returns
the figure, so a notebook shows it and a script can ``fig.savefig("x.png")``.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .metrics import calibration_bins

GOOD, DOUBT, BAD = "#2e7d32", "#ef8f00", "#c62828"


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def token_strip(
    tokens: Sequence[str],
    marks: set[int] | Sequence[int],
    title: str = "",
    color: str = GOOD,
    per_row: int = 16,
    ax: Axes | None = None,
) -> Figure:
    """Tokens as a row of cells, wrapped every ``per_row``, each with its index; the ``marks`` positions
    coloured. For where a PRM reads its step scores: "\\n" is drawn as ⏎ and a space as ␣."""
    marked = set(marks)
    if any(not 0 <= m < len(tokens) for m in marked):
        raise ValueError(f"marks {sorted(marked)} outside the {len(tokens)} tokens")
    n_rows = max(1, -(-len(tokens) // per_row))
    fig, ax = _axes(ax, (11, 0.5 + 0.62 * n_rows))
    for i, token in enumerate(tokens):
        row, col = divmod(i, per_row)
        y = n_rows - 1 - row
        ax.add_patch(plt.Rectangle((col, y + 0.08), 0.94, 0.62, color=color if i in marked else "#e8e8e8"))
        label = token.replace("\n", "⏎").replace(" ", "␣") or "∅"
        ax.text(col + 0.47, y + 0.39, label, ha="center", va="center", fontsize=8.5,
                color="white" if i in marked else "black")
        ax.text(col + 0.47, y + 0.0, str(i), ha="center", va="center", fontsize=6, color="#777777")
    ax.set_xlim(0, per_row)
    ax.set_ylim(-0.15, n_rows)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


def step_scores(
    steps: Sequence[str],
    probs: Sequence[float],
    title: str = "P(step is correct)",
    threshold: float = 0.5,
    labels: Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One bar per step, its text beside it, red below ``threshold``; the first flagged step is marked.

    Unlike the naive tutorial's chart, the step text sits in the tick labels (not over the bars, where
    short bars hid it), unscored (NaN) steps are shown as such, and true labels can be overlaid.
    """
    if len(steps) != len(probs):
        raise ValueError(f"{len(steps)} steps for {len(probs)} probabilities")
    if labels is not None and len(labels) != len(steps):
        raise ValueError(f"{len(steps)} steps for {len(labels)} labels")
    n = len(steps)
    fig, ax = _axes(ax, (9, 1.0 + 0.55 * n))
    p = np.asarray(probs, dtype=np.float64)
    colors = [("lightgray" if np.isnan(x) else GOOD if x >= max(threshold, 0.7) else DOUBT if x >= threshold else BAD) for x in p]
    y = np.arange(n)
    ax.barh(y, np.nan_to_num(p), color=colors)
    flagged = next((i for i, x in enumerate(p) if x < threshold), None)
    for i, x in enumerate(p):
        text = "unscored" if np.isnan(x) else f"{x:.2f}"
        if i == flagged:
            text += "  ← first flagged step"
        ax.text((0 if np.isnan(x) else x) + 0.01, i, text, va="center", fontsize=9)
    names = [f"{i + 1}. " + textwrap.shorten(s, 48, placeholder="…") for i, s in enumerate(steps)]
    if labels is not None:
        names = [f"{name}  [{'✓' if lab >= 0.5 else '✗'}]" for name, lab in zip(names, labels)]
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    ax.axvline(threshold, color="gray", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("P(step is correct)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def best_of_n(
    ns: Sequence[int],
    curves: Mapping[str, Sequence[float]],
    title: str = "Best-of-N accuracy",
    ax: Axes | None = None,
    intervals: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> Figure:
    """Accuracy against N (log2 axis), one line per selector; pass@N, if given, dashed. ``intervals`` maps a
    selector to its (low, high) bounds at each N (``selection.bootstrap_curve``), drawn as a band, so a reader
    sees which gaps the problems' sample can tell apart."""
    fig, ax = _axes(ax, (7, 4.5))
    intervals = intervals or {}
    for name in intervals:
        if name not in curves:
            raise ValueError(f"an interval for {name!r}, which has no curve")
    for name, acc in curves.items():
        if len(acc) != len(ns):
            raise ValueError(f"{name}: {len(acc)} values for {len(ns)} values of N")
        style = dict(linestyle="--", color="black") if name.lower().startswith("pass") else {}
        (line,) = ax.plot(ns, acc, marker="o", label=name, **style)
        if name in intervals:
            low, high = intervals[name]
            if len(low) != len(ns) or len(high) != len(ns):
                raise ValueError(f"{name}: interval bounds for {len(low)} and {len(high)} values of N, not {len(ns)}")
            ax.fill_between(ns, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ns), [str(n) for n in ns])
    ax.set_xlabel("N (candidates per problem)")
    ax.set_ylabel("accuracy of the chosen answer")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def aggregation_comparison(
    values: Mapping[str, float],
    title: str = "Which aggregation separates right from wrong?",
    xlabel: str = "AUROC of the solution score",
    baseline: float | None = 0.5,
    ax: Axes | None = None,
) -> Figure:
    """Horizontal bars, best at the top, each labelled with its value."""
    fig, ax = _axes(ax, (7, 0.8 + 0.45 * len(values)))
    items = sorted(values.items(), key=lambda kv: -kv[1])
    y = np.arange(len(items))
    ax.barh(y, [v for _, v in items], color="#1565c0")
    for i, (_, v) in enumerate(items):
        ax.text(v + 0.005, i, f"{v:.3f}", va="center", fontsize=9)
    ax.set_yticks(y, [k for k, _ in items])
    ax.invert_yaxis()
    if baseline is not None:
        ax.axvline(baseline, color="gray", linestyle="--", linewidth=1)
    ax.set_xlim(min(0.4, min(v for _, v in items) - 0.05), 1.05)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def calibration(
    probs: Sequence[float],
    targets: Sequence[float],
    n_bins: int = 10,
    title: str = "Calibration of step probabilities",
    ax: Axes | None = None,
) -> Figure:
    """Reliability diagram: observed rate of correct steps against the mean prediction, per bin;
    the diagonal is perfect calibration; marker area shows how many steps each bin holds."""
    table = calibration_bins(probs, targets, n_bins)
    fig, ax = _axes(ax, (5, 5))
    filled = table["count"] > 0
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfectly calibrated")
    sizes = 20 + 300 * table["count"][filled] / table["count"].max()
    ax.plot(table["mean_prob"][filled], table["observed"][filled], color="#1565c0", linewidth=1)
    ax.scatter(table["mean_prob"][filled], table["observed"][filled], s=sizes, color="#1565c0", zorder=3,
               label=f"PRM (ECE {table['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(step correct)")
    ax.set_ylabel("observed fraction correct")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def first_mistake_comparison(
    measured: Mapping[str, Mapping[str, Mapping[str, float]]],
    published: Mapping[str, Mapping[str, float]],
    task_names: Mapping[str, str] | None = None,
    title: str = "First-mistake accuracy",
    ax: Axes | None = None,
) -> Figure:
    """Per task, each measured method's accuracy as a dot with its 95% interval (``measured[method][task]``
    holds ``accuracy``, ``low`` and ``high`` in percent, as ``first_mistake.summary`` gives them), beside each
    published figure (``published[source][task]``, percent) as a short horizontal mark: measured on other
    traces, so a number to read against, not a point of the same sample."""
    tasks = list(next(iter(measured.values())))
    for method, by_task in measured.items():
        if list(by_task) != tasks:
            raise ValueError(f"{method}: tasks {list(by_task)}, not {tasks}")
    names = [textwrap.fill((task_names or {}).get(t, t), 14) for t in tasks]
    fig, ax = _axes(ax, (8.5, 4.5))
    x = np.arange(len(tasks))
    width = 0.6 / max(1, len(measured))
    for k, (method, by_task) in enumerate(measured.items()):
        xs = x - 0.3 + width * (k + 0.5)
        acc = np.array([by_task[t]["accuracy"] for t in tasks])
        low = np.array([by_task[t]["low"] for t in tasks])
        high = np.array([by_task[t]["high"] for t in tasks])
        ax.errorbar(xs, acc, yerr=[acc - low, high - acc], fmt="o", capsize=4, label=method)
    markers = ["_", "x", "+", "1", "2"]
    for k, (source, by_task) in enumerate(published.items()):
        values = [by_task.get(t, np.nan) for t in tasks]
        ax.scatter(x + 0.38, values, marker=markers[k % len(markers)], s=160, color=f"C{len(measured) + k}",
                   label=f"{source} (published)", zorder=3)
    ax.set_xticks(x, names, fontsize=9)
    ax.set_ylabel("accuracy (%): first mistake named exactly")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
