"""Training-time settings of the backbone itself: dropout and gradient checkpointing.

Transformers' configs differ in whether dropout is on (some models ship with it on, most at 0.0), so a run
that sets ``dropout`` writes it everywhere the backbone reads it: its config (saved with its weights) and
the modules that copied the value when they were built."""

from __future__ import annotations

from typing import Any

from torch import nn

# the dropout probabilities transformers' configs use, by model family
DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout")


def set_dropout(backbone: nn.Module, p: float) -> dict[str, Any]:
    """Set every dropout of ``backbone`` to ``p``: the config's keys, each ``nn.Dropout`` and each module's
    copied ``attention_dropout``/``dropout`` float. Returns what was set (recorded in metrics.json)."""
    config = backbone.config
    keys = [k for k in DROPOUT_KEYS if isinstance(getattr(config, k, None), (int, float))]
    if not keys:
        raise ValueError(f"the backbone's config ({type(config).__name__}) names no dropout setting; "
                         f"looked for {', '.join(DROPOUT_KEYS)}")
    for k in keys:
        setattr(config, k, p)
    n_modules = 0
    for module in backbone.modules():
        if isinstance(module, nn.Dropout):
            module.p, n_modules = p, n_modules + 1
        for attr in ("attention_dropout", "dropout"):
            if isinstance(getattr(module, attr, None), float) and not isinstance(module, nn.Dropout):
                setattr(module, attr, p)
                n_modules += 1
    return {"dropout": p, "config_keys": keys, "modules": n_modules}


def enable_gradient_checkpointing(backbone: nn.Module) -> None:
    """Recompute each layer's activations in backward instead of keeping them (non-reentrant: it works
    with frozen embeddings and LoRA, where the layer's input needs no gradient)."""
    if not getattr(backbone, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(backbone).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers 5's name
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if getattr(backbone.config, "use_cache", False):
        backbone.config.use_cache = False
