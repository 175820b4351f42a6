"""The course's seven trained models, in the order ``make models`` trains them.

Chapter 5's PRM first (it computes the frozen LM's surprise of the training data, which the ORM then reads from
disk), chapter 7's ORM, then chapter 4's five loss variants. ``python -m prm_lib.course.models`` trains whichever
are not in the model cache, one progress line per model, and loads the rest.
"""

from __future__ import annotations

from ..train import TrainConfig
from ..zoo import course_preset, load_or_train
from . import ablation


def course_models() -> list[tuple[str, TrainConfig]]:
    """(zoo name, config) of every model the chapters load, for the backbone ``course_preset`` picks."""
    return [course_preset("prm"), course_preset("orm"),
            *(ablation.variant_config(variant) for variant in ablation.LOSS_VARIANTS)]


def train_course_models() -> None:
    """Train the course's models that are not cached yet (``load_or_train`` says which, why and how long)."""
    for name, config in course_models():
        load_or_train(name, config)


if __name__ == "__main__":
    train_course_models()
