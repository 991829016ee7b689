"""The tiny matrix the compare tests run on either launcher: the embedded default shrunk to seconds."""

from __future__ import annotations

from pathlib import Path

from redit.experiments.spec import deep_merge
from redit.presets import load_preset

ARMS = {"vanilla": {"dither": "off"}, "redit": {"dither": {"distribution": "gaussian", "sigma": 0.1}}}
BROKEN = {"model": {"name_or_path": "/nonexistent/no-such-model", "warm_start": None}}  # fails when it loads


def tiny_spec(out: Path, arms: dict | None = None, seeds: int = 2) -> dict:
    """2 steps, a 5-step warm start, 16 held-out problems, 2 runs at once."""
    spec = load_preset("compare-tiny")
    spec["base"] = deep_merge(
        spec["base"],
        {
            "model": {
                "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1},
                "warm_start": {"steps": 5},
            },
            "training": {"max_steps": 2, "per_device_train_batch_size": 16, "save_steps": 1},
            "eval": {"every": 1, "limit": 16, "k": 2},
        },
    )
    spec["arms"] = arms or {"vanilla": {"dither": "off"}, "redit": {"dither": {"sigma": 0.1}}}
    return spec | {"output_dir": str(out), "seeds": seeds, "workers": 2}
