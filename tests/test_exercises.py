"""Exercises: every chapter has 3-5 with worked solutions; the student edition has none of the
solutions and every stub; reference solutions pass their checks, stubs and wrong answers fail."""

import contextlib
import io
import re
import sys
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
import yaml

from prm_lib.course.exercises import EXERCISES, ExerciseFailed, check

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the student edition is course tooling, not part of prm_lib
from student_edition import (SOLUTION_TAG, STUB_TAG, build_student_source, clear_stub_outputs,  # noqa: E402
                             exercise_labels, main as student_edition_main, solution_labels, student_notebook)

CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def read(path):
    return nbformat.read(path, as_version=4)


def cells_tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def run_cell(source):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<cell>", "exec"), {})
    return out.getvalue()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_three_to_five_exercises_each_with_one_solution(path):
    nb = read(path)
    labels = exercise_labels(nb)
    chapter = int(path.name[:2])
    assert 3 <= len(labels) <= 5, labels
    assert labels == [f"ex-{chapter}-{k}" for k in range(1, len(labels) + 1)]
    assert solution_labels(nb) == labels  # one solution per exercise, in order
    assert len(cells_tagged(nb, SOLUTION_TAG)) == len(cells_tagged(nb, STUB_TAG)) >= 1  # a code exercise per chapter


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_edition_keeps_exercises_and_stubs_and_drops_every_solution(path):
    full = read(path)
    student = student_notebook(full)
    assert exercise_labels(student) == exercise_labels(full)
    assert solution_labels(student) == [] and not cells_tagged(student, SOLUTION_TAG)
    assert not any("{solution" in c.source for c in student.cells)
    stubs = cells_tagged(student, STUB_TAG)
    assert len(stubs) == len(cells_tagged(full, STUB_TAG))
    for stub in stubs:
        assert "NotImplementedError" in stub.source and "check(" in stub.source
        assert not stub.outputs and "remove-cell" not in stub.metadata["tags"]
    # everything else is kept, outputs included: the chapter reads the same
    kept = [c.source for c in student.cells if STUB_TAG not in c.metadata.get("tags", [])]
    assert all(any(c.source == k for c in full.cells) for k in kept)
    assert len(student.cells) < len(full.cells)


def reference_solutions():
    for path in CHAPTERS:
        for cell in cells_tagged(read(path), SOLUTION_TAG):
            exercise = re.search(r'check\("([0-9.]+)"', cell.source).group(1)
            yield pytest.param(cell.source, id=f"{path.stem}-{exercise}")


