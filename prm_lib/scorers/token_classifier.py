"""TRL-trained PRMs: a two-label token classifier read at the last token of each step's separator.

TRL 1.13's ``PRMTrainer.tokenize_row`` (``trl.experimental.prm``) tokenizes the prompt and each step
separately, appends the separator's ids after every step, labels the last of those ids, and puts
the tokenizer's BOS id first if it has one; no separator between the prompt and the first step.
A prm_lib PRM exported with ``python -m prm_lib export-model`` uses prm_lib's layout instead (a
separator after the problem too, and the ids the tokenizer itself puts first); the export records
that in ``config.prm_lib``, and this adapter reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import torch

from ..batching import Batch
from ..steps import EncodedSolution, encode_solutions
from .base import Item, StepScorer
from .readers import label_probability

STARTS = ("bos", "tokenizer")


@dataclass(frozen=True)
class TokenClassifierConventions:
    """How a token-classification PRM reads a solution (defaults: TRL 1.13's ``PRMConfig`` and trainer)."""

    separator: str = "\n"  # PRMConfig.step_separator's default; it must be the one the model was trained with
    problem_separator: bool = False  # a separator between problem and first step: TRL no, prm_lib yes
    start: str = "bos"  # ids put first: "bos" (TRL: the BOS id if any) or "tokenizer" (prm_lib: what it adds itself)
    correct_label: int = 1  # TRL labels a correct step 1 (True)

    def __post_init__(self) -> None:
        if not self.separator:
            raise ValueError("the step separator is empty")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, not {self.start!r}")
        if self.correct_label not in (0, 1):
            raise ValueError(f"correct_label must be 0 or 1 (a two-label head), not {self.correct_label!r}")

    @classmethod
    def from_config(cls, config: Any) -> "TokenClassifierConventions | None":
        """The conventions an exported prm_lib model recorded in ``config.prm_lib``, or None if it has none."""
        recorded = getattr(config, "prm_lib", None)
        if not isinstance(recorded, dict):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in recorded.items() if k in known})


class TokenClassifierScorer(StepScorer):
    """Any ``AutoModelForTokenClassification`` with two labels, read at each step's separator end."""

    family = "trl"
    auto_class = "AutoModelForTokenClassification"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, conventions: TokenClassifierConventions | None = None,
                 max_length: int | None = None) -> None:
        config = model.config
        recorded = getattr(config, "prm_lib", None) or {}
        super().__init__(model, tokenizer, max_length or recorded.get("max_length"), recorded.get("objective", "prm"))
        if getattr(config, "num_labels", 2) != 2:
            raise ValueError(f"a PRM token classifier has two labels (incorrect, correct); this model has {config.num_labels}")
        # given conventions win; else what an exported model recorded; else TRL's
        self.conventions = conventions or TokenClassifierConventions.from_config(config) or TokenClassifierConventions()
        if self.conventions.start == "bos":
            bos = self.tokenizer.bos_token_id
            self.prefix: list[int] | None = [bos] if bos is not None else []
        else:
            self.prefix = None  # encode_solutions' default: what the tokenizer itself puts first

    @property
    def separator(self) -> str:
        return self.conventions.separator

    def encode(self, items: Sequence[Item]) -> list[EncodedSolution]:
        return encode_solutions(self.tokenizer, items, self.max_length, separator=self.conventions.separator,
                                problem_separator=self.conventions.problem_separator, prefix=self.prefix)

    def read(self, batch: Batch) -> torch.Tensor:
        return label_probability(self.model, batch, self.conventions.correct_label)
