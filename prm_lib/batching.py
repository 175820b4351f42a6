"""Padding encoded solutions into tensors, and choosing which solutions share a batch.

Chapter 2 of the course. Two facts drive the design:

* Step positions are indices into one row of ``input_ids``; when a row is
  padded on the left they shift by the padding, so ``collate`` shifts them too,
  and passes explicit ``position_ids`` so that rotary positions start at 0 for
  every row whatever the padding side. Left and right padding then give the
  same scores as one solution at a time.
* Padding is wasted work. On a GPU that waste is cheap next to the gain of wide
  batches; on a 2-core CPU a forward costs about as much per token whatever the
  batch, so padding is pure loss (benchmarks/score_throughput.py measures it;
  benchmarks/RESULTS.md has the numbers). ``plan_batches`` therefore sorts by length and
  groups only solutions whose padding stays under a budget, capped by a token
  count per batch; the defaults differ per device. Training plans each epoch's batches here too
  (``length_bucketed_batches``, ``token_budget_batches``): shuffled, and of solutions of similar length.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .steps import EncodedSolution, TooLongError

TOO_LONG = ("skip", "error")  # what scoring many solutions does with one of which no step fits max_length


@dataclass
class Batch:
    """A padded batch: ids and mask (B, T), step positions and step mask (B, S), labels (B, S) if any."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    step_positions: torch.Tensor
    step_mask: torch.Tensor
    labels: torch.Tensor | None = None
    padding_side: str = "right"
    first_step: torch.Tensor | None = None  # (B,) index of each row's first step token
    surprise: torch.Tensor | None = None  # (B, T) per-token surprise, when every solution carries it

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return Batch(*(move(getattr(self, f)) for f in self.__dataclass_fields__))

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())



