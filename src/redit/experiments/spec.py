"""Experiment specs for ``redit compare``: a base ``redit train`` config, named arms that override it, and seeds.

```yaml
output_dir: runs/compare
baseline: vanilla
seeds: 4                  # or an explicit list [0, 1, 2, 3]
workers: auto             # parallel runs of the local launcher (auto: one per core)
launcher: local           # or ray: each run a Ray task (docs/ray.md)
resources: {num_cpus: 1}  # what each run asks of Ray; an arm's own `resources` overrides it
base: {model: ..., data: ..., rewards: ..., training: ..., eval: ...}
arms:
  vanilla: {dither: off}
  redit-gaussian: {dither: {distribution: gaussian, ratio: 0.05}}
  redit-no-std: {dither: {sigma: 0.1}, training: {scale_rewards: none}}
  redit-8gpu: {dither: {sigma: 0.1}, resources: {num_gpus: 8}}   # one run on 8 GPUs (torchrun)
```

Arms share seeds pairwise: seed ``s`` sets ``training.seed`` (data order, sampling) and ``dither.seed`` in every arm,
and all arms start from the same (cached) warm-started model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from redit.config import ConfigError, RunConfig, apply_overrides, error_lines, load_yaml, parse_config
from redit.config_schema import STRICT
from redit.rundir import ExperimentDir


class Resources(BaseModel):
    """What one run of an arm needs: Ray schedules it on a node that has them; ``processes`` > 1 trains it under
    ``torchrun`` with that many processes (on either launcher)."""

    model_config = STRICT

    num_cpus: NonNegativeFloat = 1
    num_gpus: NonNegativeFloat | None = None  # None: one GPU per run on a cluster with GPUs, else none
    processes: PositiveInt | None = None  # None: one per GPU (at least one)

    @property
    def num_processes(self) -> int:
        return self.processes or max(1, int(self.num_gpus or 0))


@dataclass(frozen=True)
class RunRequest:
    """One cell of the matrix: an arm at a seed, with its fully merged raw config and a key for resumption (the
    resources it runs with are not part of the key: they change where it runs, not what it computes)."""

    arm: str
    seed: int
    raw: dict[str, Any]
    resources: Resources = field(default_factory=Resources)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def config(self) -> RunConfig:
        return parse_config(self.raw)


class ExperimentSpec(BaseModel):
    """A validated spec; ``seeds`` given as a count ``n`` means ``0..n-1``, ``workers: auto`` one run per core."""

    model_config = STRICT

    output_dir: Annotated[Path, Field(strict=False)] = Path("runs/compare")
    arms: Annotated[dict[str, dict[str, Any]], Field(min_length=1)]
    baseline: str = Field(default="vanilla", validate_default=True)
    seeds: Annotated[list[int], Field(min_length=1)] = [0, 1, 2]
    workers: PositiveInt = Field(default="auto", validate_default=True)
    launcher: Literal["local", "ray"] = "local"
    resources: Resources = Resources()
    base: dict[str, Any] = {}

    @field_validator("seeds", mode="before")
    @classmethod
    def _count(cls, seeds: Any) -> Any:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds <= 0:
                raise ValueError(f"a positive count or a list of distinct integers, got {seeds}")
            return list(range(seeds))
        if isinstance(seeds, list) and len(set(map(repr, seeds))) != len(seeds):
            raise ValueError(f"expected distinct integers, got {seeds}")
        return seeds

    @field_validator("workers", mode="before")
    @classmethod
    def _auto(cls, workers: Any) -> Any:
        return max(1, len(os.sched_getaffinity(0))) if workers == "auto" else workers

    @field_validator("arms", mode="before")
    @classmethod
    def _empty_arms(cls, arms: Any) -> Any:
        return {name: arm or {} for name, arm in arms.items()} if isinstance(arms, dict) else arms

    @field_validator("baseline")
    @classmethod
    def _baseline_is_an_arm(cls, baseline: str, info: ValidationInfo) -> str:
        arms = info.data.get("arms")
        if arms is not None and baseline not in arms:
            raise ValueError(f"{baseline!r} is not an arm; arms are {list(arms)}")
        return baseline

    def requests(self) -> list[RunRequest]:
        """Every (arm, seed) run, seeds outermost so partial results stay paired."""
        return [self._request(arm, seed) for seed in self.seeds for arm in self.arms]

    def arm_resources(self, arm: str) -> Resources:
        """The spec's ``resources`` with the arm's own ``resources`` merged in."""
        own, base = self.arms[arm].get("resources") or {}, self.resources.model_dump(exclude_unset=True)
        return Resources.model_validate(base | own if isinstance(own, dict) else own)

    def _request(self, arm: str, seed: int) -> RunRequest:
        raw = deep_merge(self.base, {k: v for k, v in self.arms[arm].items() if k != "resources"})
        raw["output_dir"] = str(ExperimentDir(self.output_dir).run(arm, seed).path)
        if raw.get("training") is None:
            raw["training"] = {}
        if isinstance(raw["training"], dict):
            raw["training"]["seed"] = seed
        if isinstance(raw.get("dither"), dict):
            raw["dither"]["seed"] = seed
        return RunRequest(arm, seed, raw, self.arm_resources(arm))


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
    launcher: str | None = None,
) -> ExperimentSpec:
    """Validate a spec mapping (flags override it) and the full run config of every arm, before anything runs."""
    flags = {"output_dir": output_dir, "seeds": seeds, "workers": workers, "baseline": baseline, "launcher": launcher}
    raw = copy.deepcopy(raw) | {key: value for key, value in flags.items() if value is not None}
    if max_steps is not None and isinstance(raw.get("base", {}), dict):
        base = raw.setdefault("base", {})
        base["training"] = (base.get("training") or {}) | {"max_steps": max_steps}
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(error_lines(error, ExperimentSpec, ("spec",))) from None
    _check_resources(spec)
    by_problem: dict[str, list[str]] = {}
    for request in spec.requests()[: len(spec.arms)]:
        try:
            request.config()
        except ConfigError as error:
            for line in error.lines:
                by_problem.setdefault(line, []).append(request.arm)
    if by_problem:
        raise ConfigError([f"{_arms(arms, spec)}: {line}" for line, arms in by_problem.items()])
    check_comparable(spec)
    return spec


def _check_resources(spec: ExperimentSpec) -> None:
    errors = []
    for arm, override in spec.arms.items():
        try:
            spec.arm_resources(arm)
        except ValidationError as error:
            prefix = ("spec", "arms", arm, "resources") if "resources" in override else ("spec", "resources")
            errors += [line for line in error_lines(error, Resources, prefix) if line not in errors]
    if errors:
        raise ConfigError(errors)


def _arms(arms: list[str], spec: ExperimentSpec) -> str:
    return "every arm" if len(arms) == len(spec.arms) > 1 else "arm " + ", ".join(f"'{arm}'" for arm in arms)


def check_comparable(spec: ExperimentSpec) -> None:
    """Every arm (after its overrides and the flags) evaluates held-out accuracy at its last step."""
    for arm, override in spec.arms.items():
        raw = deep_merge(spec.base, {k: v for k, v in override.items() if k != "resources"})
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
