"""What the numbers allow ``redit compare`` to say: did the baseline learn, how fast each arm reaches the baseline's
final level, and the faster / slower verdicts. Speed claims need a baseline that learned: when it did not, every
verdict and steps ratio is withheld and replaced by a plain statement saying so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from redit.experiments.stats import Settings, first_reach, mean_ci, min_seeds, paired_difference, running_mean

Series = dict[int, tuple[np.ndarray, np.ndarray]]  # seed -> (eval steps, values)
LEARNED_RULE = (
    "the baseline learned when its paired gain (final minus step-0 accuracy, per seed) has a 95% CI that excludes 0 "
    "with a positive mean"
)
NOT_LEARNED = "withheld: the baseline did not learn in this regime"


def baseline_learned(accuracy: Mapping[str, Any], cfg: Settings) -> dict[str, Any]:
    """Per baseline seed, final minus first-eval (step-0) accuracy: mean, paired CI, sign-flip p; the mean curve's
    dip below its step-0 value; ``learned`` per :data:`LEARNED_RULE`."""
    per_seed = accuracy["per_seed"]
    starts = {seed: p["start"] for seed, p in per_seed.items() if p["final_step"] > p["start_step"]}
    finals = {seed: per_seed[seed]["final"] for seed in starts}
    gain = paired_difference(finals, starts, cfg)
    curve = accuracy["curve"]
    drop = np.asarray(curve["mean"], dtype=float) - (curve["mean"][0] if curve["mean"] else math.nan)
    dip_index = int(np.argmin(drop)) if len(drop) else None
    learned = gain["n"] >= 2 and gain["mean"] > 0 and gain["lo"] > 0
    result = {
        "learned": bool(learned),
        "metric": cfg.metric,
        "gain": gain["mean"],
        "ci": [gain["lo"], gain["hi"]],
        "p": gain["p"],
        "n": gain["n"],
        "seeds": gain["seeds"],
        "start": mean_ci(starts.values(), cfg),
        "final": mean_ci(finals.values(), cfg),
        "dip": float(drop[dip_index]) if dip_index is not None else math.nan,
        "dip_step": curve["step"][dip_index] if dip_index is not None else None,
        "rule": LEARNED_RULE,
    }
    return result | {"text": _learned_text(result, cfg.baseline)}


def _learned_text(r: Mapping[str, Any], baseline: str) -> str:
    if not math.isfinite(r["dip"]):
        dip = "no held-out curve"
    elif r["dip"] < 0:
        dip = f"the mean curve dips {_num(r['dip'], sign=True)} below its step-0 value (step {r['dip_step']})"
    else:
        dip = "the mean curve never falls below its step-0 value"
    numbers = (
        f"{r['metric']} {_num(r['start']['mean'])} at step 0 → {_num(r['final']['mean'])} at the end, "
        f"gain {_fmt({'mean': r['gain'], 'lo': r['ci'][0], 'hi': r['ci'][1]})}, p = {r['p']:.3g} over {r['n']} "
        f"seed{'s' * (r['n'] != 1)}; {dip}"
    )
    if r["learned"]:
        return f"{baseline} learned: {numbers}."
    if r["n"] < 2:
        return f"{baseline} did not learn in this regime, as far as can be shown (a CI needs 2 seeds): {numbers}."
    return (
        f"{baseline} did not learn in this regime: {numbers}. Speed verdicts and steps ratios are withheld: "
        f"'steps to reach {baseline}'s final accuracy' measures nothing when {baseline} does not improve."
    )


def steps_to_target(
    series: Mapping[str, Series], curves: Mapping[str, Any], learned: bool, cfg: Settings
) -> dict[str, Any]:
    """Steps each smoothed curve needs to reach one target, the baseline's final level, and ratios to the baseline's.

    Target: mean over baseline seeds of the last point of each smoothed curve. It is reported only when most
    baseline seeds (> half) reach it and the baseline learned; otherwise the ratios are None and ``withheld`` says why.
    """
    finals = [running_mean(v, cfg.smooth_window)[-1] for _, v in series[cfg.baseline].values() if len(v)]
    target = float(np.mean(finals)) if finals else math.nan
    reached = {
        arm: {seed: first_reach(st, v, target, cfg.smooth_window) for seed, (st, v) in s.items() if len(st)}
        for arm, s in series.items()
    }
    curve_step = {
        arm: first_reach(np.array(c["step"], dtype=int), np.array(c["mean"]), target, cfg.smooth_window)
        for arm, c in curves.items()
    }
    base = reached[cfg.baseline]
    base_hits = sum(s is not None for s in base.values())
    withheld = None
    if not learned:
        withheld = NOT_LEARNED
    elif base_hits * 2 <= len(base):
        withheld = f"withheld: {cfg.baseline} reached the target in only {base_hits} of {len(base)} seeds (not most)"
    arms = {}
    for arm in series:
        row = _reach_stats(reached[arm], base)
        ratio = _ratio(curve_step[arm], curve_step[cfg.baseline])
        if withheld:
            row["ratio_median_paired"], ratio = None, None
        arms[arm] = row | {"mean_curve_steps": curve_step[arm], "ratio_mean_curve": ratio}
    return {
        "metric": cfg.metric,
        "target": target,
        "smoothing": f"trailing running mean over {cfg.smooth_window} evals",
        "baseline_reached": base_hits,
        "baseline_seeds": len(base),
        "withheld": withheld,
        "arms": arms,
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
        "n_seeds": len(mine),
        "n_never": len(mine) - len(hit),
        "mean_steps": float(np.mean(hit)) if hit else math.nan,
        "median_steps": float(np.median(hit)) if hit else math.nan,
        "ratio_median_paired": float(np.median(ratios)) if ratios else math.nan,
        "n_pairs": len(ratios),
    }


def to_baseline_final(series: Mapping[str, Series], learned: bool, cfg: Settings) -> dict[str, Any]:
    """Per arm and paired seed: steps to reach that seed's baseline final level (its smoothed last point), divided by
    the steps the baseline itself needed; mean [CI] over the seeds where both reached it and the baseline needed > 0
    steps. Ratios are None (``withheld``) when the baseline did not learn."""
    base = series[cfg.baseline]
    arms = {}
    for arm, mine in series.items():
        per_seed = {}
        for seed in sorted(set(mine) & set(base)):
            (b_steps, b_values), (a_steps, a_values) = base[seed], mine[seed]
            if not len(b_values) or not len(a_values):
                continue
            level = running_mean(b_values, cfg.smooth_window)[-1]
            b, a = (
                first_reach(st, v, level, cfg.smooth_window) for st, v in ((b_steps, b_values), (a_steps, a_values))
            )
            per_seed[seed] = {"level": float(level), "baseline_steps": b, "arm_steps": a, "ratio": _ratio(a, b)}
        ratio = mean_ci([p["ratio"] for p in per_seed.values()], cfg)
        arms[arm] = {
            "per_seed": per_seed,
            "n_pairs": len(per_seed),
            "n_reached": sum(p["arm_steps"] is not None for p in per_seed.values()),
            "ratio": ratio if learned else dict.fromkeys(ratio, None) | {"n": ratio["n"]},
        }
    return {
        "metric": cfg.metric,
        "smoothing": f"trailing running mean over {cfg.smooth_window} evals",
        "withheld": None if learned else NOT_LEARNED,
        "arms": arms,
    }


# ---------------------------------------------------------------------------------------------------- verdict


def _direction(diff: Mapping[str, Any], alpha: float) -> int:
    """+1 / −1 when the CI excludes 0 on that side and p ≤ alpha; 0 otherwise."""
    if not diff["n"] or not math.isfinite(diff["p"]) or diff["p"] > alpha:
        return 0
    return 1 if diff["lo"] > 0 else -1 if diff["hi"] < 0 else 0


def verdict(paired: Mapping[str, Any], learned: Mapping[str, Any], cfg: Settings) -> dict[str, Any]:
    """Faster / slower / no detectable difference, from the paired Δ AUC (CI excludes 0 and p ≤ alpha); withheld
    when the baseline did not learn."""
    auc_d, final_d = paired[cfg.metric]["auc"], paired[cfg.metric]["final"]
    n = auc_d["n"]
    if n == 0:
        return {
            "label": "not compared",
            "final_label": "not compared",
            "n_pairs": 0,
            "text": f"not compared: no seed has a finished run in both this arm and {cfg.baseline!r}",
        }
    if not learned["learned"]:
        text = (
            f"{NOT_LEARNED} (see above); Δ AUC {_fmt(auc_d)}, p = {auc_d['p']:.3g}; Δ final {_fmt(final_d)}, "
            f"p = {final_d['p']:.3g} ({n} paired, {cfg.metric})"
        )
        return {"label": NOT_LEARNED, "final_label": NOT_LEARNED, "n_pairs": n, "text": text}
    label = {1: "faster", -1: "slower", 0: "no detectable difference"}[_direction(auc_d, cfg.alpha)]
    final = {1: "higher", -1: "lower", 0: "no detectable difference"}[_direction(final_d, cfg.alpha)]
    seeds = f"{n} seed" + "s" * (n > 1)
    head = f"{label} than {cfg.baseline}" if label != "no detectable difference" else f"{label} at {seeds}"
    text = (
        f"{head}: Δ AUC {_fmt(auc_d)}, p = {auc_d['p']:.3g}; final accuracy {final}: Δ {_fmt(final_d)}, "
        f"p = {final_d['p']:.3g} ({n} paired, {cfg.metric}; decided by CI excluding 0 and p ≤ {cfg.alpha})"
    )
    if n < min_seeds(cfg.alpha):
        text += (
            f". With {seeds} the smallest attainable two-sided p is {min(1.0, 2 / 2**n):.3g}: "
            f"at least {min_seeds(cfg.alpha)} seeds are needed to detect any difference"
        )
    return {"label": label, "final_label": final, "n_pairs": n, "text": text}


def _num(value: float, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def _fmt(ci: Mapping[str, Any]) -> str:
    if not math.isfinite(ci["lo"]):
        return f"{_num(ci['mean'], sign=True)} [no CI]"
    return f"{ci['mean']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}]"
