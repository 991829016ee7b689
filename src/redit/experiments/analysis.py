"""Statistics for ``redit compare``: load the run directories, summarise each arm, compare each arm to the baseline.

Everything numeric here comes from scipy: 95% percentile-bootstrap intervals (``scipy.stats.bootstrap``, fixed seed,
so a report is reproducible) and exact sign-flip permutation p-values for paired differences
(``scipy.stats.permutation_test``, ``permutation_type="samples"``). Runs pair across arms by seed. No plotting here:
:mod:`redit.experiments.report` turns the summary this module returns into files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from redit.atomic import read_jsonl
from redit.rundir import ExperimentDir, RunDir

SCHEMA_VERSION = 1
ACCURACY_METRICS = ("accuracy_greedy", "accuracy_sampled")
TRAINING_CURVES = ("reward_clean", "grad_norm", "frac_zero_std_clean")
EXACT_MAX_SEEDS = 16  # sign-flip tests enumerate all 2**n flips up to this many pairs


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


# ------------------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Settings:
    """Every choice behind the numbers; written into ``summary["settings"]``."""

    baseline: str = "vanilla"
    metric: str = "accuracy_greedy"
    confidence: float = 0.95
    n_resamples: int = 9999
    seed: int = 0
    alpha: float = 0.05
    smooth_window: int = 3
    vanish_ratio: float = 0.1
    explode_ratio: float = 10.0
    train_smooth: int = 5


def mean_ci(values: Iterable[float], cfg: Settings = Settings()) -> dict[str, Any]:
    """Mean and percentile-bootstrap CI of the finite ``values``; ``lo``/``hi`` are NaN with fewer than two."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return {"mean": float(x.mean()) if x.size else math.nan, "lo": math.nan, "hi": math.nan, "n": int(x.size)}
    result = stats.bootstrap(
        (x,),
        np.mean,
        method="percentile",
        confidence_level=cfg.confidence,
        n_resamples=cfg.n_resamples,
        rng=np.random.default_rng(cfg.seed),
    )
    ci = result.confidence_interval
    return {"mean": float(x.mean()), "lo": float(ci.low), "hi": float(ci.high), "n": int(x.size)}


def sign_flip_p(diffs: Iterable[float], cfg: Settings = Settings()) -> tuple[float, bool]:
    """Two-sided sign-flip permutation p-value of the mean paired difference, and whether it is exact."""
    d = np.asarray(list(diffs), dtype=float)
    if d.size < 2:  # scipy needs two; one pair has two flips with the same |mean|, so p = 1
        return (1.0 if d.size else math.nan), True
    exact = d.size <= EXACT_MAX_SEEDS
    result = stats.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        vectorized=True,
        alternative="two-sided",
        n_resamples=2**d.size if exact else cfg.n_resamples,
        rng=np.random.default_rng(cfg.seed),
    )
    return float(result.pvalue), exact


def paired_difference(
    arm: Mapping[int, float], base: Mapping[int, float], cfg: Settings = Settings()
) -> dict[str, Any]:
    """Mean [CI] and sign-flip p of ``arm[s] - base[s]`` over the seeds ``s`` where both are finite."""
    seeds = sorted(s for s in arm if s in base and math.isfinite(arm[s]) and math.isfinite(base[s]))
    diffs = [arm[s] - base[s] for s in seeds]
    p, exact = sign_flip_p(diffs, cfg)
    return {**mean_ci(diffs, cfg), "p": p, "exact": exact, "seeds": seeds}


def curve_ci(series: Mapping[int, tuple[np.ndarray, np.ndarray]], cfg: Settings = Settings()) -> dict[str, list]:
    """Per step (aligned by step across seeds): mean, bootstrap CI and number of seeds with a value."""
    steps = sorted({int(s) for st, _ in series.values() for s in st})
    matrix = np.full((len(series), len(steps)), np.nan)
    column = {s: j for j, s in enumerate(steps)}
    for i, (st, values) in enumerate(series.values()):
        matrix[i, [column[int(s)] for s in st]] = values
    n = np.isfinite(matrix).sum(axis=0)
    mean = np.array([matrix[np.isfinite(matrix[:, j]), j].mean() if n[j] else np.nan for j in range(len(steps))])
    lo, hi = np.full(len(steps), np.nan), np.full(len(steps), np.nan)
    full = n == len(series)
    if len(series) >= 2 and full.any():
        lo[full], hi[full] = _columns_ci(matrix[:, full], cfg)
    for j in np.flatnonzero(~full):
        ci = mean_ci(matrix[:, j], cfg)
        lo[j], hi[j] = ci["lo"], ci["hi"]
    return {"step": steps, "mean": mean.tolist(), "lo": lo.tolist(), "hi": hi.tolist(), "n": n.tolist()}


