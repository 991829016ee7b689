"""The statistics behind ``redit compare``, all from scipy: percentile-bootstrap CIs (``scipy.stats.bootstrap``, fixed
seed, so a report is reproducible), exact sign-flip permutation p-values of paired differences
(``scipy.stats.permutation_test``, ``permutation_type="samples"``), and curve summaries (AUC, steps to a level).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

EXACT_MAX_SEEDS = 16  # sign-flip tests enumerate all 2**n flips up to this many pairs


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


def min_seeds(alpha: float) -> int:
    """Fewest paired seeds for which an exact two-sided sign-flip test can reach ``p <= alpha`` (2/2**n)."""
    return next(n for n in range(1, 64) if 2 / 2**n <= alpha)
