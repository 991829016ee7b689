"""Experiment specs for ``redit compare``: a base ``redit train`` config, named arms that override it, and seeds.

```yaml
output_dir: runs/compare
baseline: vanilla
seeds: 4                  # or an explicit list [0, 1, 2, 3]
workers: auto             # parallel runs (auto: one per core)
base: {model: ..., data: ..., rewards: ..., training: ..., eval: ...}
arms:
  vanilla: {dither: off}
  redit-gaussian: {dither: {distribution: gaussian, ratio: 0.05}}
  redit-no-std: {dither: {sigma: 0.1}, training: {scale_rewards: none}}
```

Arms share seeds pairwise: seed ``s`` sets ``training.seed`` (data order, sampling) and ``dither.seed`` in every arm,
and all arms start from the same (cached) warm-started model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redit.config import RunConfig, apply_overrides, load_yaml, parse_config
from redit.rundir import ExperimentDir

SPEC_KEYS = ("output_dir", "baseline", "seeds", "workers", "base", "arms")


@dataclass(frozen=True)
class RunRequest:
    """One cell of the matrix: an arm at a seed, with its fully merged raw config and a key for resumption."""

    arm: str
    seed: int
    raw: dict[str, Any]

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def config(self) -> RunConfig:
        return parse_config(self.raw)


@dataclass
class ExperimentSpec:
    output_dir: Path
    baseline: str
    seeds: list[int]
    workers: int
    base: dict[str, Any]
    arms: dict[str, dict[str, Any]]

    def requests(self) -> list[RunRequest]:
        """Every (arm, seed) run, seeds outermost so partial results stay paired."""
        return [self._request(arm, seed) for seed in self.seeds for arm in self.arms]

    def _request(self, arm: str, seed: int) -> RunRequest:
        raw = deep_merge(self.base, self.arms[arm])
        raw["output_dir"] = str(ExperimentDir(self.output_dir).run(arm, seed).path)
        raw.setdefault("training", {})["seed"] = seed
        if isinstance(raw.get("dither"), dict):
            raw["dither"]["seed"] = seed
        return RunRequest(arm, seed, raw)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, recursively for mappings; ``None``/``off`` replace."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_spec(
    raw: dict[str, Any],
    output_dir: str | None = None,
    seeds: int | None = None,
    max_steps: int | None = None,
    workers: int | None = None,
    baseline: str | None = None,
) -> ExperimentSpec:
    """Validate a spec mapping (flags override it) and every run config in it, before anything runs."""
    unknown = set(raw) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"spec: unknown key(s) {sorted(unknown)}; keys are {list(SPEC_KEYS)}")
    arms = raw.get("arms") or {}
    if not isinstance(arms, dict) or not arms:
        raise ValueError("spec.arms: give at least one named arm, e.g. arms: {vanilla: {dither: off}}")
    base = copy.deepcopy(raw.get("base") or {})
    if max_steps is not None:
        base.setdefault("training", {})["max_steps"] = max_steps
    spec = ExperimentSpec(
        output_dir=Path(output_dir or raw.get("output_dir") or "runs/compare"),
        baseline=baseline or raw.get("baseline", "vanilla"),
        seeds=_seeds(raw.get("seeds", 3) if seeds is None else seeds),
        workers=_workers(raw.get("workers", "auto") if workers is None else workers),
        base=base,
        arms={str(name): dict(arm or {}) for name, arm in arms.items()},
    )
    check_comparable(spec)
    from redit.train import build_rewards

    for request in spec.requests()[: len(spec.arms)]:
        try:
            build_rewards(request.config())
        except (ValueError, TypeError) as error:
            raise ValueError(f"arm '{request.arm}': {error}") from error
    return spec


def check_comparable(spec: ExperimentSpec) -> None:
    """The baseline is an arm, and every arm (after its overrides and the flags) evaluates at its last step."""
    if spec.baseline not in spec.arms:
        raise ValueError(f"baseline: {spec.baseline!r} is not an arm; arms are {list(spec.arms)}")
    for arm, override in spec.arms.items():
        raw = deep_merge(spec.base, override)
        every, max_steps = (raw.get("eval") or {}).get("every", 0), (raw.get("training") or {}).get("max_steps")
        every_key = ("arms." + arm if "eval" in override else "base") + ".eval.every"
        steps_key = ("arms." + arm if "training" in override else "base") + ".training.max_steps"
        if not isinstance(every, int) or every <= 0:
            raise ValueError(
                f"{every_key}={every!r} (arm {arm!r}): redit compare compares held-out accuracy; "
                "set eval.every to a positive divisor of training.max_steps"
            )
        if isinstance(max_steps, int) and max_steps % every:
            raise ValueError(
                f"{every_key}={every} does not divide {steps_key}={max_steps} (arm {arm!r}): the last step would "
                "have no eval; choose an eval.every that divides it (--max-steps and --set change these too)"
            )


def load_spec(
    path: str | Path | None, default: dict[str, Any], overrides: list[str] = (), **flags: Any
) -> ExperimentSpec:
    """Read a spec (or ``default``), apply ``key=value`` overrides, then the flags."""
    return parse_spec(apply_overrides(load_yaml(path) if path is not None else default, list(overrides)), **flags)


def _seeds(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) for s in value) and len(set(value)) == len(value):
        return value
    raise ValueError(f"spec.seeds (--seeds): a positive count or a list of distinct integers, got {value!r}")


def _workers(value: Any) -> int:
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if isinstance(value, int) and value > 0:
        return value
    raise ValueError(f"spec.workers: 'auto' or a positive integer, got {value!r}")
