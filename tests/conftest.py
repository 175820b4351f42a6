"""Shared fixtures: the two real tokenizers and small models, loaded once per session."""

import os
import socket

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _default_training_seed(monkeypatch):
    """The unit tests check the library's defaults; an author's PRM_LIB_TRAIN_SEED (make robustness) is not theirs."""
    monkeypatch.delenv("PRM_LIB_TRAIN_SEED", raising=False)


@pytest.fixture(scope="session")
def free_port():
    """A function that returns a TCP port nothing listens on now. Tests that launch torchrun or accelerate run
    side by side under ``pytest -n``, so no launch may use a fixed port."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from prm_lib.backbones import load_tokenizer

    return load_tokenizer("tiny-qwen2")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from prm_lib.backbones import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(params=["qwen2", "smollm2"], scope="session")
def tokenizer(request, qwen_tokenizer, smollm2_tokenizer):
    return {"qwen2": qwen_tokenizer, "smollm2": smollm2_tokenizer}[request.param]


@pytest.fixture(scope="session")
def tiny_prm():
    from prm_lib.model import ProcessRewardModel

    return ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")


@pytest.fixture(scope="session")
def smollm2_prm():
    from prm_lib.model import ProcessRewardModel

    return ProcessRewardModel.from_backbone("smollm2-135m", device="cpu", n_layers=4)
