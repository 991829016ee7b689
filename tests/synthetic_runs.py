"""Writers for synthetic ``OUT/runs/<arm>/seed<k>/`` directories in the exact format the compare runner writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

EVAL_STEPS = tuple(range(0, 101, 10))
TRAIN_STEPS = 100


def write_run(
    out: Path,
    arm: str,
    seed: int,
    evals: Iterable[dict[str, Any]],
    metrics: Iterable[dict[str, Any]] = (),
    status: str = "ok",
) -> Path:
    """One run directory; ``status`` ``ok`` writes DONE, ``failed`` writes error.txt, ``incomplete`` neither."""
    path = out / "runs" / arm / f"seed{seed}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if status == "ok":
        (path / "DONE").write_text("")
    elif status == "failed":
        (path / "error.txt").write_text("Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    return path


def accuracy_curve(
    seed: int,
    effect: float,
    arm_index: int = 0,
    noise: float = 0.02,
    steps: Sequence[int] = EVAL_STEPS,
    rise: float = 0.4,
) -> np.ndarray:
    """A saturating curve 0.3 → ~0.3 + ``rise`` (0: flat, < 0: degrades), faster and higher with ``effect``; after
    step 0 it adds noise shared by the seed's runs in every arm plus independent noise per (seed, arm), each of std
    ``noise``."""
    shared, own = np.random.default_rng(1000 + seed), np.random.default_rng(2000 + 97 * seed + arm_index)
    s = np.asarray(steps, dtype=float)
    curve = 0.3 + rise * (1 - np.exp(-s * (1 + effect) / 40)) + effect * 0.05 * (s > 0)
    curve[1:] += shared.normal(0, noise, size=len(s) - 1) + own.normal(0, noise, size=len(s) - 1)
    return np.clip(curve, 0, 1)


def training_metrics(seed: int, arm_index: int, steps: int = TRAIN_STEPS) -> list[dict[str, Any]]:
    """Per-step training records with a noisy grad norm, reward and zero-std fraction."""
    rng = np.random.default_rng(5000 + 97 * seed + arm_index)
    return [
        {
            "step": t,
            "loss": float(rng.normal()),
            "grad_norm": float(rng.lognormal(0, 0.5)),
            "reward_clean": float(0.2 + 0.004 * t + rng.normal(0, 0.02)),
            "frac_zero_std_clean": float(np.clip(0.5 - 0.003 * t + rng.normal(0, 0.05), 0, 1)),
            "sigma": 0.0 if arm_index == 0 else 0.05,
            "kl": None,
        }
        for t in range(1, steps + 1)
    ]


def write_experiment(
    out: Path, effects: dict[str, float], seeds: Iterable[int], noise: float = 0.02, rise: float = 0.4
) -> Path:
    """An experiment with one arm per ``effects`` entry (0 = like the baseline) and the same seeds in every arm;
    ``rise`` is how much the baseline's curve gains (see :func:`accuracy_curve`)."""
    for arm_index, (arm, effect) in enumerate(effects.items()):
        for seed in seeds:
            curve = accuracy_curve(seed, effect, arm_index, noise, rise=rise)
            sampled = np.clip(curve - 0.05, 0, 1)
            evals = [
                {"step": s, "accuracy_greedy": float(a), "accuracy_sampled": float(b), "k": 4}
                for s, a, b in zip(EVAL_STEPS, curve, sampled, strict=True)
            ]
            write_run(out, arm, seed, evals, training_metrics(seed, arm_index))
    return out
