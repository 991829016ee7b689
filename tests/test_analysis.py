"""Each statistic of redit.experiments.analysis against a direct computation on synthetic run directories."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic_runs import write_experiment, write_run

from redit.experiments.analysis import analyze, load_runs
from redit.experiments.stats import Settings, first_reach, mean_ci, sign_flip_p

STEPS = [0, 10, 30, 60]  # uneven on purpose: the AUC must weight by step span


def evals(values, steps=STEPS, key="accuracy_greedy"):
    return [{"step": s, key: v, "accuracy_sampled": v / 2, "k": 4} for s, v in zip(steps, values, strict=True)]


def test_load_runs_statuses_seeds_and_tolerant_parsing(tmp_path):
    write_run(tmp_path, "vanilla", 10, evals([0.1, 0.2, 0.3, 0.4]))
    write_run(tmp_path, "vanilla", 2, evals([0.1, 0.2, 0.3, 0.4]), status="failed")
    path = write_run(tmp_path, "vanilla", 3, evals([0.1, 0.2, 0.3, 0.4]), status="incomplete")
    (tmp_path / "runs" / "vanilla" / "notes").mkdir()
    with open(path / "metrics.jsonl", "w") as f:
        f.write(
            '{"step": 1, "grad_norm": 2.0}\n{"step": 2, "grad_norm": null}\n{"step": 3}\n'
            '{"step": 4, "grad_norm": NaN}\n{"step": 5, "grad_no'
        )  # truncated last line
    runs = load_runs(tmp_path)
    assert [(r.seed, r.status) for r in runs.runs] == [(2, "failed"), (3, "incomplete"), (10, "ok")]
    assert runs.runs[0].error == "RuntimeError: CUDA out of memory"
    assert list(runs.ok("vanilla")) == [10]
    steps, values = runs.runs[1].series("grad_norm")
    assert steps.tolist() == [1] and values.tolist() == [2.0]
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nowhere")


def test_mean_ci_against_a_numpy_bootstrap():
    x = np.array([0.31, 0.42, 0.38, 0.55, 0.29, 0.47, 0.40])
    ci = mean_ci(x)
    rng = np.random.default_rng(123)
    means = x[rng.integers(0, len(x), size=(40000, len(x)))].mean(axis=1)
    assert ci["mean"] == pytest.approx(x.mean()) and ci["n"] == 7
    assert ci["lo"] == pytest.approx(np.percentile(means, 2.5), abs=0.005)
    assert ci["hi"] == pytest.approx(np.percentile(means, 97.5), abs=0.005)
    assert mean_ci(x) == ci  # fixed seed: reproducible


def test_mean_ci_degenerate_inputs():
    assert mean_ci([0.3, 0.3, 0.3])["lo"] == pytest.approx(0.3) and mean_ci([0.3, 0.3])["hi"] == pytest.approx(0.3)
    single = mean_ci([0.7, math.nan])
    assert single["mean"] == 0.7 and single["n"] == 1 and math.isnan(single["lo"]) and math.isnan(single["hi"])
    assert mean_ci([])["n"] == 0 and math.isnan(mean_ci([])["mean"])


def test_sign_flip_p_equals_full_enumeration():
    d = np.array([0.03, -0.01, 0.05, 0.02, 0.04, -0.02, 0.06])
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    null = (flips * d).mean(axis=1)
    expected = np.mean(np.abs(null) >= abs(d.mean()) - 1e-12)
    p, exact = sign_flip_p(d)
    assert exact and p == pytest.approx(expected)
    assert sign_flip_p(np.full(6, 0.1))[0] == pytest.approx(2 / 2**6)
    assert sign_flip_p(np.arange(1, 18) / 10, Settings(n_resamples=999))[1] is False
    assert sign_flip_p([0.2]) == (1.0, True) and math.isnan(sign_flip_p([])[0])


def test_auc_final_and_curve_against_direct_computation(tmp_path):
    curves = {1: [0.2, 0.3, 0.5, 0.6], 2: [0.2, 0.4, 0.4, 0.7], 3: [0.2, 0.35, 0.45, 0.5]}
    for seed, values in curves.items():
        records = evals(values)
        if seed == 3:
            records = [r for r in records if r["step"] != 30]  # seed 3 missed the step-30 eval
        write_run(tmp_path, "vanilla", seed, records)
    summary = analyze(load_runs(tmp_path))
    acc = summary["accuracy"]["accuracy_greedy"]["vanilla"]

    def direct_auc(steps, values):
        area = sum((steps[i + 1] - steps[i]) * (values[i] + values[i + 1]) / 2 for i in range(len(steps) - 1))
        return area / (steps[-1] - steps[0])

    expected = {
        1: direct_auc(STEPS, curves[1]),
        2: direct_auc(STEPS, curves[2]),
        3: direct_auc([0, 10, 60], [0.2, 0.35, 0.5]),
    }
    for seed, value in expected.items():
        assert acc["per_seed"][str(seed)]["auc"] == pytest.approx(value)
        assert acc["per_seed"][str(seed)]["final"] == curves[seed][-1]
    assert acc["auc"]["mean"] == pytest.approx(np.mean(list(expected.values())))
    assert acc["final"]["mean"] == pytest.approx(np.mean([0.6, 0.7, 0.5]))
    assert summary["accuracy"]["accuracy_sampled"]["vanilla"]["final"]["mean"] == pytest.approx(0.3)
    curve = summary["curves"]["accuracy_greedy"]["vanilla"]
    assert curve["step"] == STEPS and curve["n"] == [3, 3, 2, 3]
    assert curve["mean"] == pytest.approx([0.2, 0.35, 0.45, 0.6])
    assert curve["lo"][0] == pytest.approx(0.2) and curve["hi"][0] == pytest.approx(0.2)
    assert curve["lo"][1] <= 0.35 <= curve["hi"][1]


def test_pairing_is_by_seed_not_by_order(tmp_path):
    levels = {1: 0.1, 2: 0.5, 3: 0.2, 4: 0.6, 5: 0.3, 6: 0.4, 7: 0.9}
    for seed in [7, 3, 1, 6, 2, 5, 4]:
        write_run(tmp_path, "vanilla", seed, evals([0.1, levels[seed], levels[seed], levels[seed]]))
    for seed in [8, 5, 2, 6, 1, 4, 3]:  # seed 7 missing here, seed 8 missing in the baseline
        records = evals([0.1, *[levels.get(seed, 0.0) + 0.05] * 3])
        write_run(tmp_path, "redit", seed, records[::-1])  # records out of step order too
    summary = analyze(load_runs(tmp_path))
    pairing = summary["paired"]["redit"]
    assert pairing["seeds"] == [1, 2, 3, 4, 5, 6]
    assert pairing["missing_in_arm"] == [7] and pairing["missing_in_baseline"] == [8]
    final = pairing["accuracy_greedy"]["final"]
    assert final["n"] == 6 and final["seeds"] == [1, 2, 3, 4, 5, 6]
    assert final["mean"] == pytest.approx(0.05) and final["lo"] == pytest.approx(0.05)
    assert final["hi"] == pytest.approx(0.05) and final["p"] == pytest.approx(2 / 2**6)
    expected_auc = (0.05 * 10 / 2 + 0.05 * 50) / 60  # difference curve 0, .05, .05, .05 over steps 0..60
    assert pairing["accuracy_greedy"]["auc"]["mean"] == pytest.approx(expected_auc)


def test_failed_and_incomplete_runs_are_counted_and_excluded(tmp_path):
    for seed, level in [(1, 0.4), (2, 0.5), (3, 0.6)]:
        write_run(tmp_path, "vanilla", seed, evals([0.1, level, level, level]))
    write_run(tmp_path, "vanilla", 4, evals([0.1, 1.0, 1.0, 1.0]), status="failed")
    write_run(tmp_path, "vanilla", 5, evals([0.1, 1.0, 1.0, 1.0]), status="incomplete")
    summary = analyze(load_runs(tmp_path))
    assert summary["accuracy"]["accuracy_greedy"]["vanilla"]["final"]["mean"] == pytest.approx(0.5)
    assert summary["accuracy"]["accuracy_greedy"]["vanilla"]["final"]["n"] == 3
    runs = summary["runs"]
    assert runs["total"] == 5 and runs["ok"] == 3
    assert runs["failed"] == [{"arm": "vanilla", "seed": 4, "error": "RuntimeError: CUDA out of memory"}]
    assert runs["incomplete"] == [{"arm": "vanilla", "seed": 5}]
    assert runs["per_arm"]["vanilla"] == {"seeds": [1, 2, 3], "failed": 1, "incomplete": 1}


def test_steps_to_target_against_direct_computation(tmp_path):
    steps = [0, 10, 20, 30, 40, 50]
    base = {1: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2: [0.1, 0.3, 0.3, 0.5, 0.5, 0.5]}
    arm = {1: [0.1, 0.5, 0.6, 0.6, 0.6, 0.6], 2: [0.1, 0.2, 0.4, 0.45, 0.45, 0.45]}
    for seed in (1, 2):
        write_run(tmp_path, "vanilla", seed, evals(base[seed], steps))
        write_run(tmp_path, "redit", seed, evals(arm[seed], steps))
    summary = analyze(load_runs(tmp_path))

    def smoothed(v):
        return [np.mean(v[max(0, i - 2) : i + 1]) for i in range(len(v))]

    def first(v, target):
        """First step from which the smoothed curve stays at or above the target."""
        sm = smoothed(v)
        return next((s for i, s in enumerate(steps) if all(x >= target - 1e-12 for x in sm[i:])), None)

    target = np.mean([smoothed(v)[-1] for v in base.values()])  # (0.5 + 0.5) / 2
    result = summary["steps_to_target"]
    assert result["target"] == pytest.approx(target)
    expected_base = {s: first(v, target) for s, v in base.items()}
    expected_arm = {s: first(v, target) for s, v in arm.items()}
    assert expected_base == {1: 50, 2: 50} and expected_arm == {1: 30, 2: None}
    b, r = result["arms"]["vanilla"], result["arms"]["redit"]
    assert b["per_seed"] == {"1": 50, "2": 50} and r["per_seed"] == {"1": 30, "2": None}
    assert (r["n_reached"], r["n_never"], r["median_steps"]) == (1, 1, 30)
    assert r["ratio_median_paired"] == pytest.approx(30 / 50) and r["n_pairs"] == 1
    mean_arm = np.mean(list(arm.values()), axis=0)
    assert r["mean_curve_steps"] == first(mean_arm, target) == 40
    assert r["ratio_mean_curve"] == pytest.approx(40 / 50) and b["ratio_mean_curve"] == 1.0


def test_gradient_diagnostics_against_direct_computation(tmp_path):
    norms = {1: [1.0] * 16 + [0.05, 0.01, 20.0, 50.0], 2: [2.0, 3.0, 4.0, 0.1, 100.0]}
    for seed, g in norms.items():
        metrics = [{"step": t + 1, "grad_norm": v, "frac_zero_std_clean": 0.25 * seed} for t, v in enumerate(g)]
        metrics.append({"step": len(g) + 1, "grad_norm": None, "frac_zero_std_clean": None})
        write_run(tmp_path, "vanilla", seed, evals([0.1, 0.2, 0.3, 0.4]), metrics)
    grads = analyze(load_runs(tmp_path), vanish_ratio=0.1, explode_ratio=10)["gradients"]
    assert (grads["vanish_ratio"], grads["explode_ratio"]) == (0.1, 10)
    arm = grads["arms"]["vanilla"]
    for seed, g in norms.items():
        g = np.array(g)
        median = np.median(g)
        per_seed = arm["per_seed"][str(seed)]
        assert per_seed["median_grad_norm"] == pytest.approx(median)
        assert per_seed["frac_vanishing"] == pytest.approx(np.mean(g < 0.1 * median))
        assert per_seed["frac_exploding"] == pytest.approx(np.mean(g > 10 * median))
        assert per_seed["mean_frac_zero_std"] == pytest.approx(0.25 * seed)
    assert arm["per_seed"]["1"]["frac_vanishing"] == pytest.approx(2 / 20)
    assert arm["frac_exploding"]["mean"] == pytest.approx(np.mean([2 / 20, 1 / 5]))


@pytest.fixture(scope="module")
def verdict_summary(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("verdicts")
    write_experiment(out, {"vanilla": 0.0, "better": 1.0, "worse": -0.5, "same": 0.0}, range(8))
    return analyze(load_runs(out))


@pytest.mark.parametrize(
    ("arm", "label", "final"),
    [
        ("better", "faster", "higher"),
        ("worse", "slower", "lower"),
        ("same", "no detectable difference", "no detectable difference"),
    ],
)
def test_verdict_follows_the_data(verdict_summary, arm, label, final):
    v = verdict_summary["verdicts"][arm]
    assert (v["label"], v["final_label"], v["n_pairs"]) == (label, final, 8)
    diff = verdict_summary["paired"][arm]["accuracy_greedy"]["auc"]
    assert f"p = {diff['p']:.3g}" in v["text"] and f"{diff['mean']:+.3f}" in v["text"]
    if label == "no detectable difference":
        assert diff["lo"] < 0 < diff["hi"] or diff["p"] > 0.05
        assert v["text"].startswith("no detectable difference at 8 seeds")


def test_few_seeds_cannot_claim_a_difference(tmp_path):
    write_experiment(tmp_path, {"vanilla": 0.0, "better": 1.0}, range(3))
    summary = analyze(load_runs(tmp_path))
    diff = summary["paired"]["better"]["accuracy_greedy"]["auc"]
    assert diff["lo"] > 0 and diff["p"] == pytest.approx(0.25)  # every seed better, yet 3 seeds cannot show it
    v = summary["verdicts"]["better"]
    assert v["label"] == "no detectable difference" and "smallest attainable two-sided p is 0.25" in v["text"]


def test_summary_is_strict_json_and_baseline_must_exist(tmp_path):
    write_run(tmp_path, "vanilla", 1, evals([0.1, 0.2, 0.3, 0.4]), status="failed")
    write_run(tmp_path, "redit", 1, evals([0.1, 0.3, 0.4, 0.5]))
    summary = analyze(load_runs(tmp_path))
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["verdicts"]["redit"]["label"] == "not compared"
    assert summary["steps_to_target"]["target"] is None
    assert summary["accuracy"]["accuracy_greedy"]["redit"]["final"] == {"mean": 0.5, "lo": None, "hi": None, "n": 1}
    with pytest.raises(ValueError, match="baseline"):
        analyze(load_runs(tmp_path), baseline="grpo")


def test_load_runs_accepts_str_paths(tmp_path):
    write_run(tmp_path, "vanilla", 0, evals([0.1, 0.2, 0.3, 0.4]))
    assert load_runs(str(tmp_path)).out_dir == Path(tmp_path)


def test_steps_to_target_counts_a_dip_from_its_recovery():
    """A curve that starts above the target, dips below it and recovers reaches it where it recovers, not at 0."""
    steps = np.array([0, 10, 20, 30, 40])
    values = np.array([0.5, 0.2, 0.2, 0.5, 0.5])  # smoothed (window 1): dips at 10-20, back at 30
    assert first_reach(steps, values, 0.45, window=1) == 30
    assert first_reach(steps, values, 0.6, window=1) is None
    assert first_reach(steps, np.array([0.5] * 5), 0.45, window=1) == 0


@pytest.mark.parametrize(("rise", "learned"), [(0.4, True), (0.0, False), (-0.2, False)])
def test_baseline_learned_against_direct_computation(tmp_path, rise, learned):
    """Learns / stays flat / degrades: gain = final − step 0 per seed, its CI and p; the mean curve's dip."""
    write_experiment(tmp_path, {"vanilla": 0.0, "redit": 1.0}, range(8), rise=rise)
    summary = analyze(load_runs(tmp_path))
    curves = {}
    for seed in range(8):
        records = [json.loads(x) for x in (tmp_path / f"runs/vanilla/seed{seed}/eval.jsonl").read_text().splitlines()]
        curves[seed] = [r["accuracy_greedy"] for r in records]
    gains = [c[-1] - c[0] for c in curves.values()]
    result = summary["baseline_learned"]
    ci = mean_ci(gains)
    assert result["gain"] == pytest.approx(np.mean(gains)) and result["ci"] == pytest.approx([ci["lo"], ci["hi"]])
    assert result["p"] == pytest.approx(sign_flip_p(gains)[0]) and result["n"] == 8
    assert result["start"]["mean"] == pytest.approx(np.mean([c[0] for c in curves.values()]))
    mean_curve = np.mean(list(curves.values()), axis=0)
    assert result["dip"] == pytest.approx(min(mean_curve - mean_curve[0]))
    assert result["dip_step"] == int(np.argmin(mean_curve - mean_curve[0])) * 10
    assert result["learned"] is learned is (ci["lo"] > 0)
    assert (summary["to_baseline_final"]["withheld"] is None) is learned
    assert (
        summary["steps_to_target"]["withheld"] == "withheld: the baseline did not learn in this regime"
    ) is not learned
    assert (summary["verdicts"]["redit"]["label"] == "faster") is learned


