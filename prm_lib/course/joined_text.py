"""The naive tutorial's method, re-implemented to measure where it goes wrong: the steps
joined into one text, whose token ids are then searched for ``"\\n"``.

Chapters 2 and 5 and the benchmarks use it; nothing else in prm_lib does (``steps`` is
how prm_lib finds step ends). The naive tutorial
(1) joined ``Problem: ...`` and ``Step i: ...`` lines into one string,
(2) tokenized it, (3) walked the ids one by one in Python, calling ``.item()``
on each, looking for the token id(s) of ``"\\n"``, and (4) added the last
token. It ran one solution per forward pass. Two faults follow:

* with a BPE that merges punctuation into the newline (Qwen2: ".\\n" is one
  token), step (3) finds nothing, and only the last token is scored;
* where it does find newlines (SmolLM2 keeps "\\n" apart), the first one ends
  the "Problem:" line, so every score is shifted one step early.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..batching import Batch


def joined_format(problem: str, steps: Sequence[str]) -> str:
    """The naive tutorial's text: a ``Problem:`` line, then ``Step i:`` lines, stripped."""
    lines = [f"Problem: {problem}"] + [f"Step {i + 1}: {s}" for i, s in enumerate(steps)]
    return "\n".join(lines).strip()


def find_newline_positions(input_ids: torch.Tensor, tokenizer: Any, separator: str = "\n") -> list[int]:
    """The naive tutorial's search: every token whose id is one of the ids of ``separator`` (by default ``"\\n"``),
    found one ``.item()`` at a time, plus the last token."""
    sep_ids = tokenizer.encode(separator, add_special_tokens=False)
    positions = []
    for i, token_id in enumerate(input_ids):
        if token_id.item() in sep_ids:
            positions.append(i)
    last = int((input_ids != tokenizer.pad_token_id).sum().item()) - 1
    if last not in positions:
        positions.append(last)
    return positions


def joined_batch(prm: Any, problem: str, steps: Sequence[str]) -> Batch:
    """One solution as the naive tutorial fed it: its text format, its step search, batch size 1."""
    ids = prm.tokenizer(joined_format(problem, steps), return_tensors="pt")["input_ids"][0]
    positions = find_newline_positions(ids, prm.tokenizer)
    n = len(ids)
    return Batch(
        input_ids=ids[None].to(prm.device),
        attention_mask=torch.ones(1, n, dtype=torch.long, device=prm.device),
        position_ids=torch.arange(n, device=prm.device)[None],
        step_positions=torch.tensor([positions], device=prm.device),
        step_mask=torch.ones(1, len(positions), dtype=torch.bool, device=prm.device),
    )


@torch.inference_mode()
def joined_score(prm: Any, problem: str, steps: Sequence[str]) -> tuple[list[float], list[int]]:
    """Score one solution the naive tutorial's way with ``prm``'s backbone and head: (probabilities, positions)."""
    batch = joined_batch(prm, problem, steps)
    positions = batch.step_positions[0].tolist()
    probs = torch.sigmoid(prm(batch))[0]
    return [p.item() for p in probs], positions


def joined_train_step(prm: Any, optimizer: torch.optim.Optimizer, problem: str, steps: Sequence[str],
                      labels: Sequence[int]) -> tuple[float, int]:
    """One step of the naive tutorial's training loop: one sample, its step search, its loss (which
    silently keeps only the first ``min(#positions, #labels)`` labels), an optimizer step.
    Returns (loss, tokens)."""
    prm.train()
    batch = joined_batch(prm, problem, steps)
    scores = prm(batch)[0]
    targets = torch.tensor([(label + 1) / 2 for label in labels], device=prm.device, dtype=torch.float32)
    k = min(len(scores), len(targets))  # the naive tutorial's silent truncation
    loss = F.binary_cross_entropy_with_logits(scores[:k], targets[:k])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), batch.input_ids.shape[1]


def joined_training_targets(tokenizer: Any, problem: str, steps: Sequence[str], labels: Sequence[int]) -> list[int]:
    """The labels the naive tutorial's loss actually used for a sample: the first min(#positions, #labels)."""
    ids = tokenizer(joined_format(problem, steps), return_tensors="pt")["input_ids"][0]
    return list(labels[: min(len(find_newline_positions(ids, tokenizer)), len(labels))])
