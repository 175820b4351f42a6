"""What the backbone's own language model expected: token surprise, and a head that reads it.

Chapter 5 of the course. A pretrained LM knows facts its first layers do not:
SmolLM2-135M, whole, gives the written result of a times-table fact a
log-probability that separates right from slipped results almost perfectly,
while the same question read after its first layers is a coin toss. A PRM cut to
a few layers for speed cannot learn that knowledge back in a short run, but it can
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
import inspect
import json
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .aggregate import StepScores, pad_scores

# Smooth-maximum temperature: pooled = logsumexp(4 z) / 4 is within log(n)/4 of max(z).
POOL_TEMPERATURE = 4.0
GATE_HIDDEN = 64
READER_SEED = 1
GATE_BIAS = -4.0
# Per-sequence results a source keeps in memory: a PRM, its ORM and a likelihood baseline reading the
# same candidates run the frozen LM once (about 8 MB per 10,000 sequences of 100 tokens).
MEMO_SIZE = 200_000
# Sequences whose key/value states are kept, so that a sequence extending one (a beam's next step) runs
# only its new tokens (SmolLM2-135M in fp32: 46 KB per token, about 4.6 MB per 100-token sequence).
PREFIX_MEMORY = 64
MIN_PREFIX = 8  # a shared start shorter than this is not worth a second code path: the sequence runs whole
# The LM head runs on this many bytes of fp32 logits at a time: a full (rows, tokens, vocabulary) logit tensor
# of Qwen2.5's 152k vocabulary and 64 rows of 500 tokens would take about 19 GB in fp32.
LOGIT_CHUNK_BYTES = 64 * 2**20
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
        # the transformer body and its LM head apart, so the head runs a chunk of positions at a time
        self.body, self.head = self.lm.base_model, self.lm.get_output_embeddings()
        self.softcap = getattr(self.lm.config, "final_logit_softcapping", None)
        self._memo: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        # per-layer (keys, values) of the last sequences read, for reading their extensions
        self._states: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = OrderedDict()
        # transformers 5 names the key/value cache "cache", earlier releases "past_key_values"
        self._cache_arg = "cache" if "cache" in inspect.signature(self.body.forward).parameters else "past_key_values"

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

    def check_tokenizer(self, tokenizer: Any, reader: str = "this PRM") -> None:
        """Refuse to read token ids made by another tokenizer: the frozen LM would score ids that mean
        other text to it, and every surprise would be silent nonsense."""
        from .steps import special_prefix_ids

        ours, theirs = self.tokenizer.get_vocab(), tokenizer.get_vocab()
        if ours != theirs or special_prefix_ids(self.tokenizer) != special_prefix_ids(tokenizer):
            differ = sum(1 for t, i in theirs.items() if ours.get(t) != i) + sum(1 for t in ours if t not in theirs)
            raise ValueError(
                f"{reader}'s tokenizer ({len(theirs):,} tokens) is not the tokenizer of the surprise LM {self.name!r} "
                f"({len(ours):,} tokens; {differ:,} entries differ): the LM would read token ids that mean other "
                "text to it. Read the surprise of an LM that shares the backbone's tokenizer (usually the "
                "backbone itself)"
            )

    def to(self, device: str | torch.device) -> "SurpriseSource":
        self.lm.to(device)
        return self

    @torch.no_grad()
    def logprobs(self, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(written, best): (B, T) log-probabilities of each written token and of the LM's first choice
        at its place, fp32, on this source's device; both 0 at each row's first token (nothing predicts it)
        and wherever the mask is 0.

        One forward pass, ``read``'s (``_forward``): each row's real tokens (padding on either side) are moved
        to the left of the row, so every sequence starts at position 0 and the pads, after it, are never read.
        """
        mask = (torch.ones_like(input_ids) if attention_mask is None else attention_mask).to(self.device).bool()
        lengths = mask.sum(dim=1)
        real = torch.arange(mask.shape[1], device=self.device) < lengths.unsqueeze(1)  # the real tokens, moved left
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full(input_ids.shape, pad, dtype=input_ids.dtype, device=self.device)
        ids[real] = input_ids.to(self.device)[mask]
        width = max(int(lengths.max()), 1) if len(lengths) else 1
        next_written, next_best, _ = self._forward(ids[:, :width], None, want_states=False)
        written = torch.zeros(input_ids.shape, dtype=torch.float32, device=self.device)
        best = torch.zeros_like(written)
        first = torch.zeros(len(ids), 1, dtype=torch.float32, device=self.device)
        written[mask] = torch.cat([first, next_written], dim=1)[real[:, :width]]
        best[mask] = torch.cat([first, next_best], dim=1)[real[:, :width]]
        return written, best

    @torch.no_grad()
    def read(self, sequences: Sequence[Sequence[int]], progress: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(written, best) log-probabilities (1-D fp32 tensors on the CPU, as in ``logprobs``) for each token-id
        sequence. Sequences read before are answered from memory. A sequence that extends one of the last
        ``PREFIX_MEMORY`` sequences read (a beam's next step) runs only its new tokens, on that sequence's
        kept key/value states; the rest run whole, in length-sorted batches."""
        from .batching import BatchPolicy, plan_batches

        keys = [tuple(int(t) for t in seq) for seq in sequences]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        keep = set(todo[-PREFIX_MEMORY:])  # states of earlier ones would leave the prefix memory at once
        extensions: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        whole = []
        for k in todo:
            prefix = self._kept_prefix(k)
            (extensions.setdefault(prefix, []).append(k) if prefix in self._memo else whole.append(k))
        # held here: storing this call's own states may push a prefix's out of the prefix memory
        pinned = {prefix: (self._states[prefix], self._memo[prefix]) for prefix in extensions}
        batches = plan_batches([len(k) for k in whole], BatchPolicy.for_device(self.device))
        if progress:
            from .progress import progress as progress_bar

            batches = progress_bar(batches, desc="surprise of the frozen LM", unit="batch")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for idx in batches:
            rows = [whole[i] for i in idx]
            width = max(len(k) for k in rows)
            ids = torch.tensor([list(k) + [pad] * (width - len(k)) for k in rows])
            # right padding: causal attention never reads the pads
            written, best, states = self._forward(ids, None, want_states=any(k in keep for k in rows))
            self._store(rows, 0, written, best, states, keep)
        for prefix, rows in extensions.items():
            self._extend(prefix, rows, pad, keep, *pinned[prefix])
        out = []
        for k in keys:
            self._memo.move_to_end(k)
            out.append(self._memo[k])
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return out

    def _kept_prefix(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
        """The longest sequence whose states are kept and that ``key`` extends by at least one token."""
        for m in range(len(key) - 1, MIN_PREFIX - 1, -1):
            if key[:m] in self._states:
                return key[:m]
        return None

    def _forward(self, ids: torch.Tensor, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
                 want_states: bool) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Log-probabilities of each next token of ``ids`` (written: the one in ``ids`` after it, best: the
        LM's first choice), predicted at every position of ``ids`` after the ``past`` states; and the new
        per-layer (keys, values) when asked."""
        kwargs: dict[str, Any] = {"use_cache": want_states or past is not None}
        if past is not None:  # the states hold positions 0..P-1 of every row, so ids start at position P
            kwargs[self._cache_arg] = _make_cache(past)
        ids = ids.to(self.device)
        out = self.body(input_ids=ids, **kwargs)
        written, best = _next_token_logprobs(out.last_hidden_state, self.head, ids, self.softcap)
        return written, best, _cache_tensors(getattr(out, self._cache_arg)) if want_states else None

    def _store(self, rows: Sequence[tuple[int, ...]], offset: int, written: torch.Tensor, best: torch.Tensor,
               states: list[tuple[torch.Tensor, torch.Tensor]] | None, keep: set[tuple[int, ...]],
               prefix: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Memoise each row's values (the forward pass began at position ``offset``; ``prefix`` holds the
        values before it) and keep the states of the rows in ``keep``."""
        for r, k in enumerate(rows):
            n = len(k) - offset - 1  # predictions this pass made for the row's own tokens
            head_w, head_b = (torch.zeros(1), torch.zeros(1)) if prefix is None else \
                (prefix[0][: offset + 1], prefix[1][: offset + 1])
            self._memo[k] = (torch.cat([head_w, written[r, :n].cpu()]), torch.cat([head_b, best[r, :n].cpu()]))
            if states is not None and k in keep:
                self._states[k] = [(keys[r : r + 1, :, : len(k)].clone(), values[r : r + 1, :, : len(k)].clone())
                                   for keys, values in states]
                self._states.move_to_end(k)
                while len(self._states) > PREFIX_MEMORY:
                    self._states.popitem(last=False)

    def _extend(self, prefix: tuple[int, ...], rows: list[tuple[int, ...]], pad: int, keep: set[tuple[int, ...]],
                kept: list[tuple[torch.Tensor, torch.Tensor]], values: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Read ``rows``, which all extend ``prefix`` (whose ``kept`` states and memoised ``values`` are given):
        re-run the prefix's last token (its prediction of the first new token was not kept) and the new
        tokens, on the prefix's states."""
        m = len(prefix)
        past = [(k[:, :, : m - 1].expand(len(rows), -1, -1, -1), v[:, :, : m - 1].expand(len(rows), -1, -1, -1))
                for k, v in kept]
        width = max(len(k) for k in rows) - (m - 1)
        ids = torch.tensor([list(k[m - 1 :]) + [pad] * (width - len(k) + m - 1) for k in rows])
        written, best, states = self._forward(ids, past, want_states=any(k in keep for k in rows))
        self._store(rows, m - 1, written, best, states, keep, prefix=values)

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

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) surprise in nats, fp32: how far each written token is from the LM's first choice."""
        written, best = self.logprobs(input_ids, attention_mask)
        return best - written


def _next_token_logprobs(hidden: torch.Tensor, head: nn.Module, ids: torch.Tensor,
                         softcap: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T-1) fp32 log-probabilities that the LM head, reading ``hidden`` at t, gives token t+1 of ``ids``,
    and their maximum.

    The head runs on a chunk of positions at a time (``LOGIT_CHUNK_BYTES`` of fp32 logits) and each
    chunk's log-normaliser is a ``logsumexp``: memory stays bounded whatever the vocabulary, rows and length.
    """
    rows, length = ids.shape[0], ids.shape[1] - 1
    states = hidden[:, :-1].reshape(rows * length, hidden.shape[-1])
    targets = ids[:, 1:].reshape(-1)
    written = torch.empty(rows * length, dtype=torch.float32, device=hidden.device)
    best = torch.empty_like(written)
    chunk = max(1, LOGIT_CHUNK_BYTES // (4 * head.weight.shape[0]))
    for a in range(0, rows * length, chunk):
        logits = head(states[a : a + chunk]).float()
        if softcap:  # Gemma-style capped logits: the LM's own forward applies this after its head
            logits = torch.tanh(logits / softcap) * softcap
        norm = torch.logsumexp(logits, dim=-1)
        written[a : a + chunk] = logits.gather(-1, targets[a : a + chunk].unsqueeze(-1)).squeeze(-1) - norm
        best[a : a + chunk] = logits.max(dim=-1).values - norm
    return written.view(rows, length), best.view(rows, length)


def _make_cache(past: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """A transformers key/value cache holding ``past`` (per layer: (B, heads, T, head_dim) keys and values)."""
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(past))
    return DynamicCache(past)


def _cache_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of a transformers cache, whichever release made it."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]


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

    def score_padded(self, items: Any, progress: bool = False) -> StepScores:
        """``score_batch`` as a ``prm_lib.aggregate.StepScores``, as a PRM's ``score_padded``."""
        return pad_scores(self.score_batch(items, progress))

    def score_batch(self, items: Any, progress: bool = False) -> list[list[float]]:
        """Per step of each ``(problem, steps)``: exp(mean log-probability of the step's tokens); one list
        per item, as a PRM's ``score_batch``."""
        from .steps import encode_solutions

        encoded = encode_solutions(self.source.tokenizer, items, None, separator=self.separator)
        read = self.source.read([e.input_ids for e in encoded], progress=progress)
        rows = [[math.exp(written[a:b].mean().item()) if b > a else 1.0 for a, b in e.step_spans]
                for e, (written, _) in zip(encoded, read)]
        return rows


def largest_step_surprise(prm: Any, items: Any, progress: bool = False) -> list[list[float]]:
    """Per step of each ``(problem, steps)``: the largest surprise (nats) of the frozen LM that ``prm`` reads,
    over the step's tokens. A slip that this LM does not doubt leaves no trace for the PRM to read, so
    this says why a surprise-reading PRM misses a slip, before any training is blamed."""
    source = getattr(prm, "surprise_source", None)
    if source is None:
        raise ValueError("this PRM reads no frozen LM's surprise (its config has surprise=False)")
    encoded = prm.encode(items)
    read = source.read([e.input_ids for e in encoded], progress=progress)
    return [[(best[a:b] - written[a:b]).max().item() if b > a else float("nan") for a, b in e.step_spans]
            for e, (written, best) in zip(encoded, read)]
