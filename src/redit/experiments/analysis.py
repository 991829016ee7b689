"""The summary of ``redit compare``: load the run directories, summarise each arm, compare each arm to the baseline.

Runs pair across arms by seed. The statistics are in :mod:`redit.experiments.stats`, what they allow us to say
(did the baseline learn, verdicts, steps ratios) in :mod:`redit.experiments.verdicts`. No plotting here:
:mod:`redit.experiments.report` turns the summary this module returns into files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from redit.atomic import read_jsonl
from redit.experiments.stats import (
    EXACT_MAX_SEEDS,
    Settings,
    auc,
    curve_ci,
    grad_fractions,
    mean_ci,
    min_seeds,
    paired_difference,
    running_mean,
)
from redit.experiments.verdicts import baseline_learned, steps_to_target, to_baseline_final, verdict
from redit.rundir import ExperimentDir, RunDir

SCHEMA_VERSION = 2
ACCURACY_METRICS = ("accuracy_greedy", "accuracy_sampled")
TRAINING_CURVES = ("reward_clean", "grad_norm", "frac_zero_std_clean")


# --------------------------------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One run directory ``runs/<arm>/seed<k>/``; status ``ok`` (DONE), ``failed`` (error.txt) or ``incomplete``."""

    arm: str
    seed: int
    path: Path
    status: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def series(self, key: str, source: str = "metrics") -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``key`` by step; null/non-finite values dropped, a step's last record wins."""
        by_step: dict[int, float] = {}
        for record in self.evals if source == "evals" else self.metrics:
            step, value = record.get("step"), record.get(key)
            if isinstance(step, (int, float)) and _is_number(value):
                by_step[int(step)] = float(value)
        steps = np.array(sorted(by_step), dtype=int)
        return steps, np.array([by_step[s] for s in steps], dtype=float)


@dataclass
class Runs:
    """All runs of one experiment output directory."""

    out_dir: Path
    runs: list[Run]

    @property
    def arms(self) -> list[str]:
        """Arm names in directory order."""
        return list(dict.fromkeys(run.arm for run in self.runs))

    def ok(self, arm: str) -> dict[int, Run]:
        """The finished runs of ``arm`` by seed."""
        return {run.seed: run for run in self.runs if run.arm == arm and run.status == "ok"}


def load_runs(out_dir: str | Path) -> Runs:
    """Read every run directory of ``out_dir`` (:class:`redit.rundir.ExperimentDir`) into :class:`Runs`."""
    experiment = ExperimentDir(Path(out_dir))
    return Runs(out_dir=experiment.path, runs=[_load_run(arm, seed, run) for arm, seed, run in experiment.runs()])


def _load_run(arm: str, seed: int, run: RunDir) -> Run:
    status = {"done": "ok"}.get(run.status(), run.status())
    return Run(arm, seed, run.path, status, read_jsonl(run.metrics), read_jsonl(run.evals), run.error_line())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------------- analyze


def analyze(runs: Runs, baseline: str = "vanilla", metric: str = "accuracy_greedy", **settings: Any) -> dict[str, Any]:
    """The JSON-serialisable summary of an experiment; ``settings`` override :class:`Settings` fields.

    Raises ValueError when ``baseline`` names no arm.
    """
    cfg = Settings(baseline=baseline, metric=metric, **settings)
    if baseline not in runs.arms:
        raise ValueError(f"baseline arm {baseline!r} not among the arms {runs.arms}")
    arms = [baseline] + [arm for arm in runs.arms if arm != baseline]
    metrics = [metric] + [m for m in ACCURACY_METRICS if m != metric]
    accuracy = {m: _accuracy(runs, arms, m, cfg) for m in metrics}
    paired = {arm: _paired(runs, arm, accuracy, cfg) for arm in arms[1:]}
    learned = baseline_learned(accuracy[metric][baseline], cfg)
    series = {arm: {seed: run.series(metric, "evals") for seed, run in runs.ok(arm).items()} for arm in arms}
    curves = {arm: accuracy[metric][arm]["curve"] for arm in arms}
    summary = {
        "schema_version": SCHEMA_VERSION,
        "out_dir": str(runs.out_dir),
        "baseline": baseline,
        "metric": metric,
        "metrics": metrics,
        "arms": arms,
        "settings": asdict(cfg)
        | {
            "ci_method": "percentile bootstrap",
            "permutation": f"sign-flip, exact up to {EXACT_MAX_SEEDS} pairs",
            "min_seeds_for_alpha": min_seeds(cfg.alpha),
        },
        "runs": _run_counts(runs, arms),
        "accuracy": {
            m: {arm: {k: v for k, v in a.items() if k != "curve"} for arm, a in accuracy[m].items()} for m in metrics
        },
        "baseline_learned": learned,
        "paired": paired,
        "steps_to_target": steps_to_target(series, curves, learned["learned"], cfg),
        "to_baseline_final": to_baseline_final(series, learned["learned"], cfg),
        "gradients": _gradients(runs, arms, cfg),
        "curves": _curves(runs, arms, accuracy, cfg),
        "verdicts": {arm: verdict(paired[arm], learned, cfg) for arm in arms[1:]},
    }
    return _jsonable(summary)


