"""prm_lib: Process Reward Models, the library behind the PRM course.

Modules mirror the chapters: ``steps`` and ``batching`` (where steps end, how
solutions are batched), ``backbones`` and ``model`` (the PRM itself),
``seed_baseline`` (the seed tutorial's method, kept to show where it fails).
"""

__version__ = "0.1.0"