@pytest.mark.parametrize("source", list(reference_solutions()))
def test_reference_solutions_pass_their_checks(source):
    assert "checks passed" in run_cell(source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_chapters_hold_no_stub_errors(path):
    assert all(not c.outputs for c in cells_tagged(read(path), STUB_TAG))  # make notebooks clears them


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stubs_fail_their_checks(path):
    for stub in cells_tagged(read(path), STUB_TAG):
        with pytest.raises(ExerciseFailed, match="not implemented yet"):
            run_cell(stub.source)


def test_every_check_belongs_to_a_chapter_exercise():
    used = {re.search(r'check\("([0-9.]+)"', c.source).group(1) for p in CHAPTERS for c in cells_tagged(read(p), SOLUTION_TAG)}
    assert used == set(EXERCISES)


# Plausible wrong answers: each check must catch them.
def _harmonic_no_mask(p, m):
    return p.shape[1] / (1.0 / p.clamp_min(1e-12)).sum(dim=1)


def _survivors_unrepeated(partial, scores, n, w):
    order = sorted(range(len(partial)), key=lambda i: -scores[i])
    return [partial[i] for i in order[:n]]


def _survivors_last_of_ties(partial, scores, n, w):
    order = sorted(range(len(partial)), key=lambda i: (-scores[i], -i))
    kept = [partial[i] for i in order[: n // w]]
    return [kept[j % len(kept)] for j in range(n)]


def _step_ends_before_separator(tok, problem, steps):
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]
    out, pos = ids(problem) + ids("\n\n"), []
    for s in steps:
        out += ids(s)
        pos.append(len(out) - 1)  # the step's own last token: one short of the separator
        out += ids("\n\n")
    return out, pos


def _step_ends_joined(tok, problem, steps):  # tokenizing the joined text lets pieces merge across boundaries
    text = "\n\n".join([problem, *steps]) + "\n\n"
    out = tok(text, add_special_tokens=False)["input_ids"]
    return out, [i for i, t in enumerate(out) if "\n\n" in tok.decode([t])][1:]


def _step(model, batch, optimizer, scheduler, max_norm, loss_fn=None, clip=True, schedule=True, zero=True):
    from prm_lib.loss import step_bce_loss

    logits = model(batch)
    loss = loss_fn(logits, batch) if loss_fn else step_bce_loss(logits, batch.labels, batch.step_mask)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    if schedule:
        scheduler.step()
    if zero:
        optimizer.zero_grad()
    return loss.item()


def _signal(sample, kind, orm_everywhere=False, orm_from_steps=False, raw_labels=False):
    n = len(sample.steps)
    if kind == "prm":
        return [float(x) for x in sample.labels] if raw_labels else [float(t) for t in sample.targets]
    if orm_from_steps or "answer" not in sample.meta:
        outcome = float(sample.is_correct) if not orm_from_steps else float(sample.targets[-1] >= 0.5)
    else:
        outcome = float(sample.meta["final_answer"] == sample.meta["answer"])
    return [outcome] * n if orm_everywhere else [None] * (n - 1) + [outcome]


def _accuracy_at(probs, first, threshold, rule="first"):
    hits = 0
    for p, e in zip(probs, first):
        below = [i for i, x in enumerate(p) if x < threshold]
        if rule == "lowest":
            below = [min(range(len(p)), key=p.__getitem__)] if below else []
        hits += (below[0] if below else -1) == e
    return hits / len(probs)


def _fitted(vp, vf, tp, tf, grid, fit_on_test=False, rule="first"):
    fp, ff = (tp, tf) if fit_on_test else (vp, vf)
    best = max(grid, key=lambda t: (_accuracy_at(fp, ff, t, rule), -abs(t - 0.5)))
    return _accuracy_at(tp, tf, best, rule)


WRONG = {
    "1.3": [lambda labels: labels.index(-1),  # no error: ValueError instead of -1
            lambda labels: next((i for i, x in enumerate(labels) if x < 0), None),
            lambda labels: next((i + 1 for i, x in enumerate(labels) if x < 0), -1)],
    "1.4": [lambda s, k: _signal(s, k, orm_everywhere=True),  # the ORM's label on every step
            lambda s, k: _signal(s, k, orm_from_steps=True),  # the outcome read off the last step's label
            lambda s, k: _signal(s, k, raw_labels=True),  # the PRM's targets as labels of -1 and +1
            lambda s, k: [float(s.is_correct)] * (len(s.steps) - 1) + [float(s.is_correct)] if k == "orm"
            else [float(t) for t in s.targets]],  # the ORM's outcome as "every step right"
    "2.4": [_step_ends_before_separator, _step_ends_joined],
    "3.4": [lambda r, g: ([int(any(a == g for a in x)) for x in r], [sum(a == g for a in x) / len(x) for x in r]),  # int gold
            lambda r, g: ([int(any(a == str(g) for a in x)) for x in r], [float(any(a == str(g) for a in x)) for x in r])],
    "4.4": [lambda l, t, m: F.binary_cross_entropy_with_logits(l, t),  # padding counted
            lambda l, t, m: (F.binary_cross_entropy_with_logits(l, t, reduction="none") * m).sum() / m.numel()],
    "5.3": [lambda s, y: sum(p > n for p in [a for a, b in zip(s, y) if b] for n in [a for a, b in zip(s, y) if not b])
            / (sum(y) * (len(y) - sum(y))),  # ties count 0
            lambda s, y: sum(p >= n for p in [a for a, b in zip(s, y) if b] for n in [a for a, b in zip(s, y) if not b])
            / (sum(y) * (len(y) - sum(y)))],  # ties count 1
    "5.4": [lambda *a: _step(*a, clip=False), lambda *a: _step(*a, schedule=False), lambda *a: _step(*a, zero=False),
            lambda *a: _step(*a, loss_fn=lambda logits, b: F.binary_cross_entropy_with_logits(logits, b.labels))],  # padding counted
    "6.4": [_harmonic_no_mask,
            lambda p, m: (p * m).sum(dim=1) / m.sum(dim=1),  # arithmetic mean
            lambda p, m: torch.exp((torch.log(p.clamp_min(1e-12)) * m).sum(dim=1) / m.sum(dim=1))],  # geometric mean
    "7.4": [lambda s, a: max((x for x in a if x is not None), key=a.count, default=None),  # majority, ignores scores
            lambda s, a: a[max(range(len(s)), key=s.__getitem__)] if s else None],  # PRM best
    "8.3": [_survivors_unrepeated, _survivors_last_of_ties],
    "9.4": [lambda vp, vf, tp, tf, g: _fitted(vp, vf, tp, tf, g, fit_on_test=True),  # fitted on the test traces
            lambda vp, vf, tp, tf, g: _fitted(vp, vf, tp, tf, g, rule="lowest"),  # the lowest step, not the first below
            lambda vp, vf, tp, tf, g: _accuracy_at(tp, tf, 0.5)],  # no fitting
}


@pytest.mark.parametrize("exercise", sorted(WRONG))
def test_checks_fail_on_wrong_answers(exercise):
    assert set(WRONG) == set(EXERCISES)
    for wrong in WRONG[exercise]:
        with pytest.raises(ExerciseFailed, match=f"Exercise {exercise}"):
            check(exercise, wrong)


def test_unknown_exercise_is_an_error():
    with pytest.raises(ValueError, match="known: 1.3"):
        check("9.9", print)


def test_student_source_tree(tmp_path):
    out = build_student_source(ROOT, tmp_path / "student")
    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["execute"]["execute_notebooks"] == "off" and "launch_buttons" not in config
    assert "student edition" in config["title"]
    assert (out / "_toc.yml").read_text() == (ROOT / "_toc.yml").read_text()
    for path in CHAPTERS:
        nb = read(out / "book" / path.name)
        assert exercise_labels(nb) and not solution_labels(nb)
    # the book's local Sphinx extension travels with it, so the tree builds on its own
    for folder in config["sphinx"]["local_extensions"].values():
        assert sorted(p.name for p in (out / folder).glob("*.py")) == sorted(p.name for p in (ROOT / folder).glob("*.py"))
    with pytest.raises(ValueError, match="refusing"):
        build_student_source(ROOT, ROOT / "book" / "student")


def test_student_edition_command_builds_and_clears_stubs(tmp_path, capsys):
    assert student_edition_main(["build", "--root", str(ROOT), "--out", str(tmp_path / "student")]) == 0
    assert '"exercises"' in capsys.readouterr().out
    nb = read(CHAPTERS[0])
    stub = cells_tagged(nb, STUB_TAG)[0]
    stub.outputs = [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="", traceback=[])]
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    assert student_edition_main(["clear-stubs", str(tmp_path / "chapter.ipynb")]) == 0
    assert all(not c.outputs for c in cells_tagged(read(tmp_path / "chapter.ipynb"), STUB_TAG))
    assert clear_stub_outputs(tmp_path / "chapter.ipynb") == len(cells_tagged(nb, STUB_TAG))


def test_malformed_solution_blocks_are_errors():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("````{solution-start} ex-1-1\n````"), nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="no {solution-end}"):
        student_notebook(nb)
    nb.cells = [nbformat.v4.new_markdown_cell("Intro.\n\n````{solution} ex-1-1\nText\n````")]
    with pytest.raises(ValueError, match="must start its own Markdown cell"):
        student_notebook(nb)
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": [SOLUTION_TAG]})]
    with pytest.raises(ValueError, match="outside a"):
        student_notebook(nb)
