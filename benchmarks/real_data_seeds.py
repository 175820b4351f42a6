"""Chapter 9's trained-model figures for the models of another training seed: how much of what the chapter
measures belongs to one run. Trains cpu-real and cpu-real-orm with $PRM_LIB_TRAIN_SEED (about 8 min on 2 CPU
cores, once; cached apart from the default models), measures them as the chapter does, prints one JSON object
and writes it to benchmarks/results/real_data/seed<N>.json (a folder of its own: appendix A reads every JSON file
at the top of results/):

    PRM_LIB_TRAIN_SEED=1 python benchmarks/real_data_seeds.py
"""
import json
import os
from pathlib import Path
import numpy as np
from prm_lib import first_mistake as fm
from prm_lib.datasets import HUMAN_LABELLED, shipped, gsm8k_solutions
from prm_lib.zoo import load_or_train
from prm_lib.selection import Selector, best_of_n_accuracy, bootstrap_gap
from prm_lib.verify import PRMVerifier
from prm_lib.answers import extract_final_answer
real, m = load_or_train("cpu-real")
out = {"auroc": m["final"]["step_auroc"]}
for task in HUMAN_LABELLED:
    fit = fm.score_traces(real, shipped(task, "train") + shipped(task, "validation"))
    test = fm.score_traces(real, shipped(task, "test"))
    th = fm.fit_threshold(fit)
    r = fm.summary(test.hits(th), test.first_errors)
    pos = fm.most_common_position(shipped(task, "train"))
    g = bootstrap_gap(test.hits(th).astype(float), fm.position_hits(pos, shipped(task, "test")).astype(float))
    n_val = len(shipped(task, "validation"))
    out[task] = {"acc": r["accuracy"], "low": r["low"], "high": r["high"], "f1": r["f1"], "th": th,
                 "gap": [g["gap"], g["low"], g["high"]],
                 "val_only": 100 * float(test.hits(fm.fit_threshold(fit.take(-n_val))).mean())}
    print(task, out[task], flush=True)
orm, om = load_or_train("cpu-real-orm")
sol = gsm8k_solutions("test"); groups = [sol[i:i+4] for i in range(0, len(sol), 4)][:250]
problems = [g[0].problem for g in groups]; cands = [[s.steps for s in g] for g in groups]
gold = [extract_final_answer(g[0].meta["ground_truth"].split("\n")) for g in groups]
right = np.array([[s.meta["final_answer_correct"] for s in g] for g in groups], dtype=float)
og = PRMVerifier(orm, "last").score_grid(problems, cands); pg = PRMVerifier(real, "min").score_grid(problems, cands)
picked = best_of_n_accuracy(og.answers, gold, {"orm": Selector("best", og.scores), "prm": Selector("best", pg.scores), "maj": Selector("majority")}, ns=[4], trials=16)
pp = {k: v[:, 0] for k, v in picked.items()}; pp["random"] = right.mean(axis=1)
out["gsm8k"] = {k: float(v.mean()) for k, v in pp.items()}
out["gsm8k"]["orm-maj"] = bootstrap_gap(pp["orm"], pp["maj"]); out["gsm8k"]["orm-random"] = bootstrap_gap(pp["orm"], pp["random"])
out["gsm8k"]["prm-random"] = bootstrap_gap(pp["prm"], pp["random"]); out["orm_auroc"] = om["final"]["outcome_auroc"]
out["train_seed"] = int(os.environ.get("PRM_LIB_TRAIN_SEED", "0"))
print(json.dumps(out, indent=1))
folder = Path(__file__).parent / "results" / "real_data"
folder.mkdir(exist_ok=True)
(folder / f"seed{out['train_seed']}.json").write_text(json.dumps(out, indent=1) + "\n")