def gather_steps(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, D) values at (B, S) positions (a batch's ``step_positions``): (B, S, D), in one ``torch.gather``,
    no per-token Python loop."""
    return values.gather(1, positions.unsqueeze(-1).expand(-1, -1, values.shape[-1]))

def collate(
    encoded: Sequence[EncodedSolution],
    pad_token_id: int,
    padding_side: str = "right",
    pad_to_multiple_of: int = 1,
) -> Batch:
    """Pad solutions to one tensor batch; step positions follow their tokens.

    ``pad_to_multiple_of`` rounds the width up (fewer distinct shapes for ``torch.compile``).
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    if not encoded:
        raise ValueError("cannot collate an empty list of solutions")
    n = len(encoded)
    width = max(len(e.input_ids) for e in encoded)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    n_steps = max(e.n_scored for e in encoded)
    # Rows are built as Python lists and converted once per tensor (one torch.tensor call each, not
    # several per row): the same tensors with less Python work, which counts on a GPU where the CPU
    # prepares batch i+1 while batch i runs.
    left = padding_side == "left"
    ids_rows, mask_rows, pos_rows, step_rows, first_rows = [], [], [], [], []
    for e in encoded:
        length, k = len(e.input_ids), e.n_scored
        pad = width - length
        offset = pad if left else 0
        ids_rows.append([pad_token_id] * pad + list(e.input_ids) if left else list(e.input_ids) + [pad_token_id] * pad)
        mask_rows.append([0] * pad + [1] * length if left else [1] * length + [0] * pad)
        pos_rows.append([p + offset for p in e.step_end_positions] + [0] * (n_steps - k))
        step_rows.append([True] * k + [False] * (n_steps - k))
        first_rows.append(e.problem_length + offset)
    input_ids = torch.tensor(ids_rows, dtype=torch.long)
    attention_mask = torch.tensor(mask_rows, dtype=torch.long)
    step_positions = torch.tensor(pos_rows, dtype=torch.long)
    step_mask = torch.tensor(step_rows, dtype=torch.bool)
    labels = None
    if all(e.labels is not None for e in encoded):
        labels = torch.tensor([[float(x) for x in e.labels] + [0.0] * (n_steps - e.n_scored) for e in encoded],
                              dtype=torch.float32)
    surprise = None
    if all(e.surprise is not None for e in encoded):
        surprise = torch.tensor([[0.0] * (width - len(e)) + list(e.surprise) if left else
                                 list(e.surprise) + [0.0] * (width - len(e)) for e in encoded], dtype=torch.float32)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    first_step = torch.tensor(first_rows, dtype=torch.long)
    return Batch(input_ids, attention_mask, position_ids, step_positions, step_mask, labels, padding_side,
                 first_step, surprise)


@dataclass(frozen=True)
class BatchPolicy:
    """How ``plan_batches`` groups solutions: at most ``max_tokens`` padded tokens and
    ``max_padding`` wasted fraction per batch, at most ``max_batch`` rows."""

    max_tokens: int
    max_padding: float
    max_batch: int

    @staticmethod
    def for_device(device: torch.device) -> "BatchPolicy":
        if device.type == "cuda":
            # Batches of at most 64 rows with any padding: in a length-sorted batch of 64 the padding is
            # small, and wider batches or a padding cap did not score faster (benchmarks/RESULTS.md).
            return BatchPolicy(max_tokens=65536, max_padding=1.0, max_batch=64)
        # CPU/MPS: padding is pure loss; group only near-equal lengths, in small batches.
        return BatchPolicy(max_tokens=2048, max_padding=0.05, max_batch=16)


def _greedy_batches(order: Sequence[int], fits: Callable[[list[int], int], bool]) -> list[list[int]]:
    """Cut ``order`` into consecutive batches: solution ``i`` joins the current batch while ``fits(batch, i)``,
    else starts the next one."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and not fits(current, i):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def plan_batches(lengths: Sequence[int], policy: BatchPolicy) -> list[list[int]]:
    """Group indices of solutions into batches, longest first, within the policy's budgets."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def fits(current: list[int], i: int) -> bool:
        rows, width = len(current) + 1, lengths[current[0]]  # sorted: the first is the longest
        padded = rows * width
        waste = 1.0 - (sum(lengths[j] for j in current) + lengths[i]) / padded
        return rows <= policy.max_batch and padded <= policy.max_tokens and waste <= policy.max_padding

    return _greedy_batches(order, fits)


# -- training: one epoch's batches, shuffled, of solutions of similar length ----------------------------
def _bucketed_epoch(lengths: Sequence[int], window: int, seed: int, epoch: int,
                    cut: Callable[[list[int]], list[list[int]]]) -> list[list[int]]:
    """Shuffle the solutions (seeded by ``seed`` and ``epoch``), sort each window of ``window`` by length,
    ``cut`` each sorted window into batches, and shuffle the batches: solutions of similar length share a
    batch (little padding), and the order still varies per epoch."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        batches.extend(cut(sorted(order[start : start + window], key=lambda i: lengths[i])))
    rng.shuffle(batches)
    return batches


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches of ``batch_size`` solutions: shuffled, sorted within windows of 50 batches by
    length, the batches shuffled (``_bucketed_epoch``)."""
    return _bucketed_epoch(lengths, batch_size * 50, seed, epoch,
                           lambda chunk: [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)])


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int,
                         pad_to_multiple_of: int = 1, max_batch: int | None = None) -> list[list[int]]:
    """One epoch of batches of about ``max_tokens`` padded tokens each (a GPU option; the CPU presets keep
    ``length_bucketed_batches``).

    As there, solutions are shuffled, sorted by length within windows, cut into batches, and the batches
    shuffled; here a batch takes solutions while rows x width (the longest, rounded up to
    ``pad_to_multiple_of``) stays within ``max_tokens``, so short solutions come many to a batch and long
    ones few, and every step does about the same work with little padding. A solution longer than
    ``max_tokens`` gets a batch of its own. Every index appears exactly once.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    window = max(1, 50 * max_tokens // max(1, round(sum(lengths) / max(1, len(lengths)))))

    def fits(current: list[int], i: int) -> bool:  # ascending: the newest solution is the widest of its batch
        width = -(-lengths[i] // pad_to_multiple_of) * pad_to_multiple_of
        return (len(current) + 1) * width <= max_tokens and (max_batch is None or len(current) < max_batch)

    return _bucketed_epoch(lengths, window, seed, epoch, lambda chunk: _greedy_batches(chunk, fits))


def score_in_batches(encoded: Sequence[EncodedSolution], policy: BatchPolicy,
                     probabilities: "Callable[[list[int]], torch.Tensor]",
                     progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, mask): each solution's step probabilities in a (B, S) float64 tensor, NaN where a step was not
    scored (cut by max_length, or padding), and the mask of each solution's steps.

    ``probabilities(idx)`` scores the solutions ``idx`` (one planned batch) and returns their (len(idx), S')
    probabilities on the device, NaN on padded steps. Results stay on the device until every batch is launched:
    one copy at the end instead of a sync per batch, so the CPU collates batch i+1 while a GPU runs batch i."""
    lengths = torch.tensor([e.n_steps for e in encoded], dtype=torch.long)
    width = int(lengths.max()) if len(encoded) else 0
    with torch.inference_mode(False):  # ordinary tensors, which the caller may change in place
        # float64 holds every probability exactly, whatever dtype the head computed it in
        probs = torch.full((len(encoded), width), float("nan"), dtype=torch.float64)
        mask = torch.arange(width) < lengths.unsqueeze(1)
    batches = plan_batches([len(e) for e in encoded], policy)
    if progress:
        from .progress import progress as progress_bar

        batches = progress_bar(batches, desc="scoring", unit="batch")
    pending = [(idx, probabilities(idx)) for idx in batches]
    for idx, batch_probs in pending:  # steps past a row's n_scored (cut by max_length) stay NaN
        probs[idx, : batch_probs.shape[1]] = batch_probs.cpu().double()
    return probs, mask


