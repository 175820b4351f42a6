"""What the backbone's own language model expected: token surprise, and a head that reads it.

Chapter 5 of the course. A pretrained LM knows facts its first layers do not:
SmolLM2-135M, whole, gives the written result of a times-table fact a
log-probability that separates right from slipped results almost perfectly,
while the same question read after its first layers is a coin toss. A PRM cut to
a few layers for speed cannot learn that knowledge back in minutes, but it can
*read* it: the full LM, frozen, says at every token how far the written token is
from what it would have written,

    surprise_t = max_v log p(v | x_<t) - log p(x_t | x_<t)   (0 when x_t is its first choice),

and a small learned reader decides which tokens' surprise matters (a result
after "=", not a number the problem chose) and how much. The reader's gate sees
the PRM's own hidden state at the position that predicts token t. Each step
pools the gated surprise over every step token so far with a smooth maximum, so
a step that builds on an earlier slip is marked wrong too, as the labels say;
the pooled value is subtracted from the value head's logit.

Related designs read an LM's token distribution too: Math-Shepherd (Wang et
al., arXiv:2312.08935) and Qwen2.5-Math-PRM (Zhang et al., arXiv:2501.07301)
score a step from the logits of two tokens at a step tag, and implicit PRMs
(Yuan et al., arXiv:2412.01981) derive step rewards from token log-likelihood
ratios. This one keeps the trained part small enough for a 2-core CPU: the
surprise needs one forward pass of the frozen LM per solution, which the trainer
computes once and keeps (``ProcessRewardModel.attach_surprise``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

# Smooth-maximum temperature: pooled = logsumexp(4 z) / 4 is within log(n)/4 of max(z).
POOL_TEMPERATURE = 4.0
GATE_HIDDEN = 64
READER_SEED = 1
GATE_BIAS = -4.0
# Per-sequence results a source keeps in memory: a PRM, its ORM and a likelihood baseline reading the
# same candidates run the frozen LM once (about 8 MB per 10,000 sequences of 100 tokens).
MEMO_SIZE = 200_000
_SHARED: dict[tuple[str, int | None, str, torch.dtype | None], "SurpriseSource"] = {}


class SurpriseSource:
    """A frozen whole causal LM that turns token ids into per-token surprise (kept out of the PRM's
    parameters: it is never trained, saved or handed to an optimizer; only its name is saved)."""

    def __init__(self, name: str, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 n_layers: int | None = None) -> None:
        """``n_layers`` reads the LM head after only the first k blocks (the "logit lens"): what a model
        cut to k layers could know. A PRM reads the whole LM (None)."""
        from .backbones import load_backbone

        self.name, self.n_layers = name, n_layers
        self.lm, self.tokenizer = load_backbone(name, device=device, dtype=dtype, n_layers=n_layers)
        self.lm.eval().requires_grad_(False)
        if not hasattr(self.lm, "get_output_embeddings") or self.lm.get_output_embeddings() is None:
            raise ValueError(f"{name!r} has no language-model head: surprise needs a causal LM")
        self._memo: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @classmethod
    def shared(cls, name: str, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
               n_layers: int | None = None) -> "SurpriseSource":
        """One source per (LM, depth, device, dtype) in this process: every PRM, ORM and likelihood scorer
        that reads the same frozen LM shares its weights and its memory of sequences already read."""
        from .backbones import resolve_device

        dev = resolve_device(device)
        key = (name, n_layers, str(dev), dtype)
        if key not in _SHARED:
            _SHARED[key] = cls(name, device=dev, dtype=dtype, n_layers=n_layers)
        return _SHARED[key]

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def to(self, device: str | torch.device) -> "SurpriseSource":
        self.lm.to(device)
        return self

    @torch.no_grad()
    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(written, best): (B, T) log-probabilities of each written token and of the LM's first choice
        at its place, fp32; both 0 at position 0 (nothing predicts it) and wherever the mask is 0."""
        out = self.lm(input_ids=input_ids.to(self.device), use_cache=False,
                      attention_mask=None if attention_mask is None else attention_mask.to(self.device),
                      position_ids=None if position_ids is None else position_ids.to(self.device))
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        written = torch.zeros(input_ids.shape, dtype=torch.float32, device=self.device)
        best = torch.zeros_like(written)
        written[:, 1:] = logp.gather(-1, input_ids[:, 1:].to(self.device).unsqueeze(-1)).squeeze(-1)
        best[:, 1:] = logp.max(dim=-1).values
        if attention_mask is not None:
            keep = attention_mask.to(self.device, torch.float32)
            written, best = written * keep, best * keep
        return written, best

    @torch.no_grad()
    def read(self, sequences: Sequence[Sequence[int]], progress: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(written, best) log-probabilities (1-D fp32 tensors on the CPU, as in ``logprobs``) for each token-id
        sequence; sequences read before are answered from memory, the rest in length-sorted batches."""
        from .batching import BatchPolicy, plan_batches

        keys = [tuple(int(t) for t in seq) for seq in sequences]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        batches = plan_batches([len(k) for k in todo], BatchPolicy.for_device(self.device))
        if progress:
            from .progress import progress as progress_bar

            batches = progress_bar(batches, desc="surprise of the frozen LM", unit="batch")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for idx in batches:
            width = max(len(todo[i]) for i in idx)
            ids = torch.tensor([list(todo[i]) + [pad] * (width - len(todo[i])) for i in idx])
            written, best = self.logprobs(ids)  # right padding: causal attention never reads the pads
            for row, i in enumerate(idx):
                n = len(todo[i])
                self._memo[todo[i]] = (written[row, :n].cpu(), best[row, :n].cpu())
        out = []
        for k in keys:
            self._memo.move_to_end(k)
            out.append(self._memo[k])
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return out

    def cache_path(self, sequences: Sequence[Sequence[int]]) -> Path:
        """Where the values of exactly these token-id sequences are kept on disk (keyed by this LM, its
        depth, device kind and dtype, and every token id)."""
        from .backbones import cache_dir

        digest = hashlib.sha256()
        dtype = next(self.lm.parameters()).dtype
        digest.update(f"{self.name}|{self.n_layers}|{self.device.type}|{dtype}|{len(sequences)}".encode())
        for seq in sequences:
            digest.update(json.dumps([int(t) for t in seq]).encode())
        return cache_dir() / "surprise" / f"{re.sub(r'[^A-Za-z0-9.]+', '-', self.name)}-{digest.hexdigest()[:16]}.pt"

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) surprise in nats, fp32: how far each written token is from the LM's first choice."""
        written, best = self.logprobs(input_ids, attention_mask, position_ids)
        return best - written


class SurpriseReader(nn.Module):
    """Gated, pooled surprise per step: the amount to subtract from each step's logit (B, S)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(hidden_size, GATE_HIDDEN), nn.GELU(), nn.Linear(GATE_HIDDEN, 1))
        gen = torch.Generator().manual_seed(READER_SEED)
        with torch.no_grad():  # seeded like the value head, so an untrained PRM scores the same everywhere
            for layer in (self.gate[0], self.gate[2]):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) * 2 * bound - bound)
                layer.bias.zero_()
            self.gate[2].bias.fill_(GATE_BIAS)  # softplus(-4) = 0.018: an untrained reader barely changes a score

    def forward(self, hidden: torch.Tensor, surprise: torch.Tensor, step_positions: torch.Tensor,
                first_step: torch.Tensor) -> torch.Tensor:
        """``hidden`` (B, T, H) from the PRM's backbone; ``surprise`` (B, T); ``step_positions`` (B, S) the
        step ends; ``first_step`` (B,) the index of each row's first step token. Tokens before it (the
        problem, whose numbers nobody can predict) and pads after a row's last step end are never read:
        each step pools only tokens up to its own end."""
        weight = nn.functional.softplus(self.gate(hidden[:, :-1].to(self.gate[0].weight.dtype)).squeeze(-1))
        z = weight.float() * surprise[:, 1:].to(weight.device)  # token t's surprise, gated by the state predicting it
        t = torch.arange(1, hidden.shape[1], device=hidden.device)
        z = z.masked_fill(t.unsqueeze(0) < first_step.unsqueeze(1), -1e4) * POOL_TEMPERATURE
        pooled = torch.logcumsumexp(z, dim=1) / POOL_TEMPERATURE  # (B, T-1): smooth max over tokens 1..t
        index = (step_positions - 1).clamp(min=0)
        return torch.gather(pooled, 1, index).clamp(min=0.0)


class LikelihoodScorer:
    """A zero-shot verifier with no training: each step's score is the LM's geometric-mean probability of
    the step's tokens, exp(mean log p). Reasoning-from-scratch ranks best-of-N candidates by average
    log-probability; this is that baseline, in the interface of a PRM (``score_batch``), so
    ``PRMVerifier(LikelihoodScorer(name), "geometric_mean")`` ranks solutions with it. A trained PRM
    must beat it to have learned anything the LM did not already say."""

    def __init__(self, name: str, device: str | torch.device | None = None, separator: str | None = None,
                 n_layers: int | None = None) -> None:
        from .steps import DEFAULT_SEPARATOR

        self.source = SurpriseSource.shared(name, device=device, n_layers=n_layers)
        self.separator = separator or DEFAULT_SEPARATOR

    def score_batch(self, items: Any, progress: bool = False) -> list[list[float]]:
        """Per step of each ``(problem, steps)``: exp(mean log-probability of the step's tokens)."""
        from .steps import encode_solutions

        encoded = encode_solutions(self.source.tokenizer, items, None, separator=self.separator)
        read = self.source.read([e.input_ids for e in encoded], progress=progress)
        return [[math.exp(written[a:b].mean().item()) if b > a else 1.0 for a, b in e.step_spans]
                for e, (written, _) in zip(encoded, read)]