def test_steps_to_target_needs_a_target_most_baseline_seeds_reach(tmp_path):
    """Two of four baseline seeds end below the mean final level: the target is not reported, counts still are."""
    steps = [0, 10, 20, 30]
    finals = {1: 0.3, 2: 0.3, 3: 0.7, 4: 0.7}
    for seed, level in finals.items():
        write_run(tmp_path, "vanilla", seed, evals([0.1, level, level, level], steps))
        write_run(tmp_path, "redit", seed, evals([0.1, 0.8, 0.8, 0.8], steps))
    result = analyze(load_runs(tmp_path), smooth_window=1)["steps_to_target"]
    assert result["target"] == pytest.approx(0.5)
    assert (result["baseline_reached"], result["baseline_seeds"]) == (2, 4)
    assert result["withheld"] == "withheld: vanilla reached the target in only 2 of 4 seeds (not most)"
    redit = result["arms"]["redit"]
    assert (redit["n_reached"], redit["n_seeds"]) == (4, 4) and redit["per_seed"] == dict.fromkeys("1234", 10)
    assert redit["ratio_mean_curve"] is None and redit["ratio_median_paired"] is None


def test_steps_to_baseline_final_against_direct_computation(tmp_path):
    """Per seed: steps to that baseline seed's own final level, over the steps the baseline needed."""
    steps = [0, 10, 20, 30, 40]
    base = {1: [0.1, 0.2, 0.3, 0.4, 0.4], 2: [0.1, 0.3, 0.5, 0.5, 0.5], 3: [0.1, 0.2, 0.2, 0.2, 0.3]}
    arm = {1: [0.1, 0.4, 0.4, 0.4, 0.4], 2: [0.1, 0.2, 0.3, 0.4, 0.4], 3: [0.1, 0.3, 0.3, 0.3, 0.3]}
    for seed, values in base.items():
        write_run(tmp_path, "vanilla", seed, evals(values, steps))
        write_run(tmp_path, "redit", seed, evals(arm[seed], steps))
    result = analyze(load_runs(tmp_path), smooth_window=1)["to_baseline_final"]
    redit = result["arms"]["redit"]
    # seed 1: level 0.4, baseline at 30, arm at 10; seed 2: level 0.5, arm never; seed 3: level 0.3, 40 and 10
    assert {s: (p["baseline_steps"], p["arm_steps"]) for s, p in redit["per_seed"].items()} == {
        "1": (30, 10),
        "2": (20, None),
        "3": (40, 10),
    }
    assert (redit["n_pairs"], redit["n_reached"], redit["ratio"]["n"]) == (3, 2, 2)
    ratios = [10 / 30, 10 / 40]
    assert redit["ratio"]["mean"] == pytest.approx(np.mean(ratios))
    assert redit["ratio"] == {**mean_ci(ratios), "mean": pytest.approx(np.mean(ratios))}
    assert result["arms"]["vanilla"]["ratio"]["mean"] == 1.0 and result["withheld"] is None
