"""ProcessBench-style evaluation of a checkpoint: first-error F1 on a jsonl file (``python -m prm_lib eval``).

Chapter 7 of the course. ProcessBench (Zheng et al. 2024) marks where each solution's first
error is, or that it has none; a PRM predicts the first step it scores below a threshold
(``prm_lib.metrics``). This module reads such a file, scores what can be scored, fits or applies
the threshold (on the file, on a validation file, or on one subset such as gsm8k and applied to the
others), and reports
every record it had to leave out. The model is a prm_lib PRM or any adapter of ``prm_lib.scorers``.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from .data import read_processbench, subset_of
from .batching import encode_fitting
from .metrics import first_error_scores, fit_threshold
from .objectives import objective_of
from .steps import validate_solution


DEFAULT_THRESHOLD = 0.5  # P(correct) below which a step is predicted wrong, where no threshold can be fitted


def _subset_at(file: str, where: str) -> str | None:
    """The subset of the record at ``where`` (file:line) that could not be read as a ProcessBench record,
    if its line is still a JSON object (e.g. one missing its steps); else None."""
    with open(file, encoding="utf-8") as f:
        lines = f.readlines()
    try:
        record = json.loads(lines[int(where.rsplit(":", 1)[1]) - 1])
    except (json.JSONDecodeError, IndexError, ValueError):
        return None
    return subset_of(record) if isinstance(record, dict) else None


def _scored(prm: Any, file: str, progress: bool) -> tuple[list[list[float]], list[int], list[dict[str, Any]], int,
                                                           list[str | None]]:
    """Step scores, first errors and subsets of the records of ``file`` that can be scored; what could not,
    with the reason (and the subset where known); how many records there were."""
    skipped: list[tuple[str, str, str | None]] = []
    bad: list[tuple[str, str]] = []
    samples = read_processbench(file, skipped=bad)
    skipped += [(w, r, _subset_at(file, w)) for w, r in bad]
    n_records = len(samples) + len(bad)
    check = getattr(prm, "validate_item", None)  # an adapter's own refusals (prm_lib.scorers)
    usable = []
    for s in samples:
        try:
            validate_solution(s.problem, s.steps, None, prm.separator)
            if check is not None:
                check(s.problem, s.steps)
            usable.append(s)
        except (ValueError, TypeError) as err:
            skipped.append((f"{file}:{s.meta['source_line']}", str(err), subset_of(s.meta)))
    with warnings.catch_warnings():  # an over-long record is reported in `skipped` instead
        warnings.simplefilter("ignore")
        encoded, left_out = encode_fitting(prm.encode, [s.as_item() for s in usable])
    gone = set(left_out)
    for i in left_out:
        s = usable[i]
        skipped.append((f"{file}:{s.meta['source_line']}", f"longer than the model's max_length ({prm.max_length} "
                        "tokens): not even the problem and its first step fit", subset_of(s.meta)))
    kept = []
    for s, e in zip([s for i, s in enumerate(usable) if i not in gone], encoded):
        if e.truncated:
            skipped.append((f"{file}:{s.meta['source_line']}", f"longer than the model's max_length "
                            f"({prm.max_length} tokens): only {e.n_scored} of {e.n_steps} steps fit", subset_of(s.meta)))
        else:
            kept.append((s, e))
    probs = prm.score_encoded([e for _, e in kept], progress=progress) if kept else []
    skipped.sort(key=lambda x: int(x[0].rsplit(":", 1)[1]))
    listed = [{"where": w, "reason": r, **({"subset": sub} if sub is not None else {})} for w, r, sub in skipped]
    return probs, [s.first_error for s, _ in kept], listed, n_records, [subset_of(s.meta) for s, _ in kept]


def evaluate_processbench(
    prm: Any,
    path: str,
    threshold: float | None = None,
    fit_path: str | None = None,
    progress: bool = False,
    fit_subset: str | None = None,
) -> dict[str, Any]:
    """First-error F1 of ``prm`` on a ProcessBench-style jsonl file (``problem``, ``steps``, ``label``).

    The threshold is ``threshold`` if given, else fitted for F1 on ``fit_path`` (a validation
    file), else on the records of subset ``fit_subset`` and applied to the other subsets
    (``evaluate_by_subset``), else on the evaluated file itself, which overstates F1, and the
    result says so. A file with one class (only erroneous solutions, as some published localisation sets
    are, or only correct ones) cannot fit a threshold: ``DEFAULT_THRESHOLD`` is used unless one is given,
    and the accuracy on that class is reported, with F1 None and ``f1_missing`` saying why. Records that cannot be scored (malformed, a step the model cannot encode,
    longer than the model's ``max_length``) are left out, counted and listed in ``skipped``, never
    dropped silently. A model whose objective scores only whole solutions (an ORM) is refused:
    first-error F1 reads every step's score, and an ORM's are untrained below its last step.
    """
    kind = objective_of(prm)
    if not kind.scores_steps:
        raise ValueError(f"this checkpoint is an {kind.name.upper()} (trained on one outcome label per solution, "
                         "read at its last step): first-error F1 needs a trained score for every step, which it "
                         "does not have. Evaluate a PRM checkpoint instead, or compare the ORM on whole solutions "
                         "(PRMVerifier(orm, 'last'), best-of-N; chapter 7)")
    if fit_subset is not None:
        if threshold is not None or fit_path is not None:
            raise ValueError("fit_subset fits the threshold on one subset of the file: give no threshold or fit_path "
                             "with it")
        return evaluate_by_subset(prm, path, fit_subset, progress)

    probs, first_errors, skipped, n_records, _ = _scored(prm, path, progress)
    if not probs:
        raise ValueError(f"{path}: no record could be scored ({len(skipped)} skipped; first: "
                         f"{skipped[0]['reason'] if skipped else 'the file is empty'})")
    if threshold is not None:
        result = first_error_scores(probs, first_errors, threshold)
        fitted_on = None
    elif fit_path is not None:
        fit_probs, fit_errors, fit_skipped, _, _ = _scored(prm, fit_path, progress)
        if not fit_probs:
            raise ValueError(f"{fit_path}: no record could be scored to fit a threshold")
        result = first_error_scores(probs, first_errors, fit_threshold(fit_probs, fit_errors)["threshold"])
        fitted_on = fit_path
        result["n_skipped_fit"] = len(fit_skipped)
    elif len({e >= 0 for e in first_errors}) == 1:  # one class (say, only wrong solutions): no threshold to fit
        result = first_error_scores(probs, first_errors, DEFAULT_THRESHOLD)
        fitted_on = None
        result["threshold_note"] = (f"the file has one class, so no threshold can be fitted on it; the default "
                                    f"{DEFAULT_THRESHOLD} was used (give --threshold or --fit-data to choose)")
    else:
        result = fit_threshold(probs, first_errors)
        fitted_on = path
    result.update(threshold_fitted_on=fitted_on, n_records=n_records, n_skipped=len(skipped), skipped=skipped)
    return result


def _scores_or_reason(probs: list[list[float]], first_errors: list[int], threshold: float) -> dict[str, Any]:
    try:
        return first_error_scores(probs, first_errors, threshold)
    except ValueError as err:  # e.g. a subset with no correct (or no erroneous) solution: F1 is undefined
        return {"f1": None, "n": len(probs), "reason": str(err)}


def evaluate_by_subset(prm: Any, path: str, fit_subset: str = "gsm8k", progress: bool = False) -> dict[str, Any]:
    """Fit the threshold on the records of one subset (``fit_subset``, e.g. ProcessBench's gsm8k) and apply
    it to every other subset of the same file (``subset_of`` says which a record is in): no evaluated
    record helps choose the threshold it is judged by.

    The result has F1 and both accuracies per subset (``subsets``, each with its ``n_skipped``), their
    plain mean over the evaluated subsets (``f1_mean``, as ProcessBench averages its subsets), the
    scores of all evaluated records pooled at the top level (the keys ``eval`` always prints), and
    the fit subset's own (flattering) scores under ``fit``.
    """
    probs, first_errors, skipped, n_records, subsets = _scored(prm, path, progress)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(subsets):
        groups.setdefault(name if name is not None else "(no subset)", []).append(i)
    if fit_subset not in groups:
        raise ValueError(f"{path}: no scorable record of subset {fit_subset!r} to fit the threshold on (subsets "
                         f"found: {sorted(groups) or 'none'}; a record's subset is its 'subset' field, else its "
                         "'source' field, else the prefix of its 'id' before '-N')")
    others = sorted(name for name in groups if name != fit_subset)
    if not others:
        raise ValueError(f"{path}: every scorable record is in the fit subset {fit_subset!r}; nothing to apply "
                         "the threshold to")

    def pick(index: list[int]) -> tuple[list[list[float]], list[int]]:
        return [probs[i] for i in index], [first_errors[i] for i in index]

    def n_skipped(name: str) -> int:
        return sum(1 for s in skipped if s.get("subset", "(no subset)") == name)

    fitted = fit_threshold(*pick(groups[fit_subset]))
    threshold = fitted["threshold"]
    per_subset = {name: {**_scores_or_reason(*pick(groups[name]), threshold), "n_skipped": n_skipped(name)}
                  for name in others}
    defined = [r["f1"] for r in per_subset.values() if r["f1"] is not None]
    pooled = _scores_or_reason(*pick([i for name in others for i in groups[name]]), threshold)
    pooled.update(
        threshold=threshold, threshold_fitted_on=f"{path} [subset {fit_subset}]", fit_subset=fit_subset,
        fit={k: fitted[k] for k in ("f1", "acc_erroneous", "acc_correct", "n")} | {"n_skipped": n_skipped(fit_subset)},
        subsets=per_subset, f1_mean=sum(defined) / len(defined) if defined else None,
        n_records=n_records, n_skipped=len(skipped), skipped=skipped,
    )
    return pooled
