"""The course's drawn diagrams: the map of the course, the three ways to read a step score, the surprise reader.

They are drawn by code, not stored as images, so a chapter shows them on Colab as in the rendered
book. Each function returns its matplotlib figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

TRAINED, FROZEN, DATA, OUTPUT = "#cfe3f7", "#e6e6e6", "#fbe3c4", "#d5ecd4"


@dataclass(frozen=True)
class Box:
    """A labelled box, placed by its centre, in the diagram's own units."""

    x: float
    y: float
    w: float
    h: float
    text: str
    color: str = TRAINED

    def edge(self, side: str) -> tuple[float, float]:
        """The middle of one side: "left", "right", "top" or "bottom"."""
        dx, dy = {"left": (-1, 0), "right": (1, 0), "top": (0, 1), "bottom": (0, -1)}[side]
        return self.x + dx * self.w / 2, self.y + dy * self.h / 2


def _canvas(width: float, height: float, size: tuple[float, float]) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=size)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _draw(ax: plt.Axes, box: Box, fontsize: float = 9.5) -> Box:
    ax.add_patch(FancyBboxPatch((box.x - box.w / 2, box.y - box.h / 2), box.w, box.h,
                                boxstyle="round,pad=0.02,rounding_size=0.12", facecolor=box.color,
                                edgecolor="#555555", linewidth=1))
    ax.text(box.x, box.y, box.text, ha="center", va="center", fontsize=fontsize, wrap=True)
    return box


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str = "",
           fontsize: float = 8.5, offset: tuple[float, float] = (0.0, 0.12)) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#444444",
                                 linewidth=1.1, shrinkA=2, shrinkB=2))
    if label:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], label,
                ha="center", va="bottom", fontsize=fontsize, color="#333333")


def _legend(ax: plt.Axes, entries: list[tuple[str, str]], x: float, y: float) -> None:
    for color, text in entries:
        ax.add_patch(FancyBboxPatch((x, y - 0.12), 0.3, 0.24, boxstyle="round,pad=0.01",
                                    facecolor=color, edgecolor="#555555", linewidth=0.8))
        ax.text(x + 0.4, y, text, va="center", fontsize=8.5)
        x += 1.0 + 0.12 * len(text)  # the next entry starts after this one's text


def course_map() -> Figure:
    """Data, the PRM, folding step scores into one score, then selecting or searching, with each part's chapter."""
    fig, ax = _canvas(16, 5.4, (12.5, 4.2))
    data = _draw(ax, Box(1.8, 3.6, 3.3, 1.6, "Step-labelled data\nsynthetic solutions (ch. 3);\n"
                                             "real model solutions\nwith human labels (ch. 9)", DATA), 9)
    prm = _draw(ax, Box(6.0, 3.6, 3.4, 1.6, "The PRM\nbackbone + value head (ch. 2)\nloss (ch. 4)\ntraining (ch. 5)"), 9)
    scores = _draw(ax, Box(10.0, 3.6, 2.8, 1.6, "One score per step:\nP(step is correct)", OUTPUT), 9)
    fold = _draw(ax, Box(14.0, 3.6, 3.4, 1.6, "Fold into one score\nper solution:\nmin, prod, last, mean\n(ch. 6)"), 9)
    select = _draw(ax, Box(12.6, 0.9, 4.2, 1.2, "Select among N solutions:\nbest-of-N, weighted vote (ch. 7)", OUTPUT), 9)
    search = _draw(ax, Box(6.0, 0.9, 4.2, 1.2, "Guide a search step by step:\nbeam search (ch. 8)", OUTPUT), 9)
    _arrow(ax, data.edge("right"), prm.edge("left"), "train")
    _arrow(ax, prm.edge("right"), scores.edge("left"), "score")
    _arrow(ax, scores.edge("right"), fold.edge("left"))
    _arrow(ax, fold.edge("bottom"), (select.x + 1.4, select.edge("top")[1]))
    _arrow(ax, scores.edge("bottom"), (search.x + 1.6, search.edge("top")[1]))
    ax.text(8.9, 2.0, "prune partial solutions", ha="right", fontsize=8.5, color="#333333")
    ax.text(0.15, 5.05, "Chapter 1: why score every step, not only the answer (ORM against PRM)", fontsize=10,
            style="italic")
    return fig


