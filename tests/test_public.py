"""The package's public face: the names ``import prm_lib`` gives, each the object of its one home."""

import subprocess
import sys

import prm_lib


def test_public_names_are_their_homes_objects():
    from prm_lib import aggregate as aggregate_module_fn
    from prm_lib.aggregate import aggregate
    from prm_lib.data import read, write
    from prm_lib.model import ProcessRewardModel
    from prm_lib.search import beam_search
    from prm_lib.selection import select
    from prm_lib.train import TrainConfig, train
    from prm_lib.verify import PRMVerifier

    homes = {"ProcessRewardModel": ProcessRewardModel, "PRMVerifier": PRMVerifier, "TrainConfig": TrainConfig,
             "train": train, "read": read, "write": write, "aggregate": aggregate, "select": select,
             "beam_search": beam_search}
    assert set(prm_lib.__all__) == {"__version__", *homes}
    for name, obj in homes.items():
        assert getattr(prm_lib, name) is obj, name
    assert aggregate_module_fn is aggregate and callable(prm_lib.train) and isinstance(prm_lib.__version__, str)


def test_import_is_light_and_a_module_import_keeps_the_function():
    code = ("import sys, prm_lib; assert 'torch' not in sys.modules; "
            "from prm_lib.train import TrainConfig; from prm_lib.aggregate import StepScores; "
            "assert prm_lib.train.__name__ == 'train' and prm_lib.aggregate.__name__ == 'aggregate'; "
            "assert sys.modules['prm_lib.train'].TrainConfig is TrainConfig is prm_lib.TrainConfig")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        prm_lib.Trainer
