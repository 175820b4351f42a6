"""GPU memory that training a PRM takes per GPU, without and with FSDP (appendix B).

Parameter counts come from the backbone's real shape, built on PyTorch's meta
device (no weights are allocated or downloaded); bytes per parameter follow from
how each path keeps its state:

* one GPU or plain data parallel (``prm_lib``'s default on CUDA): bf16 weights,
  bf16 gradients and AdamW's two moments in bf16: 8 bytes per parameter, whole
  on every GPU;
* FSDP (``prm_lib/accelerate_fsdp.yaml``): fp32 weights, gradients and both moments (16 bytes
  per parameter) split across the GPUs, plus, while a unit runs, its weights
  gathered in bf16 (this one and the next, prefetched) and its bf16 gradients
  before they are reduce-scattered: 6 bytes per parameter of the largest unit.

Activations come on top of both and grow with the tokens per GPU (batch size times
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
PLAIN_BYTES = 8  # bf16 weight + gradient + 2 AdamW moments
FSDP_BYTES = 16  # fp32 weight + gradient + 2 AdamW moments, sharded
UNIT_BYTES = 6  # bf16: two gathered units' weights and one unit's gradients
GIB = 1024**3


@dataclass(frozen=True)
class PRMSize:
    """Parameters of a PRM on a backbone: the transformer body (no LM head) plus the value head."""

    name: str
    total: int
    layer: int  # one decoder layer: FSDP's unit
    root: int  # what is not in a layer (embeddings, final norm, value head): FSDP's root unit

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
    return PRMSize(name, total, layer, total - layer * shape["num_hidden_layers"])


def plain_gib(size: PRMSize) -> float:
    """Weights, gradients and AdamW state on every GPU without sharding, in GiB."""
    return size.total * PLAIN_BYTES / GIB


def fsdp_gib(size: PRMSize, n_gpus: int) -> float:
    """The same under FSDP on ``n_gpus`` GPUs, per GPU, in GiB (gathered units included)."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be at least 1, got {n_gpus}")
    return (size.total * FSDP_BYTES / n_gpus + size.largest_unit * UNIT_BYTES) / GIB


def memory_table(names: tuple[str, ...] = tuple(QWEN25_SHAPES), gpus: tuple[int, ...] = (2, 4, 8)) -> list[dict]:
    """One row per backbone: parameters (billions), GiB on one GPU (bf16 or fp32 state), and per GPU
    under FSDP (fp32 state) on each GPU count."""
    rows = []
    for name in names:
        size = prm_size(name)
        row = {"backbone": name, "parameters (B)": round(size.total / 1e9, 2),
               "1 GPU, bf16 state": round(plain_gib(size), 1),
               "1 GPU, fp32 state": round(size.total * FSDP_BYTES / GIB, 1)}
        row.update({f"FSDP, {n} GPUs": round(fsdp_gib(size, n), 1) for n in gpus})
        rows.append(row)
    return rows
