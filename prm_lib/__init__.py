"""prm_lib: Process Reward Models, the library behind the PRM course.

Modules mirror the chapters:

* chapter 2: ``steps`` (where steps end), ``batching``, ``backbones``, ``model`` (the PRM);
* chapter 3: ``data`` (PRMSample and file formats), ``synthetic``, ``policies``, ``monte_carlo``, ``answers``;
* chapter 4: ``loss``, ``ablation`` (the loss variants trained and measured);
* chapter 5: ``train``, ``objectives`` (PRM or ORM), ``surprise``, ``probe``, ``metrics``, ``zoo`` (trained
  presets), ``cli`` (``python -m prm_lib``);
* chapter 6: ``aggregate``; chapters 6-7: ``verify``, ``plots``; chapter 7: ``selection`` (best-of-N),
  ``processbench`` (first-error evaluation); chapter 8: ``search``;
* appendix B: ``distributed`` (the trainer on accelerate: DDP or FSDP), ``memory`` (GPU memory per GPU),
  ``trl_interop`` (TRL 1.13's PRM trainer on exported data), ``scorers`` (published PRMs read by their own
  conventions: TRL token classifiers, Math-Shepherd, Qwen2.5-Math-PRM, RLHFlow), ``export`` (a PRM as a
  Hugging Face token classifier);
* the classroom: ``exercises`` (checks for the code exercises); the student edition is course tooling,
  ``tools/student_edition.py`` in the repository;
* ``joined_text``: the naive tutorial's method (steps joined into one text, searched for ``"\\n"``), kept to
  measure where it fails; ``progress``.
"""

__version__ = "0.1.0"
