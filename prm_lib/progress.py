"""Progress bars that respect TQDM_DISABLE everywhere.

``tqdm.auto`` picks a notebook widget in Jupyter, and ``tqdm.notebook`` (4.70)
sets ``disable=False`` itself, which overrides the ``TQDM_DISABLE`` environment
variable. Builds and tests set TQDM_DISABLE=1 (a widget renders as an empty box
in HTML); readers running a chapter still get a live bar.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

_TRUE = {"1", "true", "yes", "on"}


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled when TQDM_DISABLE is set."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", os.environ.get("TQDM_DISABLE", "").strip().lower() in _TRUE)
    return tqdm(iterable, **kwargs)
