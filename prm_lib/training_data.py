"""What a training run learns from: the course's synthetic problems, or a user's file.

A ``TrainConfig`` (``prm_lib.train``) holds one of these as its ``data``; each builds the
training and validation sets and says what it did with them (a ``DataReport``):

* ``SyntheticData``: the generator of ``prm_lib.synthetic`` with its settings (chapters 3-8);
* ``FileData``: a file in one of ``prm_lib.data.FORMATS`` (TRL, PRM800K, Math-Shepherd,
  ProcessBench), with a validation file or a seeded held-out share of the training file.

The held-out test sets the chapters measure on (``test_set``) live here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import FORMATS, FormatError, PRMSample, read

# The held-out sets every chapter and benchmark evaluates on, one seed per split (a SyntheticData's training
# and validation sets use seed and seed + 1, so these never coincide with them).
HELD_OUT_SEEDS = {"validation": 321, "test": 123}


@dataclass
class DataReport:
    """What became of the records a run was given: nothing is dropped without being counted here."""

    source: str
    n_train: int
    n_val: int
    validation: str  # where the validation set came from
    n_truncated: int = 0  # solutions cut by whole steps to max_length (their later steps have no label)
    n_skipped: int = 0  # solutions left out: not even their first step fits max_length
    skipped: list[dict[str, str]] = field(default_factory=list)  # where and why, for each one

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SyntheticData:
    """The course's generated step-labelled solutions (``prm_lib.synthetic.generate``)."""

    n_train: int = 3000
    n_val: int = 300
    seed: int = 0  # the training set's; the validation set uses seed + 1 (other problems)
    error_rate: float = 0.5
    correction_rate: float = 0.15
    max_ops: int = 4
    direct_rate: float = 0.0  # share of the naive tutorial's one-operation problems ("What is 9 × 2?")
    error_weights: dict[str, float] | None = None  # relative frequency of each error kind (None: equal)
    hold_out_seed_problems: bool = False  # never train on the naive tutorial's problems (synthetic.SEED_PROBLEMS)
    kind: str = "synthetic"

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def build(self) -> tuple[list[PRMSample], list[PRMSample], DataReport]:
        """Training and validation sets (disjoint problems), and the report."""
        from .synthetic import SEED_PROBLEMS, generate

        options = dict(error_rate=self.error_rate, correction_rate=self.correction_rate, max_ops=self.max_ops,
                       direct_rate=self.direct_rate, error_weights=self.error_weights,
                       held_out=SEED_PROBLEMS if self.hold_out_seed_problems else ())
        train = generate(self.n_train, seed=self.seed, split="train", **options)
        val = generate(self.n_val, seed=self.seed + 1, split="validation", **options)
        return train, val, DataReport("synthetic", len(train), len(val), f"generated (seed {self.seed + 1})")

    def key(self) -> dict[str, Any]:
        """What names these data in a cache key: every setting."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FileData:
    """Step-labelled solutions from a file in one of ``prm_lib.data.FORMATS``.

    Without ``val_file``, a seeded ``val_fraction`` of the training file's records (at least one) is held
    out for validation. A malformed record is an error that names its file and line.
    """

    train_file: str
    format: str
    val_file: str | None = None
    val_fraction: float = 0.05
    seed: int = 0  # which records are held out when there is no val_file
    kind: str = "file"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown data format {self.format!r}; known: {', '.join(FORMATS)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")

    def build(self) -> tuple[list[PRMSample], list[PRMSample], DataReport]:
        train = read_training_file(self.train_file, self.format)
        if self.val_file is not None:
            val = read_training_file(self.val_file, self.format)
            return train, val, DataReport(self.train_file, len(train), len(val), f"file {self.val_file}")
        if len(train) < 2:
            raise ValueError(f"{self.train_file} has {len(train)} record: too few to hold out a validation set; "
                             "give --val-file")
        n_val = max(1, round(len(train) * self.val_fraction))
        order = list(range(len(train)))
        random.Random(self.seed).shuffle(order)
        held = set(order[:n_val])
        val = [s for i, s in enumerate(train) if i in held]
        kept = [s for i, s in enumerate(train) if i not in held]
        how = f"{n_val} of {len(train)} records of {self.train_file} held out ({self.val_fraction:.0%}, seed {self.seed})"
        return kept, val, DataReport(self.train_file, len(kept), len(val), how)

    def key(self) -> dict[str, Any]:
        """What names these data in a cache key: the settings and the files' contents (their sha256)."""
        out = dataclasses.asdict(self)
        out["sha256"] = {name: _sha256(path) for name, path in (("train", self.train_file), ("val", self.val_file))
                         if path is not None}
        return out


