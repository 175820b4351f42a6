"""Write prm_lib/reference_times.json: how long each of the course's models took to train here, read from the
model cache (each model's metrics.json). ``prm_lib.zoo`` quotes these times, scaled by the speed of the machine it
runs on, when it trains a course model on an empty cache. Course tooling, not part of ``prm_lib``; run it from the
repository root on the machine that records the book, after ``make models``:

    python tools/reference_times.py            # rewrite prm_lib/reference_times.json
    python tools/reference_times.py --check    # exit 1 unless it lists exactly the course's current models
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from prm_lib.course.models import course_models
from prm_lib.zoo import REFERENCE_TIMES, TRAIN_SEED_ENV, zoo_path


def machine() -> str:
    """The CPU in a few words, e.g. 'a 2-core Intel(R) Xeon(R) Platinum 8488C'."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"a {os.cpu_count()}-core {name}"


def measured() -> dict[str, dict[str, float]]:
    times = {}
    for name, config in course_models():
        path = zoo_path(name, config)
        if not (path / "metrics.json").exists():
            raise SystemExit(f"{name!r} is not in the model cache ({path}): run make models first")
        m = json.loads((path / "metrics.json").read_text())
        times[path.name] = {"minutes": round((m["setup_seconds"] + m["train_seconds"]) / 60, 1),
                            "setup_minutes": round(m["setup_seconds"] / 60, 1),  # the frozen LM's surprise, mostly
                            "tokens_per_second": m["tokens_per_second"]}
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if os.environ.get(TRAIN_SEED_ENV, "").strip():
        raise SystemExit(f"unset {TRAIN_SEED_ENV}: the reference times are those of the default models")
    if args.check:
        stored = json.loads(REFERENCE_TIMES.read_text())["models"] if REFERENCE_TIMES.exists() else {}
        want = {zoo_path(name, config).name for name, config in course_models()}
        if set(stored) != want:
            print(f"{REFERENCE_TIMES} lists {sorted(stored)}, the course trains {sorted(want)}", file=sys.stderr)
            return 1
        return 0
    REFERENCE_TIMES.write_text(json.dumps({"machine": machine(), "models": measured()}, indent=1) + "\n")
    print(f"wrote {REFERENCE_TIMES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