def _run_counts(runs: Runs, arms: list[str]) -> dict[str, Any]:
    def listed(status: str) -> list[dict[str, Any]]:
        return [
            {"arm": r.arm, "seed": r.seed, **({"error": r.error} if r.error else {})}
            for r in runs.runs
            if r.status == status
        ]

    return {
        "total": len(runs.runs),
        "ok": sum(r.status == "ok" for r in runs.runs),
        "failed": listed("failed"),
        "incomplete": listed("incomplete"),
        "per_arm": {
            arm: {
                "seeds": sorted(runs.ok(arm)),
                "failed": sum(r.arm == arm and r.status == "failed" for r in runs.runs),
                "incomplete": sum(r.arm == arm and r.status == "incomplete" for r in runs.runs),
            }
            for arm in arms
        },
    }


def _accuracy(runs: Runs, arms: list[str], metric: str, cfg: Settings) -> dict[str, dict[str, Any]]:
    """Per arm: AUC, first (step-0) and final accuracy per seed with mean [CI], and the per-eval-step curve."""
    out = {}
    for arm in arms:
        series = {seed: run.series(metric, "evals") for seed, run in runs.ok(arm).items()}
        series = {seed: s for seed, s in series.items() if len(s[0])}
        per_seed = {
            seed: {
                "auc": auc(st, v),
                "start": float(v[0]),
                "start_step": int(st[0]),
                "final": float(v[-1]),
                "final_step": int(st[-1]),
            }
            for seed, (st, v) in series.items()
        }
        out[arm] = {
            "auc": mean_ci([p["auc"] for p in per_seed.values()], cfg),
            "start": mean_ci([p["start"] for p in per_seed.values()], cfg),
            "final": mean_ci([p["final"] for p in per_seed.values()], cfg),
            "per_seed": per_seed,
            "curve": curve_ci(series, cfg),
        }
    return out


def _paired(runs: Runs, arm: str, accuracy: dict[str, dict[str, Any]], cfg: Settings) -> dict[str, Any]:
    """Paired differences arm − baseline of AUC and final accuracy, by seed, for every accuracy metric."""
    arm_seeds, base_seeds = set(runs.ok(arm)), set(runs.ok(cfg.baseline))
    out: dict[str, Any] = {
        "seeds": sorted(arm_seeds & base_seeds),
        "missing_in_arm": sorted(base_seeds - arm_seeds),
        "missing_in_baseline": sorted(arm_seeds - base_seeds),
    }
    for metric, per_arm in accuracy.items():
        mine, base = per_arm[arm]["per_seed"], per_arm[cfg.baseline]["per_seed"]
        out[metric] = {
            stat: paired_difference({s: v[stat] for s, v in mine.items()}, {s: v[stat] for s, v in base.items()}, cfg)
            for stat in ("auc", "final")
        }
    return out


def _gradients(runs: Runs, arms: list[str], cfg: Settings) -> dict[str, Any]:
    """Per run: median grad norm, vanishing/exploding fractions and mean zero-std fraction; per arm mean [CI]."""
    out = {}
    for arm in arms:
        per_seed = {
            seed: grad_fractions(run.series("grad_norm")[1], cfg.vanish_ratio, cfg.explode_ratio)
            | {"mean_frac_zero_std": _nanmean(run.series("frac_zero_std_clean")[1])}
            for seed, run in runs.ok(arm).items()
        }
        keys = ("median_grad_norm", "frac_vanishing", "frac_exploding", "mean_frac_zero_std")
        out[arm] = {key: mean_ci([p[key] for p in per_seed.values()], cfg) for key in keys} | {"per_seed": per_seed}
    return {
        "vanish_ratio": cfg.vanish_ratio,
        "explode_ratio": cfg.explode_ratio,
        "median": "per run, over all logged steps",
        "arms": out,
    }


def _curves(runs: Runs, arms: list[str], accuracy: dict[str, dict[str, Any]], cfg: Settings) -> dict[str, Any]:
    """Per-step mean [CI] curves: accuracy per eval step, training metrics (reward and zero-std lightly smoothed)."""
    curves: dict[str, Any] = {m: {arm: a["curve"] for arm, a in per_arm.items()} for m, per_arm in accuracy.items()}
    for key in TRAINING_CURVES:
        window = 1 if key == "grad_norm" else cfg.train_smooth
        curves[key] = {}
        for arm in arms:
            series = {seed: run.series(key) for seed, run in runs.ok(arm).items()}
            series = {seed: (st, running_mean(v, window)) for seed, (st, v) in series.items() if len(st)}
            curves[key][arm] = curve_ci(series, cfg)
    curves["smoothing"] = {key: 1 if key == "grad_norm" else cfg.train_smooth for key in TRAINING_CURVES}
    return curves


def _nanmean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _jsonable(obj: Any) -> Any:
    """Plain JSON: NaN/inf → None, numpy scalars → Python, int dict keys → str."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
