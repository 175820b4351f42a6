"""The Process Reward Model: a causal-LM backbone plus a value head at every step end.

Chapter 2 of the course. One forward pass reads the whole solution; the hidden
state at the last token of each step's separator goes through a linear value
head (always in fp32, whatever the backbone's dtype) to one logit per step;
``sigmoid(logit)`` is P(step correct). Optionally (chapter 5) the PRM also reads
a frozen whole LM's per-token surprise through a learned gate, which lowers the
logit of a step whose tokens, or an earlier step's, the LM did not expect
(``prm_lib.surprise``). Step positions come from
``prm_lib.steps.encode_solution`` and are gathered in one vectorised
``torch.gather`` (``prm_lib.batching.gather_steps``): no per-token Python loop, no ``.item()`` per token.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from . import __version__
from .aggregate import StepScores
from .backbones import DEFAULT_BACKBONE, default_dtype, ensure_pad_token, load_backbone, quiet_loading, resolve_device
from .batching import Batch, BatchPolicy, ScoresAsLists, collate, gather_steps, score_in_batches
from .objectives import objective as objective_by_name
from .steps import DEFAULT_SEPARATOR, EncodedSolution, encode_solutions
from .surprise import SurpriseReader, SurpriseSource

CONFIG_FILE = "prm_config.json"
HEAD_FILE = "value_head.safetensors"
BACKBONE_DIR = "backbone"
HEAD_SEED = 0


class _BackboneWatch:
    """Tells whether any backbone weight changed in place since it was loaded: each parameter's version
    counter, which torch bumps on every in-place change (an optimizer step, ``load_state_dict``, a hand edit
    under ``no_grad``); a parameter replaced by another object counts as changed too. Reading the counters
    costs nothing per weight, whatever the model's size."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        self.versions = [p._version for p in self.params]

    def changed(self, params: Sequence[nn.Parameter]) -> bool:
        params = list(params)
        return len(params) != len(self.params) or any(
            p is not q or p._version != v for p, q, v in zip(params, self.params, self.versions))

    def __deepcopy__(self, memo: dict[int, Any]) -> "_BackboneWatch":
        """A copied model's weights are fresh tensors (version 0): the copy watches them from their own
        counters, and a weight already changed in the original stays changed."""
        import copy

        new = _BackboneWatch.__new__(_BackboneWatch)
        new.params = [copy.deepcopy(p, memo) for p in self.params]
        new.versions = [q._version if p._version == v else -1
                        for p, q, v in zip(self.params, new.params, self.versions)]
        return new


def _no_mask_mapping(backbone: nn.Module) -> dict[str, None] | None:
    """``{"full_attention": None}`` if every layer of the backbone attends causally over the whole row and its
    forward takes that prepared mapping of masks per layer type (transformers' Qwen2 does; Llama does not) to
    mean "no mask"; else None (the backbone builds its mask itself).

    Decided by behaviour: two tokens are read with no mask and with the mapping, in eval mode (no dropout,
    no random numbers drawn); the mapping is taken only if it runs and gives the same hidden states.
    """
    config = backbone.config
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"} or (getattr(config, "use_sliding_window", False)
                                       and getattr(config, "sliding_window", None)):
        return None
    mapping = {"full_attention": None}
    parameter = next(backbone.parameters(), None)
    if parameter is None or parameter.device.type == "meta":
        return None
    ids = torch.zeros((1, 2), dtype=torch.long, device=parameter.device)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            plain = backbone(input_ids=ids, use_cache=False).last_hidden_state
            mapped = backbone(input_ids=ids, attention_mask=mapping, use_cache=False).last_hidden_state
    except Exception:  # noqa: BLE001 (a backbone that cannot read the mapping fails in its own way)
        return None
    finally:
        backbone.train(was_training)
    return mapping if torch.equal(plain, mapped) else None


