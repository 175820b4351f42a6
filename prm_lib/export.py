"""A prm_lib PRM as a Hugging Face token-classification model (``python -m prm_lib export-model``).

Appendix B. A ``ProcessRewardModel`` is a transformer body and a value head ``nn.Linear(hidden, 1)``
whose logit l gives P(correct) = sigmoid(l). A token classifier with two labels gives
softmax(logits)[1]; with the head's rows set to [0, w] (and bias [0, b]) its logits are [0, l] and
softmax([0, l])[1] = sigmoid(l) exactly: the same score, and any tool that reads TRL's PRMs
(``AutoModelForTokenClassification``, ``pipeline("token-classification")``, this library's ``trl``
scorer) reads the PRM. Written in float32, so the round trip keeps the scores to float precision.

The reading layout goes in ``config.prm_lib``: the separator, that prm_lib puts it after the
problem too (TRL does not), the ids put first, ``max_length`` and the objective;
``prm_lib.scorers.token_classifier.TokenClassifierScorer`` reads it from there. A PRM that reads a frozen LM's
surprise is refused (the token classifier cannot hold the second model); an ORM is exported with
``objective: "orm"`` recorded, and only its last step's score means anything.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__

FORMAT = "prm_lib.TokenClassifier/1"


def _classifier(model: nn.Module) -> nn.Linear:
    head = getattr(model, "score", None) or getattr(model, "classifier", None)
    if not isinstance(head, nn.Linear) or head.out_features != 2:
        raise ValueError(f"{type(model).__name__} has no two-label linear head (score or classifier) to write into")
    return head


def token_classifier_config(prm: Any) -> Any:
    """The backbone's config as a two-label token classifier's, with the reading layout in ``prm_lib``."""
    config = copy.deepcopy(prm.backbone.config)
    config.num_labels = 2
    config.id2label = {0: "incorrect", 1: "correct"}
    config.label2id = {"incorrect": 0, "correct": 1}
    config.pad_token_id = prm.tokenizer.pad_token_id
    config.prm_lib = {
        "format": FORMAT,
        "prm_lib_version": __version__,
        "separator": prm.separator,
        "problem_separator": True,  # prm_lib: problem | SEP | step 1 | SEP | ... (TRL: no SEP after the problem)
        "start": "tokenizer",  # the ids the tokenizer itself puts first (special_prefix_ids), not TRL's BOS
        "correct_label": 1,
        "max_length": prm.max_length,
        "objective": prm.objective,
        "read_at": "every step" if prm.objective == "prm" else "the last step only",
        "backbone_name": prm.backbone_name,
    }
    return config


def export_token_classifier(prm: Any, out_dir: str | Path) -> dict[str, Any]:
    """Write ``prm`` to ``out_dir`` as an ``AutoModelForTokenClassification`` with its tokenizer; returns
    what was written (architecture, layout)."""
    from transformers import AutoModelForTokenClassification

    if prm.reads_surprise:
        raise ValueError("this PRM reads a frozen LM's per-token surprise through its reader (built with "
                         f"surprise_from={prm.surprise_source.name!r}): its scores need that second model, which a "
                         "token classifier cannot hold. Export a PRM trained without surprise_from")
    config = token_classifier_config(prm)
    try:
        with torch.device("cpu"):
            model = AutoModelForTokenClassification.from_config(config, dtype=torch.float32)
    except ValueError as err:
        raise ValueError(f"transformers has no token-classification class for a {config.model_type!r} backbone, "
                         f"so this PRM cannot be exported as one ({err})") from None
    state = {k: v.detach().float().cpu() for k, v in prm.backbone.state_dict().items()}
    model.base_model.load_state_dict(state, strict=True)
    head = _classifier(model)
    weight = prm.value_head.weight.detach().float().cpu()  # (1, hidden)
    bias = prm.value_head.bias.detach().float().cpu()
    if head.bias is None and bias.abs().max() > 0:
        raise ValueError(f"{type(model).__name__}'s head has no bias to hold the value head's bias {bias.item():.4g}")
    with torch.no_grad():
        head.weight.copy_(torch.cat([torch.zeros_like(weight), weight]))  # logits [0, l]: softmax[1] = sigmoid(l)
        if head.bias is not None:
            head.bias.copy_(torch.cat([torch.zeros_like(bias), bias]))
    config.architectures = [type(model).__name__]
    out = Path(out_dir)
    model.save_pretrained(out)
    prm.tokenizer.save_pretrained(out)
    return {"out": str(out), "architecture": type(model).__name__, **{k: config.prm_lib[k] for k in
                                                                          ("separator", "problem_separator", "start",
                                                                           "max_length", "objective", "read_at")}}
