"""Modules that are also their own main function: ``prm_lib.train(config)`` and ``prm_lib.aggregate(probs,
mask)`` call the function of the module's name, while ``from prm_lib import train`` and
``prm_lib.train.TrainConfig`` read the module."""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable


class CallableModule(types.ModuleType):
    """A module that, called, calls its function of the same name (``prm_lib.train`` -> ``train``)."""

    def _function(self) -> Callable[..., Any]:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._function())
