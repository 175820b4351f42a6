"""The two ways a published PRM turns its output at a read position into P(step correct).

* A two-label head (TRL's token classifiers, Qwen2.5-Math-PRM): softmax over the two labels,
  the probability of the label that means "correct".
* A language model's next-token logits (Math-Shepherd, RLHFlow): softmax over the logits of a
  "good" and a "bad" token only, the probability of the good one.

Both gather the read positions in one ``torch.gather``; the language-model reader applies the LM
head to those positions only and to the two candidate rows only, so no (B, T, vocabulary) tensor
is ever built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..batching import Batch
from ..batching import gather_steps


def output_logits(output: object) -> torch.Tensor:
    """``output.logits``, or the first element of a tuple output (remote-code models return either)."""
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, (tuple, list)):
        logits = output[0]
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model returned {type(output).__name__}, with no logits tensor to read")
    return logits


def label_probability(model: torch.nn.Module, batch: Batch, correct_label: int) -> torch.Tensor:
    """(B, S) softmax over a two-label head's logits at the read positions, the ``correct_label`` entry."""
    logits = output_logits(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask))
    if logits.dim() != 3 or logits.shape[-1] != 2:
        raise ValueError(f"expected logits of shape (batch, tokens, 2) from a two-label head, got {tuple(logits.shape)}")
    return gather_steps(logits, batch.step_positions).float().softmax(-1)[..., correct_label]


def token_pair_probability(lm: torch.nn.Module, batch: Batch, good_id: int, bad_id: int) -> torch.Tensor:
    """(B, S) P(good) = softmax(logit[good], logit[bad])[0] of a causal LM's next token at the read positions.

    The transformer body's last hidden states are gathered first; the LM head then scores the two
    candidate tokens there, with its bias if it has one and Gemma-style final soft-capping if the
    config sets it, as the full LM head would.
    """
    body = getattr(lm, "base_model", lm)
    if body is lm:
        raise ValueError(f"{type(lm).__name__} has no separate transformer body (base_model): expected a causal LM")
    head = lm.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{type(lm).__name__}'s output layer is {type(head).__name__}, not a linear LM head")
    hidden = body(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).last_hidden_state
    picked = gather_steps(hidden, batch.step_positions)  # (B, S, H)
    rows = torch.tensor([good_id, bad_id], device=head.weight.device)
    bias = head.bias[rows] if head.bias is not None else None
    logits = F.linear(picked.to(head.weight.dtype), head.weight[rows], bias).float()  # (B, S, 2)
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.softmax(-1)[..., 0]
