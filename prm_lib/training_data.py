"""What a training run learns from: the course's synthetic problems, or a user's file.

A ``TrainConfig`` (``prm_lib.train``) holds one of these as its ``data``; each builds the
training and validation sets and says what it did with them (a ``DataReport``):

* ``SyntheticData``: the generator of ``prm_lib.synthetic`` with its settings (chapters 3-8);
* ``FileData``: a file in one of ``prm_lib.data.FORMATS`` (TRL, PRM800K, Math-Shepherd,
  ProcessBench, BIG-Bench Mistake, GSM8K's model solutions), with a validation file or a seeded
  held-out share of the training file's problems;
* ``ShippedData``: the real solutions ``prm_lib.datasets`` ships (chapter 9), on its fixed split.

The held-out test sets the chapters measure on (``test_set``) live here too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import FORMATS, NEUTRAL_CHOICES, FormatError, PRMSample, read

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
    format: str = ""  # the files' format (prm_lib.data.FORMATS), or "synthetic"
    files: list[str] = field(default_factory=list)  # the files read: training, then validation
    n_read: int = 0  # records read from them (non-blank lines)
    n_solutions: int = 0  # samples the reader made of them, before any was held out
    n_left_out: int = 0  # records, steps or alternatives the format's rules left out (prm_lib.data)
    left_out: list[dict[str, str]] = field(default_factory=list)  # {"where": file:line, "reason"} for each

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for the terminal: what was read, what was left out and why, where validation came from."""
        if self.files:
            head = (f"read {self.n_read:,} records of {' and '.join(self.files)} ({self.format}): "
                    f"{self.n_solutions:,} solutions")
        else:
            head = f"{self.source}: {self.n_train:,} training and {self.n_val:,} validation solutions"
        parts = [head]
        if self.left_out:
            kinds = Counter(entry["reason"].split(" (")[0] for entry in self.left_out)
            counts = ", ".join(f"{n:,} {_plural(kind, n)}" for kind, n in kinds.items())
            parts.append(f"left out {self.n_left_out:,} ({counts}, first at {self.left_out[0]['where']})")
        elif self.files:
            parts.append("left out nothing")
        parts.append(f"validation: {self.validation}")
        if self.n_truncated or self.n_skipped:
            parts.append(f"max_length: {self.n_truncated:,} cut by whole steps, {self.n_skipped:,} too long to keep")
        return "; ".join(parts)


