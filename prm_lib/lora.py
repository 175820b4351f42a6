"""LoRA on a PRM's backbone through ``peft`` (the ``prm_lib[peft]`` extra): how a 7B PRM trains on one GPU.

The adapters are injected into the backbone's own modules (``peft.inject_adapter_in_model``), not wrapped
around it, so the backbone keeps its class and everything that reads it (layers, embeddings, its config)
reads it as before. The base weights are frozen; the adapters and the value head (and a surprise reader)
train. A saved LoRA PRM holds the adapters, the head and the base's name, not the base's weights;
``merge`` writes a plain PRM with the adapters folded into the backbone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .model import ProcessRewardModel

# the attention and MLP projections of Llama-style backbones (Qwen2, SmolLM2, Llama, Mistral)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_FILE = "lora_adapter.safetensors"


@dataclass(frozen=True)
class LoraSettings:
    """What a saved LoRA PRM records, so that loading injects the same adapters."""

    rank: int
    alpha: float
    targets: tuple[str, ...]

    @classmethod
    def of(cls, rank: int, alpha: float | None = None, targets: str | tuple[str, ...] | None = None) -> "LoraSettings":
        if rank < 1:
            raise ValueError(f"lora_rank must be at least 1, got {rank}")
        if isinstance(targets, str):
            targets = tuple(t.strip() for t in targets.split(",") if t.strip())
        return cls(rank, float(2 * rank if alpha is None else alpha), tuple(targets or DEFAULT_TARGETS))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "targets": list(self.targets)}


def require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise ModuleNotFoundError("LoRA needs the peft package: pip install 'prm_lib[peft]' (or pip install peft)") from None
    return peft


def add_lora(prm: "ProcessRewardModel", settings: LoraSettings) -> int:
    """Inject LoRA adapters into ``prm``'s backbone and freeze its base weights; returns the adapters'
    parameter count. A target that matches no module is an error naming the module names there are."""
    peft = require_peft()
    if getattr(prm, "lora", None) is not None:
        raise ValueError("this PRM already has LoRA adapters")
    names = {name.rsplit(".", 1)[-1] for name, m in prm.backbone.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [t for t in settings.targets if t not in names]
    if missing:
        raise ValueError(f"lora_targets {', '.join(missing)} name no linear module of the backbone; it has: "
                         f"{', '.join(sorted(names))}")
    # the base must be reloadable by name: a saved LoRA PRM keeps only the adapters (merge first otherwise)
    prm.lora_base_pretrained = prm.backbone_is_pretrained()
    for p in prm.backbone.parameters():
        p.requires_grad_(False)
    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.targets),
                             lora_dropout=0.0, bias="none")
    dtype = next(prm.backbone.parameters()).dtype
    peft.inject_adapter_in_model(config, prm.backbone)
    adapters = [p for n, p in prm.backbone.named_parameters() if "lora_" in n]
    for p in adapters:  # peft makes them fp32; they follow the backbone's dtype and device
        p.data = p.data.to(dtype=dtype, device=prm.device)
        p.requires_grad_(True)
    prm.lora = settings
    return sum(p.numel() for p in adapters)


def adapter_state_dict(prm: "ProcessRewardModel") -> dict[str, torch.Tensor]:
    """The adapters' weights only (what a saved LoRA PRM holds of its backbone)."""
    return {n: p.detach() for n, p in prm.backbone.named_parameters() if "lora_" in n}


def load_adapters(prm: "ProcessRewardModel", state: dict[str, torch.Tensor]) -> None:
    own = dict(prm.backbone.named_parameters())
    missing = sorted(set(n for n in own if "lora_" in n) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"the saved adapters do not fit this backbone: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value.to(own[name].dtype))


def merge_into_backbone(prm: "ProcessRewardModel") -> "ProcessRewardModel":
    """Fold every adapter into its base weight and put the plain module back: ``prm`` becomes a plain PRM
    (its backbone's weights written when saved), scoring as before up to rounding."""
    require_peft()
    from peft.tuners.lora import LoraLayer

    if getattr(prm, "lora", None) is None:
        raise ValueError("this PRM has no LoRA adapters to merge")
    for name, module in list(prm.backbone.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = prm.backbone.get_submodule(parent_name) if parent_name else prm.backbone
            setattr(parent, child, module.get_base_layer())
    prm.lora = None
    prm.mark_backbone_changed()
    return prm


def merge(checkpoint: str | Path, out: str | Path, device: str | torch.device | None = "cpu") -> Path:
    """``prm_lib merge``: load the LoRA PRM saved in ``checkpoint`` and write it to ``out`` as a plain PRM."""
    from .model import ProcessRewardModel

    prm = ProcessRewardModel.load(checkpoint, device=device, dtype=torch.float32)
    return merge_into_backbone(prm).save(out)


def trainable_share(prm: "ProcessRewardModel") -> float:
    """The share of the PRM's parameters that train (adapters, head, reader) over all of them."""
    params = list(prm.parameters())
    return sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)
