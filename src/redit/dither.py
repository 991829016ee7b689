"""The dithering core: zero-mean reward noise with a scale, a schedule and a seed. Plain PyTorch, no trainer.

ReDit perturbs each discrete reward before GRPO's group normalisation: ``r̃ = r + ε``. Here ``ε`` is drawn from a
named distribution standardised to unit variance and multiplied by σ(t) = σ0 · schedule(t, T), where σ0 is either

* an absolute standard deviation (``sigma``), or
* the authors' ratio ``m`` relative to a reward's maximum ``R_max``: uniform noise on ``[-R_max·m, R_max·m]``,
  i.e. σ0 = R_max · m / √3, and every other distribution with that same variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from redit.rng import keyed_generator
from redit.schedules import Schedule, make_schedule

NoiseFn = Callable[[int, torch.Generator], torch.Tensor]
"""A user distribution: ``fn(n, generator)`` → ``n`` zero-mean, unit-variance samples."""

DISTRIBUTIONS = ("gaussian", "uniform", "laplace")
GRANULARITIES = ("per_function", "total")
MODES = ("faithful", "std_floor", "flat_only")
"""How noise meets GRPO's group normalisation (see :func:`redit.advantages.mode_advantages`)."""
Granularity = Literal["per_function", "total"]


def unit_noise(distribution: str | NoiseFn, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` float32 samples of a zero-mean, unit-variance distribution."""
    if callable(distribution):
        samples = torch.as_tensor(distribution(n, generator), dtype=torch.float32)
        if samples.shape != (n,):
            raise ValueError(f"dither.distribution callable returned shape {tuple(samples.shape)}, expected ({n},)")
        return samples
    if distribution == "gaussian":
        return torch.randn(n, generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if distribution == "uniform":
        return ((2.0 * u - 1.0) * math.sqrt(3.0)).float()
    if distribution == "laplace":  # inverse CDF with scale b = 1/√2 (variance 2b² = 1)
        centred = u - 0.5
        return (-torch.sign(centred) * torch.log1p(-2.0 * centred.abs()) / math.sqrt(2.0)).float()
    raise ValueError(f"dither.distribution: unknown '{distribution}'; choose one of {DISTRIBUTIONS} or a callable")


def ratio_to_sigma(ratio: float, r_max: float) -> float:
    """σ0 of the authors' ratio scaling: the std of ``U(-R_max·m, R_max·m)``."""
    return r_max * ratio / math.sqrt(3.0)


@dataclass
class DitherConfig:
    """What the noise does. Give exactly one of ``sigma`` (absolute std) or ``ratio`` (``m``, relative to R_max).

    ``granularity``: ``per_function`` draws one noise per completion for each reward function (the authors' code);
    ``total`` draws once per completion on the weighted total. ``max_steps`` is needed by schedules that look at
    the end of training (``linear``, ``cosine`` and every ``reverse_*``).

    ``mode`` (beyond the paper): ``faithful`` adds the noise before GRPO's normalisation, as the paper does;
    ``std_floor`` normalises each group by ``max(std, std_floor)``, so a noise-only group gets advantages of size
    ≈ σ/std_floor instead of 1; ``flat_only`` leaves groups with distinct clean rewards noise-free and gives groups
    whose clean rewards are all equal the advantages ``flat_scale · (ε - mean ε) / σ``. ``adaptive`` (``std_floor``
    only) sets σ each step from the batch: ``{target, sigma_min, sigma_max}``, see
    :func:`redit.advantages.adaptive_sigma`.
    """

    distribution: str | NoiseFn = "gaussian"
    sigma: float | None = None
    ratio: float | None = None
    schedule: str = "constant"
    schedule_params: dict[str, Any] = field(default_factory=dict)
    granularity: Granularity = "per_function"
    seed: int = 0
    max_steps: int | None = None
    mode: str = "faithful"
    std_floor: float = 0.5
    flat_scale: float = 0.1
    adaptive: dict[str, float] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending ``dither.*`` field."""
        if (self.sigma is None) == (self.ratio is None):
            raise ValueError("dither: give exactly one of dither.sigma (absolute std) or dither.ratio (m, × R_max)")
        for key in ("sigma", "ratio"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"dither.{key} must be a finite number >= 0, got {value!r}")
        if not callable(self.distribution) and self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"dither.distribution: unknown '{self.distribution}'; choose one of {', '.join(DISTRIBUTIONS)}"
            )
        if callable(self.distribution):
            _check_zero_mean(self.distribution)
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"dither.granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"dither.seed must be an integer, got {self.seed!r}")
        steps = self.max_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"dither.max_steps must be a positive integer, got {steps!r}")
        self._validate_mode()
        if not isinstance(self.schedule_params, Mapping):
            raise ValueError(f"dither.schedule_params must be a mapping, got {self.schedule_params!r}")
        schedule = self.make_schedule()
        if schedule.needs_max_steps and not self.max_steps:
            raise ValueError(
                f"dither.schedule '{self.schedule}' needs the run length: set training.max_steps (or dither.max_steps)"
            )

    def _validate_mode(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"dither.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for key in ("std_floor", "flat_scale"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"dither.{key} must be a finite number > 0, got {value!r}")
        if self.adaptive is None:
            return
        if self.mode != "std_floor":
            raise ValueError(
                "dither.adaptive needs dither.mode=std_floor (elsewhere σ does not set the noise's weight)"
            )
        allowed = {"target", "sigma_min", "sigma_max"}
        if not isinstance(self.adaptive, dict) or set(self.adaptive) != allowed:
            raise ValueError(f"dither.adaptive must give exactly {sorted(allowed)}, got {self.adaptive!r}")
        low, high, target = (self.adaptive[k] for k in ("sigma_min", "sigma_max", "target"))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high, target)):
            raise ValueError(f"dither.adaptive values must be finite numbers, got {self.adaptive!r}")
        if not 0 <= low <= high or target <= 0:
            raise ValueError(f"dither.adaptive needs 0 <= sigma_min <= sigma_max and target > 0, got {self.adaptive!r}")

    @property
    def shapes_advantages(self) -> bool:
        """Whether redit computes GRPO's normalisation itself (every mode but ``faithful``)."""
        return self.mode != "faithful"

    def make_schedule(self) -> Schedule:
        return make_schedule(self.schedule, **dict(self.schedule_params))

    def base_sigma(self, r_max: float | None = None) -> float:
        """σ0 for one reward (``r_max`` is that reward's maximum; needed only for ratio scaling)."""
        if self.sigma is not None:
            return float(self.sigma)
        if r_max is None:
            raise ValueError(
                "dither.ratio scales noise by each reward's maximum R_max, but this reward declares none: give the "
                "function a `max_reward` attribute (or list it under rewards[].max_reward), or use dither.sigma"
            )
        return ratio_to_sigma(float(self.ratio), float(r_max))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DitherConfig:
        """Build from a config section, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"dither: unknown key(s) {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**values)


def _check_zero_mean(fn: NoiseFn, n: int = 20_000) -> None:
    samples = torch.as_tensor(fn(n, keyed_generator(0, 0)), dtype=torch.float64)
    mean, std = samples.mean().item(), samples.std().item()
    if abs(mean) > 6.0 * max(std, 1e-12) / math.sqrt(n) + 1e-9:
        raise ValueError(f"dither.distribution callable must be zero-mean; its sample mean is {mean:.4g}")


class Dither:
    """Draws reward noise: ``noise(n, step, key, r_max)`` is reproducible from the seed, the step and the key."""

    def __init__(self, config: DitherConfig):
        self.config = config
        self.schedule = config.make_schedule()

    def sigma(self, step: int, r_max: float | None = None) -> float:
        """σ(t) = σ0 · schedule(t, T) for a reward with maximum ``r_max``."""
        return self.config.base_sigma(r_max) * self.schedule(step, self.config.max_steps)

    def noise(self, n: int, step: int, key: tuple[int, ...] = (), r_max: float | None = None) -> torch.Tensor:
        """``n`` noise values for ``step``; ``key`` separates draws within a step (call, rank, function, ...)."""
        return self.sigma(step, r_max) * self.unit(n, step, key)

    def unit(self, n: int, step: int, key: tuple[int, ...] = ()) -> torch.Tensor:
        """The unit-variance draws behind :meth:`noise` (for callers that set σ themselves)."""
        return unit_noise(self.config.distribution, n, keyed_generator(self.config.seed, step, *key))
