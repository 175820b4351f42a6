"""Published PRMs, each read the way its family was trained, behind ``ProcessRewardModel``'s interface.

Each family reads its score in its own way; an adapter holds that way in one frozen dataclass
(its conventions) and gives ``score_batch(items, ...)`` -> one list per item and
``score_padded(items, ...)`` -> ``StepScores`` as a prm_lib PRM does, so ``PRMVerifier``, ``select``,
``beam_search`` and ``python -m prm_lib eval`` take it unchanged:

=================  ===========================  ==================================================
family             adapter                      read at / as
=================  ===========================  ==================================================
``trl``            ``TokenClassifierScorer``    last token of each step's separator, 2-label head
``math-shepherd``  ``MathShepherdScorer``       the tag 'ки' after each step, LM logits of +/-
``qwen-prm``       ``QwenPRMScorer``            ``<extra_0>`` after each step, 2-label head
``rlhflow``        ``RLHFlowScorer``            the token before each "+" answer turn, LM logits
=================  ===========================  ==================================================

``load_scorer(family, name_or_path)`` loads one from a hub id or folder.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch

from . import math_shepherd, qwen_prm, rlhflow, token_classifier
from .base import StepScorer

__all__ = ["FAMILIES", "CONVENTIONS", "load_scorer", "parse_conventions"]

FAMILIES: dict[str, type[StepScorer]] = {
    "trl": token_classifier.TokenClassifierScorer,
    "math-shepherd": math_shepherd.MathShepherdScorer,
    "qwen-prm": qwen_prm.QwenPRMScorer,
    "rlhflow": rlhflow.RLHFlowScorer,
}
CONVENTIONS = {"trl": token_classifier.TokenClassifierConventions, "math-shepherd": math_shepherd.MathShepherdConventions,
               "qwen-prm": qwen_prm.QwenPRMConventions, "rlhflow": rlhflow.RLHFlowConventions}


def _family(name: str) -> str:
    if name not in FAMILIES:
        raise ValueError(f"unknown scorer family {name!r}; known: {', '.join(FAMILIES)}")
    return name


def _coerce(family: str, field: dataclasses.Field, text: str) -> Any:
    kind = str(field.type)
    if text.lower() == "none" and "None" in kind:
        return None
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{family} convention {field.name} is true or false, not {text!r}")
        return text.lower() in ("true", "1", "yes")
    if kind == "int":
        return int(text)
    return text


def parse_conventions(family: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["separator=\\n", "problem_separator=true"]`` -> typed values for ``family``'s conventions;
    an unknown name is an error that lists the family's conventions."""
    by_name = {f.name: f for f in dataclasses.fields(CONVENTIONS[_family(family)])}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name.strip() not in by_name:
            raise ValueError(f"{pair!r} is not NAME=VALUE with a {family} convention; its conventions: "
                             f"{', '.join(by_name)}")
        out[name.strip()] = _coerce(family, by_name[name.strip()], value)
    return out


def load_scorer(family: str, name_or_path: str, *, conventions: Mapping[str, Any] | None = None,
                device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                max_length: int | None = None, trust_remote_code: bool = False) -> StepScorer:
    """The ``family`` adapter on a hub id or folder; ``conventions`` change named fields of the ones it
    would use (the family's defaults, or, for ``trl``, what an exported prm_lib model recorded)."""
    cls = FAMILIES[_family(family)]
    scorer = cls.from_pretrained(name_or_path, device=device, dtype=dtype, max_length=max_length,
                                 trust_remote_code=trust_remote_code)
    if conventions:
        changed = dataclasses.replace(scorer.conventions, **conventions)
        scorer = cls(scorer.model, scorer.tokenizer, conventions=changed, max_length=max_length)
    return scorer
