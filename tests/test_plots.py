"""Figures: each returns a matplotlib Figure with what it promises, and rejects mismatched input."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from prm_lib import plots  # noqa: E402


def test_step_scores_marks_the_first_flagged_step_and_unscored_steps():
    fig = plots.step_scores(["a.", "b.", "c.", "d."], [0.9, 0.3, 0.2, float("nan")], labels=[1, -1, -1, -1])
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert sum("first flagged" in t for t in texts) == 1 and "first flagged" in texts[1]
    assert "unscored" in texts[3]
    assert [t.get_text().endswith("[✗]") for t in ax.get_yticklabels()] == [False, True, True, True]
    assert len(ax.patches) == 4
    with pytest.raises(ValueError, match="3 steps for 2 probabilities"):
        plots.step_scores(["a", "b", "c"], [0.1, 0.2])


def test_best_of_n_aggregation_and_calibration_figures():
    fig = plots.best_of_n([1, 2, 4], {"PRM": [0.4, 0.5, 0.6], "pass@N": [0.4, 0.7, 0.9]})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and lines[1].get_linestyle() == "--"
    with pytest.raises(ValueError, match="2 values for 3 values of N"):
        plots.best_of_n([1, 2, 4], {"PRM": [0.4, 0.5]})
    fig = plots.aggregation_comparison({"min": 0.8, "last": 0.9})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["last", "min"]  # best first
    rng = np.random.default_rng(0)
    p = rng.random(500)
    fig = plots.calibration(p, (rng.random(500) < p).astype(float))
    assert "ECE" in fig.axes[0].get_legend().get_texts()[1].get_text()


def test_best_of_n_draws_each_interval_as_a_band_around_its_curve():
    ns = [1, 2, 4]
    fig = plots.best_of_n(ns, {"a": [0.5, 0.6, 0.7], "pass@N": [0.6, 0.8, 0.9]},
                          intervals={"a": ([0.4, 0.5, 0.6], [0.6, 0.7, 0.8])})
    bands = fig.axes[0].collections
    assert len(bands) == 1
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.4) and ys.max() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no curve"):
        plots.best_of_n(ns, {"a": [0.5, 0.6, 0.7]}, intervals={"b": ([0, 0, 0], [1, 1, 1])})
    with pytest.raises(ValueError, match="interval bounds"):
        plots.best_of_n(ns, {"a": [0.5, 0.6, 0.7]}, intervals={"a": ([0, 0], [1, 1])})


def test_first_mistake_comparison_draws_intervals_and_published_marks():
    measured = {"PRM": {"a": {"accuracy": 40.0, "low": 30.0, "high": 50.0}, "b": {"accuracy": 20.0, "low": 12.0, "high": 29.0}}}
    fig = plots.first_mistake_comparison(measured, {"GPT-4": {"a": 35.0, "b": 44.0}}, {"a": "task a"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["task a", "b"]
    line = ax.lines[0]  # the dots; the error bars are their own lines
    assert list(line.get_ydata()) == [40.0, 20.0]
    assert [list(c.get_offsets()[:, 1]) for c in ax.collections if c.get_offsets().size][-1] == [35.0, 44.0]
    assert "GPT-4 (published)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="tasks"):
        plots.first_mistake_comparison({**measured, "other": {"a": measured["PRM"]["a"]}}, {})


def test_token_strip_wraps_rows_and_colours_the_marks():
    from matplotlib.patches import Rectangle

    tokens = [f"t{i}" for i in range(20)]
    fig = plots.token_strip(tokens, {3, 19}, title="strip", per_row=8)
    cells = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(cells) == 20
    coloured = [i for i, p in enumerate(cells) if p.get_facecolor()[:3] != cells[0].get_facecolor()[:3]]
    assert coloured == [3, 19]
    assert fig.axes[0].get_ylim()[1] == 3  # 20 tokens, 8 a row: three rows
    with pytest.raises(ValueError, match="outside the 20 tokens"):
        plots.token_strip(tokens, {20})


def test_the_course_diagrams_draw_their_labelled_parts():
    from prm_lib.course import diagrams

    for draw, must_say in [(diagrams.course_map, ["ch. 3", "ch. 5", "ch. 6", "ch. 7", "ch. 8", "ch. 9"]),
                           (diagrams.three_readouts, ["<extra_0>", "Math-Shepherd", "sigmoid"]),
                           (diagrams.surprise_reader, ["frozen", "nats", "first 8 layers"])]:
        fig = draw()
        text = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert all(s in text for s in must_say), (draw.__name__, text)
        plt.close(fig)
