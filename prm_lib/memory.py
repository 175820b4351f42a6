"""GPU memory that training a PRM takes per GPU, without and with FSDP (appendix B).

Parameter counts come from the backbone's real shape, built on PyTorch's meta
device (no weights are allocated or downloaded); bytes per parameter follow from
how each path keeps its state:

* one GPU or plain data parallel in mixed precision (``prm_lib``'s default on CUDA,
  ``precision="bf16"``): fp32 weights, fp32 gradients and AdamW's two moments in fp32
  (16 bytes per parameter), plus the bf16 copies of the weights that autocast keeps
  while a step runs (2 bytes): 18 bytes per parameter, whole on every GPU;
* the same in pure bf16 (``precision="bf16-pure"``): 8 bytes per parameter, but an
  update smaller than about 1/256 of its weight rounds away;
* FSDP (``prm_lib/accelerate_fsdp.yaml``): fp32 weights, gradients and both moments (16 bytes
  per parameter) split across the GPUs, plus, while a unit runs, its weights
  gathered in bf16 (this one and the next, prefetched) and its bf16 gradients
  before they are reduce-scattered: 6 bytes per parameter of the largest unit.

* LoRA (``lora_rank``, ``prm_lib.lora``) in mixed precision: the frozen base weights in fp32 (4 bytes per
  parameter: no gradient, no optimizer state, autocast casts them per use without keeping a copy), and the
  adapters and the value head at 18 bytes per parameter like any trained weight.

A PRM that reads the frozen LM's surprise (``surprise=True``) also holds that whole LM
(body and LM head) in bf16 on every GPU, and while it reads, one chunk of fp32 logits
(``prm_lib.surprise.LOGIT_CHUNK_BYTES``): ``surprise_lm_gib``.

Activations come on top of all of these and grow with the tokens per GPU (batch size times
length); they are not counted here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The shapes in each model's config.json (Qwen/Qwen2.5-0.5B, -1.5B, -7B on the model hub).
QWEN25_SHAPES: dict[str, dict] = {
    "Qwen2.5-0.5B": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "Qwen2.5-1.5B": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "Qwen2.5-7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}
MIXED_BYTES = 18  # fp32 weight + gradient + 2 AdamW moments, and autocast's bf16 copy of the weight
PURE_BF16_BYTES = 8  # bf16 weight + gradient + 2 AdamW moments
FSDP_BYTES = 16  # fp32 weight + gradient + 2 AdamW moments, sharded
UNIT_BYTES = 6  # bf16: two gathered units' weights and one unit's gradients
FROZEN_BYTES = 4  # a frozen fp32 base weight under LoRA
GIB = 1024**3


@dataclass(frozen=True)
class PRMSize:
    """Parameters of a PRM on a backbone: the transformer body (no LM head) plus the value head."""

    name: str
    total: int
    layer: int  # one decoder layer: FSDP's unit
    root: int  # what is not in a layer (embeddings, final norm, value head): FSDP's root unit
    lm_head: int = 0  # the LM head's own weights (0 when tied to the embeddings): the frozen surprise LM has them
    head: int = 0  # the value head's (hidden_size + 1): what trains beside LoRA's adapters

    @property
    def largest_unit(self) -> int:
        return max(self.layer, self.root)


def prm_size(name: str, shape: dict | None = None) -> PRMSize:
    """Count a Qwen2 PRM's parameters from its shape (``QWEN25_SHAPES[name]`` by default)."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    if shape is None:
        if name not in QWEN25_SHAPES:
            raise ValueError(f"no shape known for {name!r}; known: {', '.join(QWEN25_SHAPES)} (or pass shape=)")
        shape = QWEN25_SHAPES[name]
    with torch.device("meta"):
        body = Qwen2Model(Qwen2Config(**shape))
    head = shape["hidden_size"] + 1  # the value head: one weight per hidden unit and a bias
    total = sum(p.numel() for p in body.parameters()) + head
    layer = sum(p.numel() for p in body.layers[0].parameters())
    lm_head = 0 if shape.get("tie_word_embeddings", True) else shape["vocab_size"] * shape["hidden_size"]
    return PRMSize(name, total, layer, total - layer * shape["num_hidden_layers"], lm_head, head)


def lora_parameters(name: str, rank: int, targets: tuple[str, ...] | None = None, shape: dict | None = None) -> int:
    """LoRA's adapter parameters on a Qwen2 backbone: ``rank * (in + out)`` for each targeted linear module."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    from .lora import DEFAULT_TARGETS

    targets = tuple(targets or DEFAULT_TARGETS)
    with torch.device("meta"):
        body = Qwen2Model(Qwen2Config(**(shape or QWEN25_SHAPES[name])))
    return sum(rank * (m.in_features + m.out_features) for n, m in body.named_modules()
               if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets)


def lora_gib(size: PRMSize, adapters: int) -> float:
    """Weights, gradients and AdamW state on one GPU with ``adapters`` LoRA parameters (mixed precision), in GiB:
    the frozen backbone, then the adapters and the value head trained."""
    return ((size.total - size.head) * FROZEN_BYTES + (adapters + size.head) * MIXED_BYTES) / GIB


def mixed_gib(size: PRMSize) -> float:
    """Weights, gradients and AdamW state on every GPU without sharding, mixed precision (the default), in GiB."""
    return size.total * MIXED_BYTES / GIB


def plain_gib(size: PRMSize) -> float:
    """The same in pure bf16 (``precision="bf16-pure"``), in GiB."""
    return size.total * PURE_BF16_BYTES / GIB


def surprise_lm_gib(size: PRMSize) -> float:
    """The frozen whole LM a surprise-reading PRM keeps beside it, in bf16, and one chunk of its logits, in GiB."""
    from .surprise import LOGIT_CHUNK_BYTES

    return ((size.total + size.lm_head) * 2 + LOGIT_CHUNK_BYTES) / GIB


def fsdp_gib(size: PRMSize, n_gpus: int) -> float:
    """The same under FSDP on ``n_gpus`` GPUs, per GPU, in GiB (gathered units included)."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be at least 1, got {n_gpus}")
    return (size.total * FSDP_BYTES / n_gpus + size.largest_unit * UNIT_BYTES) / GIB


def memory_table(names: tuple[str, ...] = tuple(QWEN25_SHAPES), gpus: tuple[int, ...] = (2, 4, 8),
                 lora_rank: int | None = None) -> list[dict]:
    """One row per backbone: parameters (billions), GiB on one GPU (mixed precision, the default, or pure
    bf16), per GPU under FSDP (fp32 state) on each GPU count, and what reading the frozen LM's surprise adds;
    with ``lora_rank``, also one GPU with LoRA adapters of that rank on the default targets."""
    rows = []
    for name in names:
        size = prm_size(name)
        row = {"backbone": name, "parameters (B)": round(size.total / 1e9, 2),
               "1 GPU, mixed": round(mixed_gib(size), 1),
               "1 GPU, pure bf16": round(plain_gib(size), 1)}
        row.update({f"FSDP, {n} GPUs": round(fsdp_gib(size, n), 1) for n in gpus})
        row["+ surprise LM"] = round(surprise_lm_gib(size), 1)
        if lora_rank is not None:
            row[f"1 GPU, LoRA r={lora_rank}"] = round(lora_gib(size, lora_parameters(name, lora_rank)), 1)
        rows.append(row)
    return rows
