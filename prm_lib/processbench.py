"""ProcessBench-style evaluation of a checkpoint: first-error F1 on a jsonl file (``python -m prm_lib eval``).

Chapter 7 of the course. ProcessBench (Zheng et al. 2024) marks where each solution's first
error is, or that it has none; a PRM predicts the first step it scores below a threshold
(``prm_lib.metrics``). This module reads such a file, scores what can be scored, fits or applies
the threshold, and reports every record it had to leave out.
"""

from __future__ import annotations

import warnings
from typing import Any

from .data import read_processbench
from .metrics import first_error_scores, fit_threshold
from .objectives import objective_of
from .steps import validate_solution


def evaluate_processbench(
    prm: Any,
    path: str,
    threshold: float | None = None,
    fit_path: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """First-error F1 of ``prm`` on a ProcessBench-style jsonl file (``problem``, ``steps``, ``label``).

    The threshold is ``threshold`` if given, else fitted for F1 on ``fit_path`` (a validation
    file), else on the evaluated file itself, which overstates F1, and the result says so.
    Records that cannot be scored (malformed, a step the model cannot encode, longer than the
    model's ``max_length``) are left out, counted and listed in ``skipped``, never dropped silently.
    A model whose objective scores only whole solutions (an ORM) is refused: first-error F1 reads
    every step's score, and an ORM's are untrained below its last step.
    """
    kind = objective_of(prm)
    if not kind.scores_steps:
        raise ValueError(f"this checkpoint is an {kind.name.upper()} (trained on one outcome label per solution, "
                         "read at its last step): first-error F1 needs a trained score for every step, which it "
                         "does not have. Evaluate a PRM checkpoint instead, or compare the ORM on whole solutions "
                         "(PRMVerifier(orm, 'last'), best-of-N; chapter 7)")

    def scored(file: str) -> tuple[list[list[float]], list[int], list[dict[str, str]], int]:
        skipped: list[tuple[str, str]] = []
        samples = read_processbench(file, skipped=skipped)
        n_records = len(samples) + len(skipped)
        usable = []
        for s in samples:
            try:
                validate_solution(s.problem, s.steps, None, prm.separator)
                usable.append(s)
            except (ValueError, TypeError) as err:
                skipped.append((f"{file}:{s.meta['source_line']}", str(err)))
        with warnings.catch_warnings():  # an over-long record is reported in `skipped` instead
            warnings.simplefilter("ignore")
            encoded = prm.encode([s.as_item() for s in usable]) if usable else []
        kept = []
        for s, e in zip(usable, encoded):
            if e.truncated:
                skipped.append((f"{file}:{s.meta['source_line']}", f"longer than the model's max_length "
                                f"({prm.max_length} tokens): only {e.n_scored} of {e.n_steps} steps fit"))
            else:
                kept.append((s, e))
        probs = prm.score_encoded([e for _, e in kept], progress=progress) if kept else []
        skipped.sort(key=lambda x: int(x[0].rsplit(":", 1)[1]))
        return probs, [s.first_error for s, _ in kept], [{"where": w, "reason": r} for w, r in skipped], n_records

    probs, first_errors, skipped, n_records = scored(path)
    if not probs:
        raise ValueError(f"{path}: no record could be scored ({len(skipped)} skipped; first: "
                         f"{skipped[0]['reason'] if skipped else 'the file is empty'})")
    if threshold is not None:
        result = first_error_scores(probs, first_errors, threshold)
        fitted_on = None
    elif fit_path is not None:
        fit_probs, fit_errors, fit_skipped, _ = scored(fit_path)
        if not fit_probs:
            raise ValueError(f"{fit_path}: no record could be scored to fit a threshold")
        result = first_error_scores(probs, first_errors, fit_threshold(fit_probs, fit_errors)["threshold"])
        fitted_on = fit_path
        result["n_skipped_fit"] = len(fit_skipped)
    else:
        result = fit_threshold(probs, first_errors)
        fitted_on = path
    result.update(threshold_fitted_on=fitted_on, n_records=n_records, n_skipped=len(skipped), skipped=skipped)
    return result
