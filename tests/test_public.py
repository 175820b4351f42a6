"""The package's public face: the names ``import prm_lib`` gives, each the object of its one home."""

import inspect
import subprocess
import sys

import pytest
import torch

import prm_lib


def test_public_names_are_their_homes_objects():
    from prm_lib.data import read, write
    from prm_lib.model import ProcessRewardModel
    from prm_lib.search import beam_search
    from prm_lib.selection import select
    from prm_lib.data import PRMSample
    from prm_lib.train import TrainConfig, Trainer
    from prm_lib.training_data import FileData
    from prm_lib.verify import PRMVerifier

    homes = {"ProcessRewardModel": ProcessRewardModel, "PRMVerifier": PRMVerifier, "TrainConfig": TrainConfig,
             "Trainer": Trainer, "FileData": FileData, "PRMSample": PRMSample,
             "read": read, "write": write, "select": select, "beam_search": beam_search}
    assert set(prm_lib.__all__) == {"__version__", "train", "aggregate", *homes}
    for name, obj in homes.items():
        assert getattr(prm_lib, name) is obj, name
    assert isinstance(prm_lib.__version__, str)


def test_train_and_aggregate_are_their_modules_and_call_their_functions():
    import prm_lib.aggregate as aggregate_module
    from prm_lib import train as train_module

    assert prm_lib.aggregate is aggregate_module is sys.modules["prm_lib.aggregate"]
    assert prm_lib.train is train_module is sys.modules["prm_lib.train"]
    probs, mask = torch.tensor([[0.9, 0.2, 0.7]]), torch.tensor([[True, True, False]])
    assert torch.equal(prm_lib.aggregate(probs, mask, "min"), aggregate_module.aggregate(probs, mask, "min"))
    assert inspect.signature(prm_lib.train) == inspect.signature(train_module.train)
    assert inspect.signature(prm_lib.aggregate) == inspect.signature(aggregate_module.aggregate)


def test_import_is_light():
    code = "import sys, prm_lib; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        prm_lib.Trainr
