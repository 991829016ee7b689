"""σ schedules: each gives the noise scale at step ``t`` of ``T`` as a multiple of the base scale σ0.

The authors' ReDit code used four schedules and the "reverse" of each (evaluated at ``T - t``):

* ``sqrt``:        σ0 · (t / period + 1)^(-1/2), period 300
* ``exponential``: max(σ_min, σ0 · factor^t), with σ_min = σ0 · min_ratio
* ``multistep``:   σ0 · factor^(number of milestones ≤ t)
* ``cosine``:      linear warm-up 0 → σ0 over ``warmup_steps``, then cosine σ0 → σ_f = σ0 · final_ratio over the
  horizon ``max_update`` (default: the run's ``max_steps``), σ_f after it

plus ``constant`` and ``linear`` (σ0 → σ0 · final_ratio). Schedules return the *multiplier*, so one schedule serves
reward functions of different scales (the ratio parametrisation gives each function its own σ0).

Defaults are the authors' (factor 0.99, period 300, milestones 2000/4000/6000/8000, factor 0.5): their floors
σ_min = σ_f = 1e-3 at base m = 0.1 are ``min_ratio`` = ``final_ratio`` = 0.01 (1e-3 / m; set 1e-3 / m for another
base m). Their active run was ``reverse_cosine`` with ``max_update: 8000`` over 1000 steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

AUTHORS_FLOOR = 0.01
"""The authors' floor σ_min = σ_f = 1e-3 relative to their base noise m = 0.1."""


class Schedule:
    """Base class: ``schedule(step, max_steps)`` → multiplier of σ0 (≥ 0)."""

    name: ClassVar[str]
    needs_max_steps: ClassVar[bool] = False

    def __call__(self, step: int, max_steps: int | None = None) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.needs_max_steps:
            if max_steps is None or max_steps <= 0:
                raise ValueError(f"schedule '{self.name}' needs max_steps (training.max_steps) > 0, got {max_steps}")
            step = min(step, max_steps)
        return self.multiplier(step, max_steps)

    def multiplier(self, step: int, max_steps: int | None) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    name: ClassVar[str] = "constant"

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return 1.0


@dataclass(frozen=True)
class Linear(Schedule):
    final_ratio: float = 0.0
    name: ClassVar[str] = "linear"
    needs_max_steps: ClassVar[bool] = True

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return 1.0 - (1.0 - self.final_ratio) * step / max_steps


@dataclass(frozen=True)
class SquareRoot(Schedule):
    period: float = 300.0
    name: ClassVar[str] = "sqrt"

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return (step / self.period + 1.0) ** -0.5


@dataclass(frozen=True)
class Exponential(Schedule):
    factor: float = 0.99
    min_ratio: float = AUTHORS_FLOOR
    name: ClassVar[str] = "exponential"

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return max(self.min_ratio, self.factor**step)


@dataclass(frozen=True)
class MultiStep(Schedule):
    milestones: tuple[int, ...] = (2000, 4000, 6000, 8000)
    factor: float = 0.5
    name: ClassVar[str] = "multistep"

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return self.factor ** sum(1 for m in self.milestones if m <= step)


@dataclass(frozen=True)
class Cosine(Schedule):
    final_ratio: float = AUTHORS_FLOOR
    warmup_steps: int = 0
    max_update: int | None = None
    name: ClassVar[str] = "cosine"

    @property
    def needs_max_steps(self) -> bool:  # type: ignore[override]
        return self.max_update is None

    def multiplier(self, step: int, max_steps: int | None) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        horizon = max_steps if self.max_update is None else self.max_update
        if step > horizon:
            return self.final_ratio
        progress = (step - self.warmup_steps) / max(1, horizon - self.warmup_steps)
        return self.final_ratio + (1.0 - self.final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Reversed(Schedule):
    """The inner schedule played backwards: its value at ``T - t``."""

    inner: Schedule = field(default_factory=Constant)
    needs_max_steps: ClassVar[bool] = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"reverse_{self.inner.name}"

    def multiplier(self, step: int, max_steps: int | None) -> float:
        return self.inner(max_steps - step, max_steps)


_BASE: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Linear, SquareRoot, Exponential, MultiStep, Cosine)
}
_REVERSIBLE = ("sqrt", "exponential", "multistep", "cosine")
SCHEDULE_NAMES: tuple[str, ...] = (*_BASE, *(f"reverse_{n}" for n in _REVERSIBLE))


def make_schedule(name: str, **params: Any) -> Schedule:
    """Build a schedule by name; unknown names or parameters raise a ``ValueError`` that lists the valid ones."""
    reverse = name.startswith("reverse_")
    base = name.removeprefix("reverse_")
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"dither.schedule: unknown schedule '{name}'; choose one of {', '.join(SCHEDULE_NAMES)}")
    cls = _BASE[base]
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"dither.schedule_params: unknown parameter(s) {sorted(unknown)} for schedule '{name}'; "
            f"allowed: {sorted(allowed) or 'none'}"
        )
    if "milestones" in params:
        params["milestones"] = tuple(int(m) for m in params["milestones"])
    schedule = cls(**params)
    _check_params(schedule, name)
    return Reversed(schedule) if reverse else schedule


def _check_params(schedule: Schedule, name: str) -> None:
    if isinstance(schedule, Cosine) and schedule.max_update is not None:
        horizon = schedule.max_update
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= schedule.warmup_steps:
            raise ValueError(
                f"dither.schedule_params.max_update (the cosine horizon) must be an integer > warmup_steps "
                f"({schedule.warmup_steps}), got {horizon!r}"
            )
    for key, value in dataclasses.asdict(schedule).items():
        if value is None:
            continue
        values = value if isinstance(value, tuple) else (value,)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"dither.schedule_params.{key} for '{name}' must be finite and >= 0, got {value}")
    if isinstance(schedule, SquareRoot) and schedule.period <= 0:
        raise ValueError(f"dither.schedule_params.period must be > 0, got {schedule.period}")
    if isinstance(schedule, Exponential) and schedule.factor > 1:
        raise ValueError(f"dither.schedule_params.factor must be in [0, 1] for a decay, got {schedule.factor}")