def _plural(kind: str, n: int) -> str:
    """"record with no steps" -> "records with no steps" when there are several (the first noun it counts)."""
    words = kind.split()
    for i, word in enumerate(words if n != 1 else []):
        if word in ("record", "step", "solution", "alternative"):
            words[i] = word + "s"
            break
    return " ".join(words)


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
        return train, val, DataReport("synthetic", len(train), len(val), f"generated (seed {self.seed + 1})",
                                      format="synthetic", n_solutions=len(train) + len(val))

    def key(self) -> dict[str, Any]:
        """What names these data in a cache key: every setting."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FileData:
    """Step-labelled solutions from a file in one of ``prm_lib.data.FORMATS``.

    Without ``val_file``, a seeded ``val_fraction`` of the training file's distinct problems (at least one)
    is held out for validation with all their solutions, so no validation problem is trained on. A
    malformed record is an error that names its file and line; what the format's rules leave out (a
    PRM800K record with no steps, say) is counted in the report. ``neutral`` and ``alternatives`` are
    PRM800K's reader options (``prm_lib.data.read_prm800k``).
    """

    train_file: str
    format: str
    val_file: str | None = None
    val_fraction: float = 0.05
    seed: int = 0  # which problems are held out when there is no val_file
    neutral: str = "positive"  # prm800k: what a neutral (0) rating becomes
    alternatives: bool = False  # prm800k: each rated alternative completion as a sample of its own
    kind: str = "file"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown data format {self.format!r}; known: {', '.join(FORMATS)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.neutral not in NEUTRAL_CHOICES:
            raise ValueError(f"neutral must be one of {sorted(NEUTRAL_CHOICES)}, not {self.neutral!r}")
        if self.format != "prm800k" and (self.neutral != "positive" or self.alternatives):
            raise ValueError(f"neutral and alternatives are options of the prm800k format (its ratings); "
                             f"{self.format} has none (got neutral={self.neutral!r}, alternatives={self.alternatives})")

    def reader_options(self) -> dict[str, Any]:
        """What this format's reader is given besides the file."""
        return {"neutral": self.neutral, "alternatives": self.alternatives} if self.format == "prm800k" else {}

    def build(self) -> tuple[list[PRMSample], list[PRMSample], DataReport]:
        left_out: list[tuple[str, str]] = []
        train = read_training_file(self.train_file, self.format, left_out, **self.reader_options())
        files = [self.train_file] + ([self.val_file] if self.val_file is not None else [])
        if self.val_file is not None:
            val = read_training_file(self.val_file, self.format, left_out, **self.reader_options())
            kept, how = train, f"file {self.val_file} ({len(val):,} solutions)"
        else:
            kept, val, how = hold_out_by_problem(train, self.val_fraction, self.seed, self.train_file)
        report = DataReport(self.train_file, len(kept), len(val), how, format=self.format, files=files,
                            n_read=sum(len(record_lines(f)) for f in files), n_solutions=len(kept) + len(val),
                            n_left_out=len(left_out), left_out=[{"where": w, "reason": r} for w, r in left_out])
        return kept, val, report

    def key(self) -> dict[str, Any]:
        """What names these data in a cache key: the settings and the files' contents (their sha256)."""
        out = dataclasses.asdict(self)
        out["sha256"] = {name: _sha256(path) for name, path in (("train", self.train_file), ("val", self.val_file))
                         if path is not None}
        return out


@dataclass(frozen=True)
class ShippedData:
    """Real solutions shipped in ``prm_lib.datasets``, split by question the way every chapter and benchmark
    splits them: the ``sets``' training solutions to learn from, their validation solutions to validate on;
    the test solutions are never read here. A set is a BIG-Bench Mistake task (``datasets.TASKS``; each
    trace ends at its first mistake, the last step people judged: ``labelled_only``) or ``"gsm8k"``
    (GSM8K's model solutions, outcome labels: for an ORM). The cache key holds the settings and the files'
    sha256, not where the package is installed, so a model trained from a checkout is found from a wheel."""

    sets: tuple[str, ...] = ("word_sorting", "tracking_shuffled_objects", "logical_deduction",
                             "multistep_arithmetic")
    kind: str = "shipped"

    def __post_init__(self) -> None:
        from .datasets import TASKS

        object.__setattr__(self, "sets", tuple(self.sets))  # a list, from a saved config's JSON
        known = (*TASKS, "gsm8k")
        unknown = [t for t in self.sets if t not in known]
        if unknown or not self.sets:
            raise ValueError(f"unknown shipped data set(s) {unknown or '(none given)'}; known: {', '.join(known)}")

    def build(self) -> tuple[list[PRMSample], list[PRMSample], DataReport]:
        from .datasets import shipped

        left_out: list[tuple[str, str]] = []
        train = [s for name in self.sets for s in shipped(name, "train", left_out)]
        val = [s for name in self.sets for s in shipped(name, "validation", left_out)]
        files = [str(self._path(name)) for name in self.sets]
        fmt = "gsm8k-solutions" if self.sets == ("gsm8k",) else "big-bench-mistake"
        report = DataReport(f"shipped data ({', '.join(self.sets)})", len(train), len(val),
                            f"the shipped split's validation questions ({len(val):,} solutions)",
                            format=fmt, files=files, n_read=sum(len(record_lines(f)) for f in files),
                            n_solutions=len(train) + len(val), n_left_out=len(left_out),
                            left_out=[{"where": w, "reason": r} for w, r in left_out])
        return train, val, report

    @staticmethod
    def _path(name: str) -> Path:
        from .datasets import path

        return path("gsm8k/example_model_solutions.jsonl" if name == "gsm8k" else name)

    def key(self) -> dict[str, Any]:
        from .datasets import SHA256, HERE

        return {**dataclasses.asdict(self), "sets": list(self.sets),
                "sha256": {name: SHA256[self._path(name).relative_to(HERE).as_posix()] for name in self.sets}}