class ProcessRewardModel(ScoresAsLists, nn.Module):
    """Backbone + value head; ``score`` returns P(step correct) for every step (``score_batch``, ``score_encoded``:
    the list forms of ``score_padded``, ``score_encoded_padded``)."""

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer: Any,
        *,
        backbone_name: str | None = None,
        n_layers: int | None = None,
        separator: str = DEFAULT_SEPARATOR,
        max_length: int | None = None,
        surprise: SurpriseSource | None = None,
        objective: str = "prm",
    ) -> None:
        super().__init__()
        # what the head was trained to predict (prm_lib.objectives): saved with the model, so a loaded ORM
        # is read at its last step and refused where a score per step is needed
        self.objective = objective_by_name(objective).name
        # Keep the transformer body: the LM head's vocabulary-sized logits are never needed.
        self.backbone = getattr(backbone, "base_model", backbone)
        self.tokenizer = ensure_pad_token(tokenizer)
        self.backbone_name = backbone_name
        self.n_layers = n_layers
        self.separator = separator
        config = self.backbone.config
        self.max_length = max_length or getattr(config, "max_position_embeddings", None)
        hidden = config.hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        gen = torch.Generator().manual_seed(HEAD_SEED)
        with torch.no_grad():  # seeded, so an untrained PRM scores the same everywhere
            self.value_head.weight.copy_(torch.randn(1, hidden, generator=gen) / math.sqrt(hidden))
            self.value_head.bias.zero_()
        self.value_head.to(next(self.backbone.parameters()).device)
        # Optional second input: the surprise of a frozen whole LM at every token, read by a learned gate
        # (prm_lib.surprise). The source is a plain attribute, not a submodule: never trained or saved.
        if surprise is not None:  # ids from another tokenizer would mean other text to the frozen LM
            surprise.check_tokenizer(self.tokenizer, f"the PRM on {backbone_name or 'this backbone'}")
        self.surprise_source = surprise
        self.reader = SurpriseReader(hidden).to(self.value_head.weight.device) if surprise is not None else None
        # Whether the backbone's weights may differ from those its name loads: saving then writes them
        # (``save``). The trainer sets it (``mark_backbone_changed``); a backbone without a name always counts,
        # and so does any weight changed in place since now (``_BackboneWatch``).
        self.backbone_changed = backbone_name is None
        # LoRA adapters injected into the backbone (prm_lib.lora.LoraSettings), or None
        self.lora: Any = None
        self._backbone_watch = _BackboneWatch(self.backbone.parameters())
        # Right padding: let the backbone number the positions (None: only on CUDA; see forward).
        self.implicit_positions: bool | None = None
        self.no_mask = _no_mask_mapping(self.backbone)

    # -- construction ----------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        name: str = DEFAULT_BACKBONE,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        n_layers: int | None = None,
        separator: str = DEFAULT_SEPARATOR,
        max_length: int | None = None,
        surprise_from: str | None = None,
        objective: str = "prm",
        surprise_dtype: torch.dtype | None = None,
    ) -> "ProcessRewardModel":
        """A fresh (untrained) PRM on a named backbone (see ``prm_lib.backbones``); ``objective="orm"``
        makes it an ORM (``prm_lib.objectives``).

        ``surprise_from`` names a whole causal LM (usually the backbone's own name) whose per-token
        surprise the PRM reads beside its hidden states (``prm_lib.surprise``), in ``surprise_dtype``
        (default: ``dtype``); it must share the backbone's tokenizer.
        """
        model, tokenizer = load_backbone(name, device=device, dtype=dtype, n_layers=n_layers)
        device = next(model.parameters()).device
        source = SurpriseSource.shared(surprise_from, device=device, dtype=surprise_dtype or dtype) if surprise_from else None
        return cls(model, tokenizer, backbone_name=name, n_layers=n_layers, separator=separator, max_length=max_length,
                   surprise=source, objective=objective)

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    # -- the forward pass --------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        """Step logits (B, S) in fp32; entries where ``batch.step_mask`` is False are meaningless.

        The value head reads the backbone's hidden state at each step end (``hidden_states``); a PRM
        built with ``surprise_from`` subtracts what its reader makes of the frozen LM's surprise.
        """
        hidden = self.hidden_states(batch)  # (B, T, H)
        step_hidden = gather_steps(hidden, batch.step_positions)  # (B, S, H)
        # fp32 (the head's dtype) but under FSDP's bf16 mixed precision, which casts the head's weights too
        logits = self.value_head(step_hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()
        if self.reader is None:
            return logits
        surprise = batch.surprise if batch.surprise is not None else self.surprise_of(batch)
        first = batch.first_step if batch.first_step is not None else torch.zeros(len(hidden), dtype=torch.long,
                                                                                  device=hidden.device)
        return logits - self.reader(hidden, surprise, batch.step_positions, first)

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        """The backbone's last hidden states (B, T, H) for ``batch``: what the value head and the reader see.

        A linear probe (``prm_lib.course.probe``) reads them with the backbone frozen.

        With right padding the pads come after every real token, and causal attention never
        looks forward, so no padding mask is needed: the backbone takes its plain causal path
        (flash attention on a GPU). Left padding needs the mask.

        Right-padded rows' real tokens sit at positions 0..n-1 whatever the padding, so on a GPU the
        positions are left to the backbone (``implicit_positions``): given explicitly, the pads' repeated
        positions read to transformers as several sequences packed in one row, and it builds a
        (B, 1, T, T) mask (no flash attention) after reading a GPU value back, a sync in every forward.
        On the CPU the explicit positions stay: every row is numbered the same way whatever runs it.
        """
        implicit = self.implicit_positions if self.implicit_positions is not None else self.device.type == "cuda"
        right = batch.padding_side == "right"
        if right and implicit:
            # A backbone that takes a prepared mask mapping (Qwen2) is told "no mask" outright, so it skips
            # building one, and with it a look at the positions that reads a GPU value back.
            hidden = self.backbone(input_ids=batch.input_ids, attention_mask=self.no_mask, position_ids=None,
                                   use_cache=False).last_hidden_state
        else:
            hidden = self.backbone(
                input_ids=batch.input_ids,
                attention_mask=None if right else batch.attention_mask,
                position_ids=batch.position_ids,
                use_cache=False,
            ).last_hidden_state  # (B, T, H)
        return hidden

    def to(self, *args: Any, **kwargs: Any) -> "ProcessRewardModel":
        """``nn.Module.to``, and the frozen surprise LM follows the model to its device."""
        moved = super().to(*args, **kwargs)
        if self.surprise_source is not None:
            self.surprise_source.to(self.device)
        return moved

    @property
    def reads_surprise(self) -> bool:
        return self.reader is not None

    def surprise_of(self, batch: Batch) -> torch.Tensor:
        """(B, T) surprise of the frozen LM at every token of ``batch`` (on this model's device)."""
        if self.surprise_source is None:
            raise ValueError("this PRM reads no surprise (built without surprise_from)")
        return self.surprise_source(batch.input_ids, batch.attention_mask).to(self.device)

    @torch.inference_mode()
    def attach_surprise(self, encoded: Sequence[EncodedSolution], progress: bool = False, cache: bool = False) -> None:
        """Compute each solution's surprise once and keep it on the solution (``EncodedSolution.surprise``),
        so training epochs and evaluations reuse it instead of re-running the frozen LM.

        ``cache=True`` also keeps the values on disk under ``$PRM_LIB_CACHE/surprise``, keyed by the LM,
        device kind, dtype and every token id: a PRM and an ORM trained on the same solutions (or a
        second training seed) compute them once.
        """
        todo = [e for e in encoded if e.surprise is None]
        if self.surprise_source is None or not todo:
            return
        path = self.surprise_source.cache_path([e.input_ids for e in todo]) if cache else None
        if path is not None and path.exists():
            stored = torch.load(path, weights_only=True)
            if len(stored) == len(todo) and all(len(v) == len(e) for v, e in zip(stored, todo)):
                for e, values in zip(todo, stored):
                    e.surprise = values.tolist()
                return
        for e, (written, best) in zip(todo, self.surprise_source.read([e.input_ids for e in todo], progress=progress)):
            e.surprise = (best - written).tolist()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save([torch.tensor(e.surprise, dtype=torch.float32) for e in todo], tmp)
            tmp.replace(path)

    # -- encoding ------------------------------------------------------------
    def encode(
        self,
        items: Sequence[tuple[str, Sequence[str]]],
        labels: Sequence[Sequence[float] | None] | None = None,
        *,
        skipped: list[int] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[EncodedSolution]:
        """``prm_lib.steps.encode_solutions`` with this model's tokenizer, separator and max_length."""
        return encode_solutions(self.tokenizer, items, self.max_length, separator=self.separator, labels=labels,
                                skipped=skipped, names=names)

    def collate(self, encoded: Sequence[EncodedSolution], padding_side: str = "right", pad_to_multiple_of: int = 1) -> Batch:
        return collate(encoded, self.tokenizer.pad_token_id, padding_side, pad_to_multiple_of).to(self.device)

    # -- scoring ---------------------------------------------------------------
    @torch.inference_mode()
    def score_encoded_padded(
        self,
        encoded: Sequence[EncodedSolution],
        policy: BatchPolicy | None = None,
        padding_side: str = "right",
        progress: bool = False,
    ) -> StepScores:
        """P(step correct) for already-encoded solutions, in their order, as they are computed: a (B, S)
        tensor with the mask of each solution's steps (``StepScores``; steps cut by max_length are NaN inside
        the mask), which ``prm_lib.aggregate`` reads directly.
        """
        policy = policy or BatchPolicy.for_device(self.device)
        self.attach_surprise(encoded, progress=progress)  # the frozen LM once per distinct solution, if read
        was_training = self.training
        self.eval()

        def probabilities(idx: list[int]) -> torch.Tensor:
            batch = self.collate([encoded[i] for i in idx], padding_side)
            return torch.sigmoid(self(batch)).masked_fill(~batch.step_mask, float("nan"))

        try:
            probs, mask = score_in_batches(encoded, policy, probabilities, progress)
        finally:
            self.train(was_training)
        return StepScores(probs, mask)

    # -- persistence -------------------------------------------------------------
    def head_modules(self) -> dict[str, nn.Module]:
        """The parts trained from scratch (the head's learning rate): the value head, and the reader if any."""
        return {"": self.value_head} if self.reader is None else {"": self.value_head, "reader.": self.reader}

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The value head's tensors as ``weight``/``bias`` (the saved format of every PRM) plus ``reader.*``."""
        return {prefix + k: v for prefix, module in self.head_modules().items() for k, v in module.state_dict().items()}

    def load_head_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of ``head_state_dict``; a missing or extra tensor is an error that names it."""
        for prefix, module in self.head_modules().items():
            part = {k[len(prefix):]: v for k, v in state.items()
                    if k.startswith(prefix) and (prefix or not k.startswith("reader."))}
            module.load_state_dict(part)
        extra = sorted(k for k in state if k.startswith("reader.")) if self.reader is None else []
        if extra:
            raise ValueError(f"the saved head has reader tensors ({', '.join(extra)}) but this PRM reads no surprise")

    def mark_backbone_changed(self) -> None:
        """Record that the backbone's weights changed (the trainer calls it when it updates them; call it after
        changing them by hand), so ``save`` writes them instead of only the backbone's name."""
        self.backbone_changed = True

    def backbone_is_pretrained(self) -> bool:
        """True if the backbone has the weights its name loads (so saving its name suffices)."""
        return not self.backbone_changed and not self._backbone_watch.changed(self.backbone.parameters())

    def config_dict(self) -> dict[str, Any]:
        return {
            "format": "prm_lib.ProcessRewardModel/1",
            "prm_lib_version": __version__,
            "backbone_name": self.backbone_name,
            "n_layers": self.n_layers,
            "separator": self.separator,
            "max_length": self.max_length,
            "hidden_size": self.value_head.in_features,
            "surprise_from": self.surprise_source.name if self.surprise_source is not None else None,
            "objective": self.objective,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the value head, the formatting settings, and the backbone's weights if training
        changed them (else only its name): ``ProcessRewardModel.load`` gives the same scores."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config_dict()
        if self.lora is not None:  # the base by its name, the adapters beside the head
            from safetensors.torch import save_file as save_tensors

            from .lora import ADAPTER_FILE, adapter_state_dict

            if not getattr(self, "lora_base_pretrained", False):
                raise ValueError("this LoRA PRM's base backbone is not the one its name loads, so its adapters "
                                 "alone cannot be saved; merge them first (prm_lib.lora.merge_into_backbone)")
            config["backbone_weights"], config["lora"] = None, self.lora.to_dict()
            if (directory / BACKBONE_DIR).exists():
                shutil.rmtree(directory / BACKBONE_DIR)
            save_tensors({k: v.float().cpu().contiguous() for k, v in adapter_state_dict(self).items()},
                         directory / ADAPTER_FILE)
        elif self.backbone_is_pretrained():
            config["backbone_weights"] = None
            if (directory / BACKBONE_DIR).exists():
                shutil.rmtree(directory / BACKBONE_DIR)
        else:
            config["backbone_weights"] = BACKBONE_DIR
            self.backbone.save_pretrained(directory / BACKBONE_DIR)
            self.tokenizer.save_pretrained(directory / BACKBONE_DIR)
        head = {k: v.detach().float().cpu().contiguous() for k, v in self.head_state_dict().items()}
        save_file(head, directory / HEAD_FILE)
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> "ProcessRewardModel":
        """Rebuild a PRM written by ``save``; a config without an ``objective`` is a PRM's."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.exists():
            raise FileNotFoundError(f"{directory} is not a saved ProcessRewardModel: {CONFIG_FILE} is missing")
        config = json.loads(config_path.read_text())
        if not str(config.get("format", "")).startswith("prm_lib.ProcessRewardModel/"):
            raise ValueError(f"{config_path} is not a prm_lib ProcessRewardModel config")
        missing = [HEAD_FILE] if not (directory / HEAD_FILE).is_file() else []
        if config.get("backbone_weights"):
            body = directory / config["backbone_weights"]
            if not body.is_dir():
                missing.append(f"{config['backbone_weights']}/ (the trained backbone's weights and tokenizer)")
            elif not (body / "config.json").is_file():
                missing.append(f"{config['backbone_weights']}/config.json")
        if config.get("lora") and not (directory / "lora_adapter.safetensors").is_file():
            missing.append("lora_adapter.safetensors (the LoRA adapters)")
        if missing:
            raise FileNotFoundError(f"{directory} is an incomplete ProcessRewardModel checkpoint: "
                                    f"{', '.join(missing)} missing")
        settings = dict(separator=config["separator"], max_length=config["max_length"], n_layers=config["n_layers"],
                        objective=config.get("objective", "prm"))
        if config.get("surprise_from"):
            dev = resolve_device(device)
            settings["surprise"] = SurpriseSource.shared(config["surprise_from"], device=dev, dtype=dtype)
        if config.get("backbone_weights"):
            from transformers import AutoModel, AutoTokenizer

            dev = resolve_device(device)
            with quiet_loading():
                body = AutoModel.from_pretrained(directory / config["backbone_weights"], dtype=dtype or default_dtype(dev))
            tokenizer = AutoTokenizer.from_pretrained(directory / config["backbone_weights"])
            prm = cls(body.to(dev).eval(), tokenizer, backbone_name=None, **settings)
            prm.backbone_name = config["backbone_name"]  # provenance only: the weights are the saved ones
        else:
            model, tokenizer = load_backbone(config["backbone_name"], device, dtype, config["n_layers"])
            prm = cls(model, tokenizer, backbone_name=config["backbone_name"], **settings)
        prm.load_head_state_dict({k: v.to(prm.device) for k, v in load_file(directory / HEAD_FILE).items()})
        if config.get("lora"):
            from .lora import ADAPTER_FILE, LoraSettings, add_lora, load_adapters

            add_lora(prm, LoraSettings.of(**config["lora"]))
            load_adapters(prm, load_file(directory / ADAPTER_FILE))
        prm.eval()
        return prm

    # the names Hugging Face models use
    from_pretrained = load
    save_pretrained = save
