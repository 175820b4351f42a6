"""Math-Shepherd-style PRMs: a causal LM that predicts "+" or "-" at a tag written after each step.

Math-Shepherd (peiyi9979/math-shepherd-mistral-7b-prm) is a language model fine-tuned so that at
the tag 'ки' ending each step its next-token logits favour '+' for a correct step and '-' for a
wrong one; the published code writes ``f"{question} {output}"``, ``output`` being
``"Step 1: ... ки\\nStep 2: ... ки"``, tokenizes it whole (with BOS) and reads
softmax(logit['+'], logit['-'])[0] at every tag token. Any causal LM trained that way, with any tag
and pair of tokens, is read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..batching import Batch
from ..steps import EncodedSolution
from .base import Item, StepScorer, single_token_id
from .readers import token_pair_probability
from .tagged_text import encode_tagged, refuse_tag_inside


@dataclass(frozen=True)
class MathShepherdConventions:
    """The text layout and the tokens read (defaults: Math-Shepherd's published inference code)."""

    tag: str = "ки"  # must be one token on its own, and stay that token after ``before_tag``
    before_tag: str = " "  # between a step's text and its tag
    after_tag: str = "\n"  # between a tag and the next step
    problem_joiner: str = " "  # between the problem and the first step
    step_prefix: str = "Step {n}: "  # before each step (n counts from 1); Math-Shepherd's data numbers its steps
    good: str = "+"  # its probability against ``bad`` is P(step correct)
    bad: str = "-"
    add_special_tokens: bool = True  # BOS first, as ``tokenizer.encode`` adds it

    def render(self, problem: str, steps: Sequence[str]) -> str:
        """The whole text the model reads."""
        written = [f"{self.step_prefix.format(n=i)}{step}{self.before_tag}{self.tag}" for i, step in enumerate(steps, 1)]
        return problem + self.problem_joiner + self.after_tag.join(written)


class MathShepherdScorer(StepScorer):
    """Any causal LM read at a tag token from the logits of a good and a bad token."""

    family = "math-shepherd"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, conventions: MathShepherdConventions | None = None,
                 max_length: int | None = None) -> None:
        super().__init__(model, tokenizer, max_length)
        self.conventions = c = conventions or MathShepherdConventions()
        self.tag_id = single_token_id(self.tokenizer, c.tag, "step tag")
        self.good_id = single_token_id(self.tokenizer, c.good, "good token")
        self.bad_id = single_token_id(self.tokenizer, c.bad, "bad token")
        if self.good_id == self.bad_id:
            raise ValueError(f"the good token {c.good!r} and the bad token {c.bad!r} are the same token ({self.good_id})")

    @property
    def separator(self) -> str:
        return self.conventions.tag

    def validate_item(self, problem: str, steps: Sequence[str]) -> None:
        refuse_tag_inside(self.conventions.tag, problem, steps)
        super().validate_item(problem, steps)

    def encode(self, items: Sequence[Item]) -> list[EncodedSolution]:
        c = self.conventions
        return encode_tagged(self.tokenizer, [c.render(p, s) for p, s in items], [len(s) for _, s in items],
                             c.tag, self.tag_id, self.max_length, c.add_special_tokens)

    def read(self, batch: Batch) -> torch.Tensor:
        return token_pair_probability(self.model, batch, self.good_id, self.bad_id)
