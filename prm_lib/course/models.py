"""The course's nine trained models, in the order ``make models`` trains them.

Chapter 5's PRM first (it computes the frozen LM's surprise of the training data, which the ORM then reads from
disk), chapter 7's ORM, chapter 4's five loss variants, then chapter 9's PRM and ORM on real solutions. ``python -m prm_lib.course.models`` trains whichever
are not in the model cache, one progress line per model, and loads the rest.
"""

from __future__ import annotations

from ..train import TrainConfig
from ..zoo import course_preset, load_or_train, preset
from . import ablation


# Chapter 9's: trained on the real solutions prm_lib.datasets ships, the same on any backbone switch (they are
# CPU-sized and their data are fixed)
REAL_DATA_MODELS = ("cpu-real", "cpu-real-orm")


def course_models() -> list[tuple[str, TrainConfig]]:
    """(zoo name, config) of every model the chapters load, for the backbone ``course_preset`` picks."""
    return [course_preset("prm"), course_preset("orm"),
            *(ablation.variant_config(variant) for variant in ablation.LOSS_VARIANTS),
            *((name, preset(name)) for name in REAL_DATA_MODELS)]


def train_course_models() -> None:
    """Train the course's models that are not cached yet (``load_or_train`` says which, why and how long)."""
    for name, config in course_models():
        load_or_train(name, config)


if __name__ == "__main__":
    train_course_models()