DataSource = SyntheticData | FileData


def data_from_dict(values: dict[str, Any]) -> DataSource:
    """Inverse of ``dataclasses.asdict`` for either kind (what a checkpoint's saved config holds)."""
    values = dict(values)
    kind = values.pop("kind", "synthetic")
    values.pop("sha256", None)
    if kind == "synthetic":
        return SyntheticData(**values)
    if kind == "file":
        return FileData(**values)
    raise ValueError(f"unknown data kind {kind!r}; known: synthetic, file")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# What each format's records hold, to tell a user which format a file looks like when it is not the one named.
_FORMAT_FIELDS = {"trl": {"prompt", "completions", "labels"}, "prm800k": {"question", "label"},
                  "math-shepherd": {"input", "label"}, "processbench": {"problem", "steps", "label"}}


def guess_format(record: dict[str, Any]) -> str | None:
    """The format whose fields a record has (the most specific match), or None."""
    matches = [fmt for fmt, names in _FORMAT_FIELDS.items() if names <= set(record)]
    return max(matches, key=lambda fmt: len(_FORMAT_FIELDS[fmt])) if matches else None


def read_training_file(path: str | Path, fmt: str) -> list[PRMSample]:
    """Every record of a training file, or an error that names the file (and line) and what is wrong.

    A missing or empty file, and a file whose first record is in another format than ``fmt``, are
    named as such before any record is parsed. Each sample's ``meta["source"]`` is its ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    first = None
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                first = (n, line)
                break
    if first is None:
        raise ValueError(f"{path} is empty: no records to train on")
    try:
        record = json.loads(first[1])
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}:{first[0]}: not valid JSON ({err.msg}); every format is JSON lines") from None
    if isinstance(record, dict) and not _FORMAT_FIELDS[fmt] <= set(record):
        looks = guess_format(record)
        hint = f"it looks like {looks}" if looks else f"its fields are {', '.join(sorted(record)) or 'none'}"
        raise FormatError(f"{path}:{first[0]}: not a {fmt} record ({hint}); {fmt} records have the fields "
                          f"{', '.join(sorted(_FORMAT_FIELDS[fmt]))}. Check --format")
    samples = read(path, fmt)
    for sample, line in zip(samples, record_lines(path)):  # the readers keep every record, in order
        sample.meta["source"] = f"{path}:{line}"
    return samples


def record_lines(path: str | Path) -> list[int]:
    """The line number of each record of a JSON-lines file (readers skip blank lines only)."""
    with Path(path).open(encoding="utf-8") as f:
        return [n for n, line in enumerate(f, start=1) if line.strip()]


def build_data(config: Any) -> tuple[list[PRMSample], list[PRMSample]]:
    """The training and validation sets a ``TrainConfig`` names."""
    train, val, _ = config.data.build()
    return train, val


def test_set(config: Any, n: int = 400, split: str = "test") -> list[PRMSample]:
    """The course's held-out evaluation set for a config on synthetic data: ``n`` solutions of problems shaped
    like its training problems (``max_ops``, ``direct_rate``), half of them wrong, with every error kind
    equally likely.

    Half wrong and uniform kinds, whatever the training mix, so that models trained on different mixes are
    measured on the same solutions and every kind of error counts alike. ``split="validation"`` gives the
    set to fit thresholds on (disjoint problems from the test split)."""
    from .synthetic import generate

    if split not in HELD_OUT_SEEDS:
        raise ValueError(f"test_set split must be one of {', '.join(HELD_OUT_SEEDS)}, got {split!r}")
    data = config.data
    if not isinstance(data, SyntheticData):
        raise ValueError("test_set builds synthetic problems shaped like a synthetic training set; this config "
                         f"trains on {data.kind} data")
    return generate(n, seed=HELD_OUT_SEEDS[split], split=split, error_rate=0.5, max_ops=data.max_ops,
                    direct_rate=data.direct_rate)


test_set.__test__ = False  # a data function: pytest must not collect it where a test module imports it
