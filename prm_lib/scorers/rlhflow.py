"""RLHFlow-style PRMs: a chat model that answers "+" or "-" after every step, one user turn per step.

RLHFlow's PRMs (e.g. RLHFlow/Llama3.1-8B-PRM-Deepseek-Data) read a conversation in which the first
user turn is the problem and the first step, each later user turn one step, and each assistant turn
"+" (correct) or "-"; their published code renders it with the tokenizer's chat template and reads
softmax(logit['+'], logit['-'])[0] at the token just before an assistant answer (``logits[:, -3]``
with Llama 3.1's template). Scoring step k that way needs only the conversation up to step k, every
earlier answer "+"; so one forward over the conversation of all the steps reads every step, at the
token before each answer, provided the template renders each shorter conversation as a prefix of the
longer one. That is checked on the token ids for every step, and a template that breaks it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..batching import Batch
from ..steps import EncodedSolution, tokenize_pieces
from .base import Item, StepScorer, cut_to_max_length, single_token_id
from .readers import token_pair_probability


@dataclass(frozen=True)
class RLHFlowConventions:
    """The conversation and the tokens read (defaults: RLHFlow's published PRM code)."""

    good: str = "+"  # the assistant's answer to a correct step; P(good) against ``bad`` is the score
    bad: str = "-"
    first_turn_joiner: str = " "  # between the problem and the first step in the first user turn
    system: str | None = None  # a system message first, if the model was trained with one

    def prompts(self, problem: str, steps: Sequence[str]) -> list[list[dict[str, str]]]:
        """For each step k, the conversation that asks about it: steps 1..k as user turns, "good" answers between."""
        messages = [{"role": "system", "content": self.system}] if self.system is not None else []
        out = []
        for k, step in enumerate(steps):
            text = problem + self.first_turn_joiner + step if k == 0 else step
            messages = messages + [{"role": "user", "content": text}]
            out.append(messages)
            messages = messages + [{"role": "assistant", "content": self.good}]
        return out


class RLHFlowScorer(StepScorer):
    """Any chat causal LM read from the logits of a good and a bad answer token after each step's turn."""

    family = "rlhflow"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, conventions: RLHFlowConventions | None = None,
                 max_length: int | None = None) -> None:
        super().__init__(model, tokenizer, max_length)
        self.conventions = c = conventions or RLHFlowConventions()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("RLHFlow-style scoring renders a chat: this tokenizer has no chat template")
        self.good_id = single_token_id(self.tokenizer, c.good, "good answer token")
        self.bad_id = single_token_id(self.tokenizer, c.bad, "bad answer token")
        if self.good_id == self.bad_id:
            raise ValueError(f"the good token {c.good!r} and the bad token {c.bad!r} are the same token ({self.good_id})")

    @property
    def separator(self) -> None:
        return None  # each step is its own turn: no text inside a step marks a boundary

    def encode(self, items: Sequence[Item]) -> list[EncodedSolution]:
        texts, counts = [], []
        for problem, steps in items:
            conversations = self.conventions.prompts(problem, steps)
            texts += [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                      for m in conversations]
            counts.append(len(conversations))
        ids = tokenize_pieces(self.tokenizer, texts)  # the chat template writes any BOS itself
        out, cursor = [], 0
        for n, k in enumerate(counts):
            prompts, cursor = ids[cursor: cursor + k], cursor + k
            full = prompts[-1]  # the last step's prompt holds every earlier one, each followed by its answer
            for j, prompt in enumerate(prompts):
                answer = full[len(prompt)] if j < k - 1 and len(full) > len(prompt) else None
                if full[: len(prompt)] != prompt or (j < k - 1 and answer != self.good_id):
                    raise ValueError(
                        f"solution {n}: the chat template does not render the conversation up to step {j + 1}, "
                        f"then {self.conventions.good!r} (token {self.good_id}), as the start of the longer one "
                        "(it changes earlier turns, or the answer merges with the text around it), so the steps "
                        "cannot be read in one pass; this template is not supported")
            out.append(cut_to_max_length(n, full, [len(p) - 1 for p in prompts], k, self.max_length))
        return out

    def read(self, batch: Batch) -> torch.Tensor:
        return token_pair_probability(self.model, batch, self.good_id, self.bad_id)
