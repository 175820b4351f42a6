"""Qwen2.5-Math-PRM-style PRMs: a two-label head read at a special token after every step.

The model card of Qwen/Qwen2.5-Math-PRM-7B writes the solution as a chat (system prompt, the
problem as the user turn, the steps as the assistant turn), puts ``<extra_0>`` after every step
(``"<extra_0>".join(steps) + "<extra_0>"``: the tag replaces the "\\n\\n" a Qwen2.5-Math-Instruct
response is split at), tokenizes the whole text and reads softmax(logits)[1] at every ``<extra_0>``.
The released model is its own class (remote code) whose output is those (batch, tokens, 2) logits;
this adapter takes any model with such an output: that class, a two-label token classifier, or a
body and a head joined by ``TwoLabelHeadModel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..batching import Batch
from ..steps import EncodedSolution
from .base import Item, StepScorer, single_token_id
from .readers import label_probability
from .tagged_text import encode_tagged, refuse_tag_inside

# What Qwen2.5's chat template renders for a system, a user and an assistant message, written out so
# the layout does not depend on whichever template a tokenizer carries.
CHATML = ("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
          "<|im_start|>assistant\n{response}<|im_end|>\n")


@dataclass(frozen=True)
class QwenPRMConventions:
    """The text layout and the label read (defaults: the Qwen2.5-Math-PRM-7B model card)."""

    tag: str = "<extra_0>"  # one (special) token after every step
    after_tag: str = ""  # between a tag and the next step: nothing, the tag replaces the "\n\n"
    system: str = "Please reason step by step, and put your final answer within \\boxed{}."
    template: str = CHATML  # with {system}, {problem} and {response} (the steps and their tags)
    correct_label: int = 1  # softmax index 1 is "correct"
    add_special_tokens: bool = True  # as ``tokenizer.encode`` (Qwen2's tokenizer adds nothing)

    def render(self, problem: str, steps: Sequence[str]) -> str:
        """The whole text the model reads."""
        response = self.after_tag.join(step + self.tag for step in steps)
        return self.template.format(system=self.system, problem=problem, response=response)


class TwoLabelHeadModel(nn.Module):
    """A transformer body and a head from each hidden state to two label logits (a linear layer or an
    MLP): the shape of a Qwen2.5-Math-PRM-style model, for one built or trained outside its own class."""

    def __init__(self, body: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.body = getattr(body, "base_model", body)  # a causal LM's LM head is not needed
        self.head = head
        self.config = self.body.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        first = next(self.head.parameters())
        return (self.head(hidden.to(first.dtype)),)


class QwenPRMScorer(StepScorer):
    """A model with two label logits per token, read at the tag token after each step."""

    family = "qwen-prm"

    def __init__(self, model: nn.Module, tokenizer: Any, conventions: QwenPRMConventions | None = None,
                 max_length: int | None = None) -> None:
        super().__init__(model, tokenizer, max_length)
        self.conventions = c = conventions or QwenPRMConventions()
        if c.correct_label not in (0, 1):
            raise ValueError(f"correct_label must be 0 or 1 (a two-label head), not {c.correct_label!r}")
        self.tag_id = single_token_id(self.tokenizer, c.tag, "step tag")

    @classmethod
    def load_model(cls, folder: str | Path, dtype: torch.dtype, trust_remote_code: bool) -> nn.Module:
        """A two-label token classifier as such; any other class (the released model's own) through
        ``AutoModel``, which runs the folder's code and so needs ``trust_remote_code``."""
        import transformers

        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        if any(a.endswith("ForTokenClassification") for a in config.architectures or []):
            return transformers.AutoModelForTokenClassification.from_pretrained(folder, dtype=dtype)
        if getattr(config, "auto_map", None) and not trust_remote_code:
            raise ValueError(f"{folder}: the model's class is the folder's own code ({config.architectures}, "
                             "config.auto_map); load it with trust_remote_code=True (--trust-remote-code) if you "
                             "trust that code")
        return transformers.AutoModel.from_pretrained(folder, dtype=dtype, trust_remote_code=trust_remote_code)

    @property
    def separator(self) -> str:
        return self.conventions.tag

    def validate_item(self, problem: str, steps: Sequence[str]) -> None:
        refuse_tag_inside(self.conventions.tag, problem, steps)
        super().validate_item(problem, steps)

    def encode(self, items: Sequence[Item]) -> list[EncodedSolution]:
        c = self.conventions
        if c.tag in c.system:
            raise ValueError(f"the system prompt contains the step tag {c.tag!r}")
        return encode_tagged(self.tokenizer, [c.render(p, s) for p, s in items], [len(s) for _, s in items],
                             c.tag, self.tag_id, self.max_length, c.add_special_tokens)

    def read(self, batch: Batch) -> torch.Tensor:
        return label_probability(self.model, batch, self.conventions.correct_label)
