"""Which preset a chapter's hidden checks were measured on.

A chapter's hidden checks re-run what its prose claims. Some pin a number measured on one preset
(the CPU course PRM's held-out AUROC, a slip it catches); on another preset (``gpu-qwen2.5-0.5b``
on Colab) that number is not a claim the chapter makes, so the check is skipped, and a printed
line says so, instead of stopping the chapter halfway.
"""

from __future__ import annotations


def measured_on(loaded: str, *presets: str) -> bool:
    """True when the model a chapter loaded is one of ``presets``, the ones its checks were measured on.

    Otherwise prints which presets the checks hold for and which model was loaded, and returns False.
    """
    if not presets:
        raise ValueError("name the presets the checks were measured on, e.g. measured_on(prm_name, 'cpu-reader')")
    if loaded in presets:
        return True
    print(f"skipped: these checks pin numbers measured on the {' or '.join(repr(p) for p in presets)} preset; "
          f"this chapter loaded {loaded!r}, which prints its own")
    return False