def _columns_ci(matrix: np.ndarray, cfg: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of each column's mean, all columns in one vectorised call."""
    batch = max(1, int(2e7 // matrix.size))
    result = stats.bootstrap(
        (matrix,),
        np.mean,
        axis=0,
        vectorized=True,
        batch=batch,
        method="percentile",
        confidence_level=cfg.confidence,
        n_resamples=cfg.n_resamples,
        rng=np.random.default_rng(cfg.seed),
    )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean: element ``i`` is the mean of ``values[max(0, i-window+1) : i+1]``."""
    return np.array([values[max(0, i - window + 1) : i + 1].mean() for i in range(len(values))])


def auc(steps: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under the curve divided by the step span: the curve's mean level, NaN with < 2 points."""
    if len(steps) < 2 or steps[-1] == steps[0]:
        return math.nan
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def first_reach(steps: np.ndarray, values: np.ndarray, target: float, window: int) -> int | None:
    """First step from which the trailing running mean of ``values`` stays ≥ ``target`` (up to rounding) to the
    last eval; None if it ends below. A curve that starts above the target and dips counts from its recovery."""
    smoothed = running_mean(values, window)
    above = (smoothed >= target) | np.isclose(smoothed, target, rtol=1e-12, atol=1e-12)
    if not len(above) or not above[-1]:
        return None
    below = np.flatnonzero(~above)
    return int(steps[below[-1] + 1]) if len(below) else int(steps[0])


def grad_fractions(grad_norms: np.ndarray, vanish_ratio: float, explode_ratio: float) -> dict[str, float]:
    """Median grad norm and the fractions of steps below ``vanish_ratio``× / above ``explode_ratio``× that median."""
    if not len(grad_norms):
        return {"median_grad_norm": math.nan, "frac_vanishing": math.nan, "frac_exploding": math.nan}
    median = float(np.median(grad_norms))
    return {
        "median_grad_norm": median,
        "frac_vanishing": float(np.mean(grad_norms < vanish_ratio * median)),
        "frac_exploding": float(np.mean(grad_norms > explode_ratio * median)),
    }


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
            "min_seeds_for_alpha": _min_seeds(cfg.alpha),
        },
        "runs": _run_counts(runs, arms),
        "accuracy": {
            m: {arm: {k: v for k, v in a.items() if k != "curve"} for arm, a in accuracy[m].items()} for m in metrics
        },
        "paired": paired,
        "steps_to_target": _steps_to_target(runs, arms, accuracy[metric], cfg),
        "gradients": _gradients(runs, arms, cfg),
        "curves": _curves(runs, arms, accuracy, cfg),
        "verdicts": {arm: verdict(paired[arm], metric, cfg) for arm in arms[1:]},
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
    """Per arm: AUC and final accuracy per seed with mean [CI], and the per-eval-step curve."""
    out = {}
    for arm in arms:
        series = {seed: run.series(metric, "evals") for seed, run in runs.ok(arm).items()}
        series = {seed: s for seed, s in series.items() if len(s[0])}
        per_seed = {
            seed: {"auc": auc(st, v), "final": float(v[-1]), "final_step": int(st[-1])}
            for seed, (st, v) in series.items()
        }
        out[arm] = {
            "auc": mean_ci([p["auc"] for p in per_seed.values()], cfg),
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


def _steps_to_target(runs: Runs, arms: list[str], accuracy: dict[str, Any], cfg: Settings) -> dict[str, Any]:
    """Steps each smoothed curve needs to reach the baseline's final level, and their ratios to the baseline's.

    Target: mean over baseline seeds of the last point of each smoothed curve, so the baseline's mean curve reaches it
    by its last eval at the latest and the ratio of mean-curve steps is always defined for the baseline.
    """
    series = {arm: {seed: run.series(cfg.metric, "evals") for seed, run in runs.ok(arm).items()} for arm in arms}
    finals = [running_mean(v, cfg.smooth_window)[-1] for _, v in series[cfg.baseline].values() if len(v)]
    target = float(np.mean(finals)) if finals else math.nan
    reached = {
        arm: {seed: first_reach(st, v, target, cfg.smooth_window) for seed, (st, v) in s.items()}
        for arm, s in series.items()
    }
    curves = {arm: accuracy[arm]["curve"] for arm in arms}
    curve_step = {
        arm: first_reach(np.array(c["step"], dtype=int), np.array(c["mean"]), target, cfg.smooth_window)
        for arm, c in curves.items()
    }
    return {
        "metric": cfg.metric,
        "target": target,
        "smoothing": f"trailing running mean over {cfg.smooth_window} evals",
        "arms": {
            arm: _reach_stats(reached[arm], reached[cfg.baseline])
            | {
                "mean_curve_steps": curve_step[arm],
                "ratio_mean_curve": _ratio(curve_step[arm], curve_step[cfg.baseline]),
            }
            for arm in arms
        },
    }


def _ratio(steps: float | None, base: float | None) -> float:
    """``steps / base``; NaN when either is missing or the baseline needs no steps."""
    return steps / base if steps is not None and base else math.nan


def _reach_stats(mine: dict[int, int | None], base: dict[int, int | None]) -> dict[str, Any]:
    hit = [s for s in mine.values() if s is not None]
    ratios = [_ratio(mine[s], base.get(s)) for s in mine]
    ratios = [r for r in ratios if math.isfinite(r)]
    return {
        "per_seed": mine,
        "n_reached": len(hit),
        "n_never": len(mine) - len(hit),
        "mean_steps": float(np.mean(hit)) if hit else math.nan,
        "median_steps": float(np.median(hit)) if hit else math.nan,
        "ratio_median_paired": float(np.median(ratios)) if ratios else math.nan,
        "n_pairs": len(ratios),
    }


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


# ---------------------------------------------------------------------------------------------------- verdict


def _min_seeds(alpha: float) -> int:
    """Fewest paired seeds for which an exact two-sided sign-flip test can reach ``p <= alpha`` (2/2**n)."""
    return next(n for n in range(1, 64) if 2 / 2**n <= alpha)


def _direction(diff: Mapping[str, Any], alpha: float) -> int:
    """+1 / −1 when the CI excludes 0 on that side and p ≤ alpha; 0 otherwise."""
    if not diff["n"] or not math.isfinite(diff["p"]) or diff["p"] > alpha:
        return 0
    return 1 if diff["lo"] > 0 else -1 if diff["hi"] < 0 else 0


def verdict(paired: Mapping[str, Any], metric: str, cfg: Settings = Settings()) -> dict[str, Any]:
    """Faster / slower / no detectable difference, from the paired Δ AUC (CI excludes 0 and p ≤ alpha)."""
    auc_d, final_d = paired[metric]["auc"], paired[metric]["final"]
    n = auc_d["n"]
    if n == 0:
        return {
            "label": "not compared",
            "final_label": "not compared",
            "n_pairs": 0,
            "text": f"not compared: no seed has a finished run in both this arm and {cfg.baseline!r}",
        }
    label = {1: "faster", -1: "slower", 0: "no detectable difference"}[_direction(auc_d, cfg.alpha)]
    final = {1: "higher", -1: "lower", 0: "no detectable difference"}[_direction(final_d, cfg.alpha)]
    seeds = f"{n} seed" + "s" * (n > 1)
    head = f"{label} than {cfg.baseline}" if label != "no detectable difference" else f"{label} at {seeds}"
    text = (
        f"{head}: Δ AUC {_fmt(auc_d)}, p = {auc_d['p']:.3g}; final accuracy {final}: Δ {_fmt(final_d)}, "
        f"p = {final_d['p']:.3g} ({n} paired, {metric}; decided by CI excluding 0 and p ≤ {cfg.alpha})"
    )
    if n < _min_seeds(cfg.alpha):
        text += (
            f". With {seeds} the smallest attainable two-sided p is {min(1.0, 2 / 2**n):.3g}: "
            f"at least {_min_seeds(cfg.alpha)} seeds are needed to detect any difference"
        )
    return {"label": label, "final_label": final, "n_pairs": n, "text": text}


def _fmt(ci: Mapping[str, Any]) -> str:
    if not math.isfinite(ci["lo"]):
        return f"{ci['mean']:+.3f} [no CI]"
    return f"{ci['mean']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}]"


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
