"""What every adapter of a published PRM shares: ``ProcessRewardModel``'s scoring interface around a read.

An adapter knows two things about one family of PRMs: how ``(problem, steps)`` becomes token ids
with one read position per step (``encode``), and how the model's output at those positions
becomes P(step correct) (``read``). The rest is here and works as ``ProcessRewardModel.score_encoded_padded``
does: batches planned by length, right padding, one forward per batch, the positions gathered in
one ``torch.gather``, NaN for steps cut by ``max_length``, and both result forms (one list per
solution, or padded ``StepScores``). So ``PRMVerifier``, ``select``, ``beam_search`` and ``eval`` take
an adapter wherever they take a PRM.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from ..aggregate import StepScores
from ..backbones import default_dtype, ensure_pad_token, resolve_device
from ..batching import Batch, BatchPolicy, ScoresAsLists, collate, score_in_batches
from ..objectives import objective as objective_by_name
from ..steps import EncodedSolution, TooLongError, validate_solution

Item = tuple[str, Sequence[str]]


def single_token_id(tokenizer: Any, text: str, role: str) -> int:
    """The one token id of ``text``; a text that is not exactly one token is refused, naming its ids.

    A score read at a tag (or from the logits of "+" and "-") is only the model's if the tag is the
    token it was trained on: 'ки' and ' ки' are different tokens in many vocabularies (OpenRLHF #509).
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise ValueError(f"the {role} {text!r} is {len(ids)} tokens in this tokenizer (ids {ids}: {pieces}), "
                         "not exactly one: its score would be read at the wrong token. Use the text that is one "
                         "token in the model's vocabulary (with or without its leading space), or add it as a "
                         "token (tokenizer.add_tokens) if the model was trained with it as one")
    return ids[0]


def cut_to_max_length(n: int, input_ids: list[int], positions: list[int], n_steps: int,
                      max_length: int | None) -> EncodedSolution:
    """One solution's ids and read positions, cut after the last step whose read position fits in ``max_length``.

    The models are causal: logits at a kept position do not depend on tokens after it, so cutting
    there leaves every kept step's score unchanged. Cut steps score NaN; a solution with no step
    that fits is an error (as ``prm_lib.steps.encode_solutions``).
    """
    kept = [p for p in positions if max_length is None or p < max_length]
    if not kept:
        raise TooLongError(f"solution {n}: its first step is read at token {positions[0]}, beyond max_length="
                         f"{max_length}; no step can be scored")
    if len(kept) < n_steps:
        warnings.warn(f"solution {n} is {len(input_ids)} tokens, over max_length={max_length}: scored its first "
                      f"{len(kept)} of {n_steps} steps; the remaining {n_steps - len(kept)} get no score (NaN)",
                      stacklevel=3)
    return EncodedSolution(input_ids=list(input_ids[: kept[-1] + 1]), step_end_positions=kept, n_steps=n_steps)


def model_source(name_or_path: str | Path) -> str | Path:
    """A local model folder, or a hub id (``org/name``, reached only where a hub is); anything else is
    refused here rather than by a hub lookup that cannot succeed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if "/" in text and not text.startswith((".", "/", "~")):
        return text
    raise ValueError(f"{text!r} is neither a local model folder nor a hub id like 'RLHFlow/Llama3.1-8B-PRM-Deepseek-Data'")


class StepScorer(ScoresAsLists):
    """Base of the adapters: ``score_batch`` / ``score_encoded`` / ``score`` as ``ProcessRewardModel``'s.

    A subclass sets ``family`` and ``conventions`` (a frozen dataclass: its whole reading convention
    in one place) and implements ``encode`` and ``read``.
    """

    family = ""
    auto_class = "AutoModelForCausalLM"  # how ``from_pretrained`` loads the model

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_length: int | None = None,
                 objective: str = "prm") -> None:
        self.model = model.eval()
        self.tokenizer = ensure_pad_token(tokenizer)
        config = getattr(model, "config", None)
        self.max_length = max_length or getattr(config, "max_position_embeddings", None)
        # what the scores were trained on (prm_lib.objectives): an exported ORM is read at its last step only
        self.objective = objective_by_name(objective).name

    @classmethod
    def from_pretrained(cls, name_or_path: str, conventions: Any = None, device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, max_length: int | None = None,
                        trust_remote_code: bool = False) -> "StepScorer":
        """The adapter on a hub id or local folder (the model and its tokenizer), in ``dtype`` (default:
        bf16 on CUDA, fp32 elsewhere). ``trust_remote_code`` runs the model folder's own Python code
        (a released model with a custom class needs it); it is off unless asked for."""
        from transformers import AutoTokenizer

        folder = model_source(name_or_path)
        dev = resolve_device(device)
        try:
            model = cls.load_model(folder, dtype or default_dtype(dev), trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise ValueError(f"could not load {name_or_path!r} for the {cls.family} scorer "
                             f"({err.__class__.__name__}: {str(err)[:300]})") from err
        return cls(model.to(dev), tokenizer, conventions=conventions, max_length=max_length)

    @classmethod
    def load_model(cls, folder: str | Path, dtype: torch.dtype, trust_remote_code: bool) -> torch.nn.Module:
        """The model in ``folder`` (or a hub id), loaded with ``auto_class``."""
        import transformers

        return getattr(transformers, cls.auto_class).from_pretrained(folder, dtype=dtype,
                                                                     trust_remote_code=trust_remote_code)

    # -- what a family defines -----------------------------------------------------------------
    @property
    def separator(self) -> str | None:
        """The text no step may contain (the model would read a step boundary in it); None: no such text."""
        raise NotImplementedError

    def encode(self, items: Sequence[Item]) -> list[EncodedSolution]:
        """Token ids of each solution and the position read for each of its steps."""
        raise NotImplementedError

    def read(self, batch: Batch) -> torch.Tensor:
        """(B, S) P(step correct) at ``batch.step_positions`` (entries outside ``batch.step_mask``: anything)."""
        raise NotImplementedError

    def validate_item(self, problem: str, steps: Sequence[str]) -> None:
        """Raise ValueError naming what makes this solution unscorable by this family (before encoding)."""
        validate_solution(problem, steps, None, self.separator)

    # -- scoring, shared ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def score_encoded_padded(self, encoded: Sequence[EncodedSolution], policy: BatchPolicy | None = None,
                             padding_side: str = "right", progress: bool = False) -> StepScores:
        """P(step correct) for encoded solutions, in their order, as a (B, S) tensor and the mask of each
        solution's steps (``StepScores``); NaN for steps cut by max_length."""
        if padding_side != "right":
            raise ValueError(f"padding_side={padding_side!r}: adapters pad on the right only (a causal model's real "
                             "tokens then keep their positions 0..n-1 whatever the padding)")
        policy = policy or BatchPolicy.for_device(self.device)

        def probabilities(idx: list[int]) -> torch.Tensor:
            batch = collate([encoded[i] for i in idx], self.tokenizer.pad_token_id, "right").to(self.device)
            return self.read(batch).float().masked_fill(~batch.step_mask, float("nan"))

        probs, mask = score_in_batches(encoded, policy, probabilities, progress)
        return StepScores(probs, mask)

    def check_items(self, items: Sequence[Item]) -> None:
        """Every item's family refusals (``validate_item``), naming the item, before anything is encoded."""
        for n, (problem, steps) in enumerate(items):
            try:
                self.validate_item(problem, steps)
            except (ValueError, TypeError) as err:
                raise type(err)(f"solution {n}: {err}" if len(items) > 1 else str(err)) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, {self.conventions!r})"

