"""The loss ablation of chapter 4: configs that differ only in the loss, measures that match the metrics
module, and bootstrap intervals of paired differences."""

import dataclasses

import numpy as np
import pytest

from prm_lib.aggregate import aggregate_many
from prm_lib.course import ablation
from prm_lib.metrics import auroc, first_error_scores, paired_bootstrap, step_metrics
from prm_lib.training_data import test_set
from prm_lib.zoo import config_hash, preset

LOSS_FIELDS = {"pos_weight", "mask_after_first_error", "later_step_weight", "ranking_weight"}
TINY = preset("tiny").replace(max_steps=8, eval_every=8, max_ops=2)


def test_variants_differ_from_the_base_only_in_their_loss_settings():
    hashes = set()
    for v in ablation.LOSS_VARIANTS:
        name, config = ablation.variant_config(v)
        changed = {f.name for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(ablation.ABLATION_BASE, f.name)}
        assert changed <= LOSS_FIELDS and (changed or v == "BCE"), (v, changed)
        assert name.startswith("loss-") and " " not in name
        hashes.add(config_hash(config))
    assert len(hashes) == len(ablation.LOSS_VARIANTS)
    with pytest.raises(ValueError, match="unknown loss variant 'focal'; known: BCE"):
        ablation.variant_config("focal")


@pytest.fixture(scope="module")
def two_variants(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRM_LIB_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.delenv("PRM_LIB_TRAIN_SEED", raising=False)
    try:
        yield ablation.run(["BCE", "mask after first error"], base=TINY, n_test=60, progress=False)
    finally:
        mp.undo()


def test_measures_are_the_metrics_modules(two_variants):
    test = test_set(TINY, 60)
    r = two_variants["BCE"]
    d = r["per_solution"]
    probs = [d["step_probs"][d["step_offsets"][i]:d["step_offsets"][i + 1]].tolist() for i in range(len(test))]
    assert r["step_auroc"] == pytest.approx(step_metrics(probs, [s.targets for s in test])["step_auroc"])
    cut = [(p[: s.first_error + 1], s.targets[: s.first_error + 1]) if s.first_error >= 0 else (p, s.targets)
           for p, s in zip(probs, test)]
    assert r["step_auroc_to_first_error"] == pytest.approx(step_metrics(*zip(*cut))["step_auroc"])
    assert r["step_auroc_to_first_error"] != r["step_auroc"]
    f1 = first_error_scores(probs, [s.first_error for s in test], r["threshold"])["f1"]
    assert r["first_error_f1"] == pytest.approx(f1)
    right = [int(s.is_correct) for s in test]
    assert r["solution_auroc_min"] == pytest.approx(auroc(aggregate_many(probs, "min"), right))
    assert r["solution_auroc_last"] == pytest.approx(auroc(aggregate_many(probs, "last"), right))
    assert r["train_seconds"] > 0


def test_a_model_against_itself_has_no_gap_and_intervals_hold_the_measured_gap(two_variants):
    ref, other = two_variants["BCE"], two_variants["mask after first error"]
    same = ablation.gap_to(ref, ref, n_boot=50)
    assert all(g == {"gap": 0.0, "low": 0.0, "high": 0.0} for g in same.values())
    gaps = ablation.gap_to(ref, other, n_boot=200)
    assert set(gaps) == set(ablation.MEASURES)
    for m, g in gaps.items():
        assert g["gap"] == pytest.approx(other[m] - ref[m])
        assert g["low"] <= g["high"]
    assert any(g["low"] < g["high"] for g in gaps.values())  # two different models: the resamples vary


def test_paired_bootstrap_interval_covers_a_known_mean():
    x = np.random.default_rng(1).normal(0.3, 1.0, 400)
    lo, hi = paired_bootstrap(lambda idx: np.array([x[idx].mean()]), len(x), n_boot=500)
    assert lo[0] < x.mean() < hi[0] and hi[0] - lo[0] < 0.3