DataSource = SyntheticData | FileData | ShippedData


def hold_out_by_problem(samples: list[PRMSample], fraction: float, seed: int, name: str
                        ) -> tuple[list[PRMSample], list[PRMSample], str]:
    """(training, validation, how): a seeded ``fraction`` of the distinct problems (at least one, never all)
    go to validation with every solution of theirs, so a model is never validated on a problem it trained
    on (files with several solutions a problem: PRM800K, GSM8K, alternatives)."""
    problems = list(dict.fromkeys(s.problem for s in samples))  # in order of first appearance
    if len(problems) < 2:
        raise ValueError(f"{name} has {len(problems)} distinct problem: the held-out share is grouped by problem "
                         "(no validation problem is trained on), so it needs two or more; give --val-file")
    n_val = min(len(problems) - 1, max(1, round(len(problems) * fraction)))
    random.Random(seed).shuffle(problems)
    held = set(problems[:n_val])
    val = [s for s in samples if s.problem in held]
    kept = [s for s in samples if s.problem not in held]
    how = (f"{len(val):,} of {len(samples):,} solutions held out by problem ({n_val:,} of "
           f"{len(problems):,} problems, {fraction:.0%}, seed {seed})")
    return kept, val, how


def data_from_dict(values: dict[str, Any]) -> DataSource:
    """Inverse of ``dataclasses.asdict`` for either kind (what a checkpoint's saved config holds)."""
    values = dict(values)
    kind = values.pop("kind", "synthetic")
    values.pop("sha256", None)
    if kind == "synthetic":
        return SyntheticData(**values)
    if kind == "file":
        return FileData(**values)
    if kind == "shipped":
        return ShippedData(**values)
    raise ValueError(f"unknown data kind {kind!r}; known: synthetic, file, shipped")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# What each format's records hold, to tell a user which format a file looks like when it is not the one named.
_FORMAT_FIELDS = {"trl": {"prompt", "completions", "labels"}, "prm800k": {"question", "label"},
                  "math-shepherd": {"input", "label"}, "processbench": {"problem", "steps", "label"},
                  "big-bench-mistake": {"input", "steps", "mistake_index"},
                  "gsm8k-solutions": {"question", "ground_truth", "6b_finetuning", "6b_verification",
                                      "175b_finetuning", "175b_verification"}}


def guess_format(record: dict[str, Any]) -> str | None:
    """The format whose fields a record has (the most specific match), or None."""
    matches = [fmt for fmt, names in _FORMAT_FIELDS.items() if names <= set(record)]
    return max(matches, key=lambda fmt: len(_FORMAT_FIELDS[fmt])) if matches else None


def read_training_file(path: str | Path, fmt: str, skipped: list[tuple[str, str]] | None = None,
                       **options: Any) -> list[PRMSample]:
    """The samples of a training file, or an error that names the file (and line) and what is wrong.

    A missing or empty file, and a file whose first record is in another format than ``fmt``, are
    named as such before any record is parsed. Each sample's ``meta["source"]`` is its ``file:line`` (the
    reader's). What the format's rules leave out is appended to ``skipped`` as (file:line, reason);
    ``options`` go to the reader (prm800k's ``neutral``, ``alternatives``). A malformed record is an error:
    ProcessBench's reader is not given ``skipped``, which would make it skip malformed records."""
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
    left_out: list[tuple[str, str]] = []
    samples = read(path, fmt, **options, **({} if fmt == "processbench" else {"skipped": left_out}))
    if not samples:
        first_reason = f" (left out: {left_out[0][1]}, first at {left_out[0][0]})" if left_out else ""
        raise ValueError(f"{path}: none of its {len(record_lines(path))} records gives a solution to train on"
                         f"{first_reason}")
    if skipped is not None:
        skipped.extend(left_out)
    return samples


def record_lines(path: str | Path) -> list[int]:
    """The line number of each record of a JSON-lines file (readers skip blank lines only): what was read."""
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
