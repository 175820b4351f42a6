"""Solutions written as one text with a tag token after every step, read where the tag stands.

Math-Shepherd and Qwen2.5-Math-PRM both tokenize the whole text at once (their published code
does, so piece-by-piece tokenization could give the model ids it never saw) and read every position
whose id is the tag's. That search is exact only if the tag text becomes the tag token in every
place it was put, and nowhere else: so the tag must be one token on its own
(``single_token_id``), no problem or step may contain its text, and each solution must hold
exactly one tag token per step once tokenized; any other count is an error that names the tag,
its id and what the text around it became (OpenRLHF #509: 'ки' after a space is not the 'ки' token
in every vocabulary).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..steps import EncodedSolution
from .base import cut_to_max_length


def refuse_tag_inside(tag: str, problem: str, steps: Sequence[str]) -> None:
    """A problem or step that contains the tag's text would be read as a step end where none is."""
    if isinstance(problem, str) and tag in problem:
        raise ValueError(f"the problem contains the step tag {tag!r}; it would be read as a step end")
    for i, step in enumerate([] if isinstance(steps, str) else steps):
        if isinstance(step, str) and tag in step:
            raise ValueError(f"step {i + 1} contains the step tag {tag!r}; it would be read as a step end")


def encode_tagged(tokenizer: Any, texts: Sequence[str], n_steps: Sequence[int], tag: str, tag_id: int,
                  max_length: int | None, add_special_tokens: bool) -> list[EncodedSolution]:
    """Tokenize each whole text (one batched call) and read at its tag tokens, one per step."""
    rows = tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]
    out = []
    for n, (ids, k) in enumerate(zip(rows, n_steps)):
        positions = (torch.tensor(ids) == tag_id).nonzero().flatten().tolist()
        if len(positions) != k:
            at = max(texts[n].index(tag) - 1, 0)
            seen = tokenizer(texts[n][at: at + len(tag) + 1], add_special_tokens=False)["input_ids"]
            raise ValueError(
                f"solution {n}: {k} steps, but its text holds the step tag {tag!r} (token id {tag_id}) "
                f"{len(positions)} times once tokenized: around the steps the tag merges with its neighbours "
                f"(the character before the first tag and the tag tokenize as {seen}: "
                f"{[tokenizer.decode([i]) for i in seen]}). Choose a tag and layout for which the tag stays "
                "its own token (OpenRLHF #509: 'ки' and ' ки' are different tokens)")
        out.append(cut_to_max_length(n, ids, positions, k, max_length))
    return out
