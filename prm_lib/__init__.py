"""prm_lib: Process Reward Models, the library behind the PRM course.

Modules mirror the chapters:

* chapter 2: ``steps`` (where steps end), ``batching``, ``backbones``, ``model`` (the PRM);
* chapter 3: ``data`` (PRMSample and file formats), ``synthetic``, ``policies``, ``monte_carlo``, ``answers``;
* chapter 4: ``loss``;
* chapter 5: ``train``, ``objectives`` (PRM or ORM), ``surprise``, ``metrics``, ``zoo`` (trained
  presets), ``cli`` (``python -m prm_lib``), ``run_log`` (metrics.jsonl, TensorBoard, W&B),
  ``backbone_options`` (dropout, gradient checkpointing), ``lora`` (LoRA adapters and merge);
* chapter 6: ``aggregate``; chapters 6-7: ``verify``, ``plots``; chapter 7: ``selection`` (best-of-N),
  ``processbench`` (first-error evaluation); chapter 8: ``search``; chapter 9: ``datasets`` (real
  model-written solutions, shipped with their licences), ``first_mistake`` (BIG-Bench Mistake's metric);
* appendix B: ``distributed`` (the trainer on accelerate: DDP or FSDP), ``memory`` (GPU memory per GPU),
  ``trl_interop`` (TRL 1.13's PRM trainer on exported data), ``scorers`` (published PRMs read by their own
  conventions: TRL token classifiers, Math-Shepherd, Qwen2.5-Math-PRM, RLHFlow), ``export`` (a PRM as a
  Hugging Face token classifier);
* ``progress`` (progress bars);
* ``course``: the course's own parts, not needed to train or use a PRM: ``course.exercises`` (checks of the
  code exercises), ``course.joined_text`` (the naive tutorial's method, kept to measure where it fails),
  ``course.ablation`` (chapter 4's loss variants), ``course.probe`` (chapter 5's linear probe). The student
  edition is course tooling, ``tools/student_edition.py`` in the repository.
"""

import importlib as _importlib

__version__ = "0.1.0"

# The public names, each from its one home; imported on first use, so ``import prm_lib`` stays light
# (no torch until a name that needs it is read). ``train`` and ``aggregate`` are modules that, called, run
# their function of the same name (``prm_lib.modules``): ``prm_lib.train(config)``, ``prm_lib.train.TrainConfig``.
_PUBLIC = {
    "ProcessRewardModel": "model",
    "PRMVerifier": "verify",
    "TrainConfig": "train",
    "Trainer": "train",
    "train": "train",
    "FileData": "training_data",
    "PRMSample": "data",
    "read": "data",
    "write": "data",
    "aggregate": "aggregate",
    "select": "selection",
    "beam_search": "search",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'prm_lib' has no attribute {name!r}")
    module = _importlib.import_module(f".{_PUBLIC[name]}", __name__)
    value = module if name == _PUBLIC[name] else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
