"""Chapter 8's searches with and without the verifier's memo: seconds, solutions scored, hit rate. JSON lines.

Not a test: run it on purpose, on a quiet machine, after the course's PRM is cached (``make models``).

    python benchmarks/search_memo.py --out benchmarks/results/cpu_search_memo.jsonl   # as recorded: about 5 min
    python benchmarks/search_memo.py --problems 120                                     # all of chapter 8's problems

The workload is chapter 8's: beam search with 4, 8 and 16 beams and best-of-2 to best-of-16 on the
same problems, each with a fresh simulated policy (seed 7), then 16 beams at widths 2 and 8 on the
same problems again. One ``PRMVerifier`` serves the whole workload, as in the chapter; ``memo=0`` turns
its memory of earlier calls off (duplicates within one call are still scored once). Each mode runs in
turn, ``--rounds`` times (2 by default: the first search of a process pays a one-time cost, so the ratio
takes each mode's faster round), alternating, in this one process; the line per mode gives its seconds, how
many solutions the searches asked to score, how many reached the model, and whether the two modes'
searches agree (answers, and the largest difference of a score).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

from prm_lib.policies import SimulatedPolicy
from prm_lib.search import SearchResult, beam_search, best_of_n
from prm_lib.synthetic import problems
from prm_lib.verify import PRMVerifier
from prm_lib.zoo import course_preset, load_or_train


def workload(verifier: PRMVerifier, texts: list[str], count_tokens: Any) -> list[SearchResult]:
    """Chapter 8's searches over ``texts``, in the chapter's order."""
    out = []
    for n in (4, 8, 16):
        policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
        out += [beam_search(t, policy, verifier, count_tokens, n_beams=n, beam_width=2) for t in texts]
    for n in (2, 4, 8, 16):
        policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
        out += [best_of_n(t, policy.sample, verifier, count_tokens, n) for t in texts]
    for width in (2, 8):
        policy = SimulatedPolicy(step_error_rate=0.15, misread_rate=0.8, seed=7)
        out += [beam_search(t, policy, verifier, count_tokens, n_beams=16, beam_width=width) for t in texts]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    args = ap.parse_args()

    name, config = course_preset()
    prm, _ = load_or_train(name, config, progress=False)
    texts = [p.text for p in problems(args.problems, seed=8, split="test", max_ops=config.data.max_ops,
                                      direct_rate=config.data.direct_rate)]

    def count_tokens(step: str) -> int:
        return len(prm.tokenizer(step, add_special_tokens=False)["input_ids"])

    prm.score_batch([(texts[0], ["1 + 1 = 2."])])  # warm-up
    lines, results = [], {}
    for r in range(args.rounds):
        for memo in ((0, 65536) if r % 2 == 0 else (65536, 0)):
            verifier = PRMVerifier(prm, "min", memo=memo)
            start = time.perf_counter()
            results[memo] = workload(verifier, texts, count_tokens)
            seconds = time.perf_counter() - start
            lines.append({"run": "search_memo", "memo": memo, "round": r, "seconds": round(seconds, 1),
                          **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in verifier.memo_stats.items()}})
    plain, remembered = results[0], results[65536]
    same_answers = sum(a.answers == b.answers for a, b in zip(plain, remembered))
    diff = max((abs(x - y) for a, b in zip(plain, remembered) if len(a.scores) == len(b.scores)
                for x, y in zip(a.scores, b.scores)), default=0.0)
    by_mode = {m: min(l["seconds"] for l in lines if l["memo"] == m) for m in (0, 65536)}
    lines.append({"run": "search_memo_summary", "problems": args.problems, "searches": len(plain),
                  "searches_with_the_same_answers": same_answers, "largest_score_difference": diff,
                  "speedup": round(by_mode[0] / by_mode[65536], 3), "preset": name, "threads": torch.get_num_threads(),
                  "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                  "date": time.strftime("%Y-%m-%d")})
    for line in lines:
        print(json.dumps(line))
    if args.out:
        with open(args.out, "a") as fh:
            for line in lines:
                fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