def encode_fitting(encode: Callable[[Sequence[Any]], list[EncodedSolution]], items: Sequence[Any],
                   too_long: str = "skip") -> tuple[list[EncodedSolution], list[int]]:
    """``encode(items)``, leaving out each item of which no step fits max_length (``TooLongError``): the
    encoded solutions that fit, in order, and the indices of those left out.

    One batched call when every item fits; only when one does not is each item encoded alone, to find which.
    ``too_long="error"`` raises instead (the error names the item). Any other error is raised either way."""
    if too_long not in TOO_LONG:
        raise ValueError(f"too_long must be one of {', '.join(TOO_LONG)}, not {too_long!r}")
    try:
        return (encode(items) if items else []), []
    except TooLongError:
        if too_long == "error":
            raise
    kept: list[EncodedSolution] = []
    left_out: list[int] = []
    for i, item in enumerate(items):
        try:
            kept.extend(encode([item]))
        except TooLongError:
            left_out.append(i)
    return kept, left_out


def with_unscored_rows(probs: torch.Tensor, mask: torch.Tensor, n_steps: Sequence[int],
                       left_out: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, mask) of every item from those of the scored ones: a left-out item's row is NaN on each of its
    steps, inside the mask, as a step cut by max_length is (so aggregation and selection see it as unscored)."""
    if not left_out:
        return probs, mask
    gone = set(left_out)
    kept = [i for i in range(len(n_steps)) if i not in gone]
    width = max([int(probs.shape[1]) if probs.dim() == 2 else 0, *n_steps])
    full = torch.full((len(n_steps), width), float("nan"), dtype=torch.float64)
    full_mask = torch.arange(width) < torch.tensor(list(n_steps), dtype=torch.long).unsqueeze(1)
    if kept:
        full[kept, : probs.shape[1]] = probs.double()
    return full, full_mask


class ScoresAsLists:
    """The list forms of a scorer's padded scores, and ``score_padded`` from its ``encode`` and
    ``score_encoded_padded``, for ``ProcessRewardModel`` and the adapters of ``prm_lib.scorers``."""

    def check_items(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Raise, naming the item, if one cannot be scored at all (an adapter's own refusals); nothing here."""

    def score_padded(self, items: Sequence[tuple[str, Sequence[str]]], policy: BatchPolicy | None = None,
                     padding_side: str = "right", progress: bool = False, too_long: str = "skip") -> Any:
        """P(step correct) for each step of each ``(problem, steps)`` as one (B, S) tensor and its mask
        (``prm_lib.aggregate.StepScores``).

        Batches are planned by length. A solution longer than ``max_length`` is cut by whole steps from the
        end, with a warning; its cut steps score NaN. One of which not even the first step fits is left out
        with a warning that names its index, every step NaN, and the rest scored (``too_long="error"``: raise).
        """
        from .aggregate import StepScores

        self.check_items(items)
        encoded, left_out = encode_fitting(self.encode, items, too_long)  # type: ignore[attr-defined]
        scores = self.score_encoded_padded(encoded, policy, padding_side, progress)  # type: ignore[attr-defined]
        if not left_out:
            return scores
        warnings.warn(f"{len(left_out)} of {len(items)} solutions not scored: not even the problem and first step "
                      f"fit max_length={getattr(self, 'max_length', None)} (item(s) {left_out[:10]}"
                      f"{', ...' if len(left_out) > 10 else ''}); their steps score NaN", stacklevel=2)
        return StepScores(*with_unscored_rows(scores.probs, scores.mask, [len(s) for _, s in items], left_out))

    def score_encoded(self, encoded: Sequence[EncodedSolution], policy: BatchPolicy | None = None,
                      padding_side: str = "right", progress: bool = False) -> list[list[float]]:
        """``score_encoded_padded`` as one list per solution (``StepScores.rows``)."""
        return self.score_encoded_padded(encoded, policy, padding_side, progress).rows()  # type: ignore[attr-defined]

    def score_batch(self, items: Sequence[tuple[str, Sequence[str]]], policy: BatchPolicy | None = None,
                    padding_side: str = "right", progress: bool = False, too_long: str = "skip") -> list[list[float]]:
        """``score_padded`` as one list per item, ``len == len(steps)``; NaN for steps not scored (cut by
        max_length, or the whole item when not even its first step fits)."""
        return self.score_padded(items, policy, padding_side, progress, too_long).rows()

    def score(self, problem: str, steps: Sequence[str]) -> list[float]:
        """P(step correct) for every step of one solution (an error if none of it fits max_length)."""
        return self.score_batch([(problem, steps)], too_long="error")[0]
