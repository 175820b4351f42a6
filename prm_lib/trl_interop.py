"""Training with TRL's ``PRMTrainer`` on the files ``python -m prm_lib export --format trl`` writes.

Appendix B. TRL 1.13.0 is the last release with a PRM trainer (``trl.experimental.prm``);
later releases removed it, so ``prm_lib[trl]`` pins that version. TRL's trainer puts
a two-class token-classification head on the backbone and labels the last token
before each ``step_separator``; with prm_lib's separator (``"\\n\\n"``) it scores the
same tokens as ``ProcessRewardModel``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .backbones import RANDOM_QWEN2_SHAPES, keep_first_layers, load_tokenizer, smollm2_folder
from .steps import DEFAULT_SEPARATOR

TRL_VERSION = "1.13.0"


def _trl_prm() -> Any:
    try:
        import trl
        from trl.experimental import prm
    except ImportError as err:
        raise ImportError(f"TRL's PRM trainer needs trl=={TRL_VERSION}: pip install 'prm_lib[trl]'") from err
    if trl.__version__ != TRL_VERSION:
        raise ImportError(f"trl {trl.__version__} is installed; its PRM trainer is tested with {TRL_VERSION} only "
                          f"(later releases removed it): pip install 'prm_lib[trl]'")
    return prm


def token_classifier(backbone: str, seed: int = 0, n_layers: int | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)``: a 2-label token classifier on a backbone, as TRL's PRM trainer wants.

    The random-init Qwen2 backbones (``tiny-qwen2``) are built from their shape; ``smollm2-135m`` is the
    course's offline SmolLM2 (``prm_lib.backbones``); anything else is a hub id or folder for
    ``AutoModelForTokenClassification``. ``n_layers`` keeps only the first k blocks, as a PRM's does.
    """
    import torch
    from transformers import AutoModelForTokenClassification, Qwen2Config, Qwen2ForTokenClassification

    tokenizer = load_tokenizer(backbone)
    if backbone in RANDOM_QWEN2_SHAPES:
        config = Qwen2Config(vocab_size=len(tokenizer), num_labels=2, tie_word_embeddings=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             **RANDOM_QWEN2_SHAPES[backbone])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Qwen2ForTokenClassification(config)
    else:
        folder = smollm2_folder() if backbone == "smollm2-135m" else backbone
        with torch.random.fork_rng(devices=[]):  # the new classification head's initialisation
            torch.manual_seed(seed)
            model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=2, dtype=torch.float32)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    if n_layers is not None:
        keep_first_layers(model, n_layers)
    return model, tokenizer


def trl_prm_trainer(data_dir: str | Path, out_dir: str | Path, backbone: str = "tiny-qwen2", max_steps: int = 6,
                   batch_size: int = 8, learning_rate: float = 1e-3, n_layers: int | None = None, **config: Any) -> Any:
    """TRL's ``PRMTrainer``, ready to ``train()``, on ``data_dir/{train,validation}.jsonl``.

    CPU-friendly defaults (fp32, no gradient checkpointing); ``config`` overrides any
    ``PRMConfig`` field (``bf16=True`` on a GPU, say). With ``disable_tqdm`` (the default)
    the datasets library's own progress bars stay off too while the files are read and tokenized.
    """
    import torch
    from datasets import load_dataset
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    prm = _trl_prm()
    data_dir = Path(data_dir)
    files = {split: data_dir / f"{split}.jsonl" for split in ("train", "validation")}
    for path in files.values():
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: write it with python -m prm_lib export --format trl --out {data_dir}")
    model, tokenizer = token_classifier(backbone, n_layers=n_layers)
    settings = dict(output_dir=str(out_dir), step_separator=DEFAULT_SEPARATOR, per_device_train_batch_size=batch_size,
                    per_device_eval_batch_size=batch_size, max_steps=max_steps, learning_rate=learning_rate,
                    bf16=False, gradient_checkpointing=False, logging_steps=1, report_to="none", save_strategy="no",
                    eval_strategy="no", disable_tqdm=True, seed=0, dataloader_pin_memory=torch.cuda.is_available())
    settings.update(config)
    with warnings.catch_warnings():  # TRL 1.13's own default sets a field that newer transformers deprecates
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
        args = prm.PRMConfig(**settings)
    quiet = args.disable_tqdm and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        data = load_dataset("json", data_files={k: str(v) for k, v in files.items()})
        return prm.PRMTrainer(model=model, args=args, processing_class=tokenizer,
                              train_dataset=data["train"], eval_dataset=data["validation"])
    finally:
        if quiet:
            enable_progress_bars()