def three_readouts() -> Figure:
    """Three ways published PRMs turn hidden states into a step score (chapter 7 reads each family)."""
    fig, ax = _canvas(15, 6.8, (12.5, 5.2))
    rows = [
        ("A value head (this course)", "… step 1, then \"\\n\\n\"", "hidden state at the last\ntoken of the separator",
         "one Linear → 1 logit", "sigmoid(logit)"),
        ("A classification head at a step token (Qwen2.5-Math-PRM; TRL's PRMTrainer at its separator)",
         "… step 1, then <extra_0>", "hidden state at\n<extra_0>", "new Linear → 2 logits", "softmax: P(positive label)"),
        ("The LM's own logits at a tag (Math-Shepherd)", "… step 1, then ки", "LM head's logits\nat the tag",
         "keep the logits of\n\"+\" and \"−\" only", "softmax over the two:\nP(\"+\")"),
    ]
    for k, (name, tokens, where, head, score) in enumerate(rows):
        y = 5.6 - 2.15 * k
        ax.text(0.15, y + 0.62, name, fontsize=9.5, weight="bold", va="bottom")
        a = _draw(ax, Box(1.8, y, 3.3, 0.9, tokens, DATA), 9)
        b = _draw(ax, Box(5.8, y, 3.0, 0.9, where), 9)
        c = _draw(ax, Box(9.6, y, 3.0, 0.9, head), 9)
        d = _draw(ax, Box(13.3, y, 3.0, 0.9, score, OUTPUT), 9)
        _arrow(ax, a.edge("right"), b.edge("left"))
        _arrow(ax, b.edge("right"), c.edge("left"))
        _arrow(ax, c.edge("right"), d.edge("left"))
    _legend(ax, [(DATA, "tokens in"), (TRAINED, "trained on step labels"), (OUTPUT, "step score")], 0.2, 0.2)
    return fig


def surprise_reader() -> Figure:
    """The course PRM: 8 trained layers and a value head, plus a frozen whole LM whose per-token surprise a
    trained gate reads and pools into each step's logit (``prm_lib.surprise.SurpriseReader``)."""
    fig, ax = _canvas(16, 6.6, (12.5, 5.2))
    tokens = _draw(ax, Box(1.6, 3.3, 2.8, 1.2, "problem and steps,\nas tokens", DATA), 9)
    frozen = _draw(ax, Box(5.6, 5.6, 3.4, 1.1, "the whole SmolLM2-135M\n(30 layers, frozen)", FROZEN), 9)
    surprise = _draw(ax, Box(10.4, 5.6, 4.4, 1.1, "surprise at each token (nats):\n"
                                                  "log p(its first choice) − log p(written)", FROZEN), 9)
    backbone = _draw(ax, Box(5.6, 1.2, 3.4, 1.1, "backbone: SmolLM2's\nfirst 8 layers", TRAINED), 9)
    gate = _draw(ax, Box(10.4, 3.4, 4.4, 1.2, "gate (from the hidden state) ×\n"
                                              "surprise, then a smooth max over\nthe step's tokens and those before", TRAINED), 9)
    head = _draw(ax, Box(10.4, 1.2, 4.4, 1.1, "value head (one Linear) at each\nstep end (its separator) → logit"), 9)
    out = _draw(ax, Box(14.6, 2.3, 2.4, 1.6, "logit − pooled\nsurprise,\nthen sigmoid:\nP(step correct)", OUTPUT), 9)
    _arrow(ax, tokens.edge("top"), frozen.edge("left"))
    _arrow(ax, tokens.edge("bottom"), backbone.edge("left"))
    _arrow(ax, frozen.edge("right"), surprise.edge("left"))
    _arrow(ax, surprise.edge("bottom"), gate.edge("top"))
    _arrow(ax, backbone.edge("right"), head.edge("left"))
    _arrow(ax, (backbone.x + 1.2, backbone.edge("top")[1]), gate.edge("left"))
    ax.text(6.9, 2.6, "hidden states", fontsize=8.5, color="#333333", ha="right")
    _arrow(ax, gate.edge("right"), (out.x - 0.5, out.edge("top")[1]))
    _arrow(ax, head.edge("right"), (out.x - 0.5, out.edge("bottom")[1]))
    _legend(ax, [(DATA, "tokens in"), (FROZEN, "frozen: computed once, never trained"),
                 (TRAINED, "trained together"), (OUTPUT, "step score")], 0.2, 0.15)
    return fig
