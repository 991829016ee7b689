"""Framework-agnostic outcome advantages over a flat reward vector, each optionally dithered (ReDit).

Every estimator takes ``rewards`` (one scalar per completion) and ``group_ids`` (one id per completion: ints, strings,
any hashable; groups may have any size and need not be contiguous). With a :class:`~redit.dither.Dither` it first
adds ``ε ~ dither.noise(n, step, key, r_max)`` to every reward, then computes the advantage of the noisy rewards.

A :class:`Convention` fixes the details that differ between frameworks (``"trl"``: ε = 1e-4; ``"verl"``: ε = 1e-6
and a lone completion keeps its raw reward); both use the Bessel-corrected (unbiased) group std.
Arithmetic is float64 internally; advantages come back in the dtype of ``rewards``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from redit.dither import Dither, DitherConfig

Scale = Literal["group", "batch", "none"]
SCALES = ("group", "batch", "none")
GroupIds = torch.Tensor | Sequence[Hashable]
WHITEN_EPSILON = 1e-8
"""Added to the batch variance before whitening (verl's ``masked_whiten``)."""


@dataclass(frozen=True)
class Convention:
    """A framework's normalisation details.

    ``singleton_baseline``: the baseline of a completion alone in its group. ``"self"`` (TRL: no comparison, so
    advantage 0); ``"zero"`` (verl: baseline 0 and std 1, so the raw reward passes through).
    """

    epsilon: float
    unbiased_std: bool = True
    singleton_baseline: Literal["self", "zero"] = "self"


CONVENTIONS: dict[str, Convention] = {
    "trl": Convention(epsilon=1e-4),
    "verl": Convention(epsilon=1e-6, singleton_baseline="zero"),
}


@dataclass(frozen=True)
class AdvantageOutput:
    """Advantages (one per completion), the rewards they were computed from (clean + noise), and log statistics.

    ``stats``: ``zero_std_frac`` (fraction of completions whose group's *clean* rewards are all equal), ``sigma``
    (the σ(t) applied; 0 without dither) and ``noise_std`` (the realised sample std of the noise).
    """

    advantages: torch.Tensor
    rewards: torch.Tensor
    stats: dict[str, float]


@dataclass(frozen=True)
class Groups:
    """Group membership: ``inverse[i]`` is the group of completion ``i``; ``counts[g]`` the size of group ``g``."""

    inverse: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def from_ids(cls, group_ids: GroupIds, n: int) -> Groups:
        if group_ids is None:
            raise ValueError("group_ids is required: one group id (e.g. the prompt's uid) per completion")
        if isinstance(group_ids, torch.Tensor):
            _, inverse = torch.unique(group_ids.detach().flatten().cpu(), return_inverse=True)
        else:
            index: dict[Hashable, int] = {}
            inverse = torch.tensor([index.setdefault(g, len(index)) for g in group_ids], dtype=torch.long)
        if inverse.numel() != n:
            raise ValueError(f"group_ids has {inverse.numel()} entries but rewards has {n}; give one id per reward")
        return cls(inverse=inverse, counts=torch.bincount(inverse))

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(self.counts), dtype=values.dtype).index_add_(0, self.inverse, values)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        return self.sum(values) / self.counts

    def std(self, values: torch.Tensor, unbiased: bool) -> torch.Tensor:
        """Per-group std; 0 for a group too small to have one."""
        squares = self.sum((values - self.mean(values)[self.inverse]) ** 2)
        dof = self.counts - int(unbiased)
        return torch.where(dof > 0, squares / dof.clamp(min=1), torch.zeros_like(squares)).sqrt()

    def all_equal(self, values: torch.Tensor) -> torch.Tensor:
        """Per completion: whether every reward in its group is the same."""
        size = len(self.counts)
        high = torch.full((size,), -math.inf, dtype=values.dtype).scatter_reduce_(0, self.inverse, values, "amax")
        low = torch.full((size,), math.inf, dtype=values.dtype).scatter_reduce_(0, self.inverse, values, "amin")
        return (high == low)[self.inverse]


def group_baseline(rewards: torch.Tensor, groups: Groups, convention: Convention) -> torch.Tensor:
    """Per completion: its group's mean reward (a lone completion's baseline follows the convention)."""
    baseline = groups.mean(rewards)[groups.inverse]
    alone = groups.counts[groups.inverse] == 1
    lone_baseline = rewards if convention.singleton_baseline == "self" else torch.zeros_like(rewards)
    return torch.where(alone, lone_baseline, baseline)


def normalize(
    centred: torch.Tensor,
    rewards: torch.Tensor,
    groups: Groups,
    *,
    scale: Scale,
    epsilon: float,
    unbiased_std: bool,
    singleton_std: float = 0.0,
    std_floor: float = 0.0,
) -> torch.Tensor:
    """GRPO's scaling: ``centred / (std + epsilon)`` with the std of each group (``"group"``), of the whole batch
    (``"batch"``), or no scaling (``"none"``). ``singleton_std`` stands in for a lone completion's group std;
    a group std below ``std_floor`` is raised to it."""
    if scale == "none":
        return centred
    if scale == "group":
        std = groups.std(rewards, unbiased_std)[groups.inverse]
        std = torch.where(groups.counts[groups.inverse] == 1, torch.full_like(std, singleton_std), std)
        std = std.clamp(min=std_floor)
    elif scale == "batch":
        std = rewards.std(correction=int(unbiased_std)) if rewards.numel() > 1 else rewards.new_zeros(())
        std = std.expand_as(rewards)
    else:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return centred / (std + epsilon)


def grpo(
    rewards: torch.Tensor,
    group_ids: GroupIds,
    *,
    convention: str | Convention = "trl",
    scale: Scale = "group",
    dither: Dither | None = None,
    step: int = 0,
    key: tuple[int, ...] = (),
    r_max: float | None = None,
) -> AdvantageOutput:
    """GRPO: ``(r - group mean) / (std + ε)``; ``scale`` picks the std (``"none"`` is Dr. GRPO).

    With a dither whose ``mode`` is not ``faithful``, the mode sets how noise meets the group normalisation
    (:func:`mode_advantages`; group scaling only)."""
    batch = _prepare(rewards, group_ids, convention, dither, step, key, r_max)
    conv = batch.convention
    if dither is not None and dither.config.shapes_advantages:
        if scale != "group":
            raise ValueError(f"dither.mode={dither.config.mode} replaces group scaling; it needs scale='group'")
        return batch.output(
            mode_advantages(
                batch.clean, batch.noisy - batch.clean, batch.groups, conv, dither.config, batch.stats["sigma"]
            )
        )
    centred = batch.noisy - group_baseline(batch.noisy, batch.groups, conv)
    return batch.output(
        normalize(
            centred,
            batch.noisy,
            batch.groups,
            scale=scale,
            epsilon=conv.epsilon,
            unbiased_std=conv.unbiased_std,
            singleton_std=_singleton_std(conv),
        )
    )


def _faithful_only(dither: Dither | None, estimator: str) -> None:
    if dither is not None and dither.config.shapes_advantages:
        raise ValueError(
            f"dither.mode={dither.config.mode} applies to GRPO's group normalisation; {estimator} "
            "takes dither.mode=faithful"
        )


def _singleton_std(convention: Convention) -> float:
    return 1.0 if convention.singleton_baseline == "zero" else 0.0


def mode_advantages(
    clean: torch.Tensor, noise: torch.Tensor, groups: Groups, convention: Convention, config: DitherConfig, sigma: float
) -> torch.Tensor:
    """Group-normalised advantages under a noise mode. With ``d`` the group std, ``G`` the group size, for a
    noise-only group (clean rewards all equal) and a mixed one:

    * ``faithful``: ``(r̃ - mean) / (std(r̃) + ε)``. Noise-only group: pure-noise advantages of unit variance
      whatever σ, zero expected gradient but full-size variance. Mixed: the noise inflates the std, shrinking the
      signal by ≈ d / √(d² + σ²) (unbiased only before the std division).
    * ``std_floor``: ``(r̃ - mean) / (max(std(r̃), floor) + ε)``. Noise-only group: zero mean, variance
      ≈ σ² (1 - 1/G) / floor² while σ < floor. Mixed groups with std ≥ floor: as ``faithful``.
    * ``flat_only``: mixed groups get the clean GRPO advantage (no noise, no bias); noise-only groups get
      ``flat_scale · (ε - mean ε) / σ``: zero mean, variance flat_scale² (1 - 1/G), independent of σ.
    """
    noisy = clean + noise
    if config.mode == "flat_only":
        clean_adv = normalize(
            clean - group_baseline(clean, groups, convention),
            clean,
            groups,
            scale="group",
            epsilon=convention.epsilon,
            unbiased_std=convention.unbiased_std,
            singleton_std=_singleton_std(convention),
        )
        flat_adv = config.flat_scale * (noise - groups.mean(noise)[groups.inverse]) / max(sigma, 1e-12)
        return torch.where(groups.all_equal(clean), flat_adv, clean_adv)
    floor = config.std_floor if config.mode == "std_floor" else 0.0
    return normalize(
        noisy - group_baseline(noisy, groups, convention),
        noisy,
        groups,
        scale="group",
        epsilon=convention.epsilon,
        unbiased_std=convention.unbiased_std,
        singleton_std=_singleton_std(convention),
        std_floor=floor,
    )


def adaptive_sigma(clean: torch.Tensor, groups: Groups, convention: Convention, config: DitherConfig) -> float:
    """σ for this batch (``std_floor`` mode): the σ at which the noise-only groups' expected advantage energy is
    ``target`` times the mixed groups' clean advantage energy, ``σ² = target · floor² · S / F`` with
    ``S = Σ_mixed A²`` and ``F = Σ_noise-only (1 - 1/G)``, clipped to ``[sigma_min, sigma_max]``
    (``sigma_max`` when every group is flat, ``sigma_min`` when none is). A pure function of the clean rewards,
    so reproducible from the seed."""
    bounds = config.adaptive
    flat = groups.all_equal(clean)
    if not flat.any():
        return float(bounds["sigma_min"])
    if flat.all():
        return float(bounds["sigma_max"])
    clean_adv = normalize(
        clean - group_baseline(clean, groups, convention),
        clean,
        groups,
        scale="group",
        epsilon=convention.epsilon,
        unbiased_std=convention.unbiased_std,
        singleton_std=_singleton_std(convention),
        std_floor=config.std_floor,
    )
    signal = (clean_adv[~flat] ** 2).sum().item()
    sizes = groups.counts[groups.inverse].to(clean.dtype)
    flat_weight = (1.0 - 1.0 / sizes[flat]).sum().item()
    sigma = config.std_floor * math.sqrt(bounds["target"] * signal / max(flat_weight, 1e-12))
    return float(min(max(sigma, bounds["sigma_min"]), bounds["sigma_max"]))


def dr_grpo(
    rewards: torch.Tensor,
    group_ids: GroupIds,
    *,
    convention: str | Convention = "trl",
    dither: Dither | None = None,
    step: int = 0,
    key: tuple[int, ...] = (),
    r_max: float | None = None,
) -> AdvantageOutput:
    """Dr. GRPO: ``r - group mean``, no std scaling (GRPO with ``scale="none"``)."""
    return grpo(rewards, group_ids, convention=convention, scale="none", dither=dither, step=step, key=key, r_max=r_max)


def rloo(
    rewards: torch.Tensor,
    group_ids: GroupIds,
    *,
    convention: str | Convention = "trl",
    dither: Dither | None = None,
    step: int = 0,
    key: tuple[int, ...] = (),
    r_max: float | None = None,
) -> AdvantageOutput:
    """RLOO: ``r_i - mean of the other rewards in the group`` = ``k/(k-1) · (r_i - group mean)``."""
    _faithful_only(dither, "rloo")
    batch = _prepare(rewards, group_ids, convention, dither, step, key, r_max)
    groups, noisy = batch.groups, batch.noisy
    k = groups.counts[groups.inverse].to(noisy.dtype)
    leave_one_out = (k / (k - 1).clamp(min=1)) * (noisy - groups.mean(noisy)[groups.inverse])
    return batch.output(torch.where(k > 1, leave_one_out, noisy - group_baseline(noisy, groups, batch.convention)))


def reinforce_pp_baseline(
    rewards: torch.Tensor,
    group_ids: GroupIds,
    *,
    convention: str | Convention = "trl",
    weights: torch.Tensor | None = None,
    dither: Dither | None = None,
    step: int = 0,
    key: tuple[int, ...] = (),
    r_max: float | None = None,
) -> AdvantageOutput:
    """REINFORCE++-baseline: ``r - group mean``, then whitened over the batch with the unbiased variance and
    ``WHITEN_EPSILON``. ``weights`` (e.g. response lengths) weight each completion in the batch statistics, as
    verl does by whitening over tokens."""
    _faithful_only(dither, "reinforce_pp_baseline")
    batch = _prepare(rewards, group_ids, convention, dither, step, key, r_max)
    centred = batch.noisy - group_baseline(batch.noisy, batch.groups, batch.convention)
    w = torch.ones_like(centred) if weights is None else torch.as_tensor(weights).to("cpu", torch.float64).flatten()
    if w.shape != centred.shape:
        raise ValueError(f"weights has {w.numel()} entries but rewards has {centred.numel()}")
    total = w.sum()
    if total <= 1:
        raise ValueError("reinforce_pp_baseline whitens over the batch: it needs a total weight > 1")
    mean = (w * centred).sum() / total
    variance = (w * (centred - mean) ** 2).sum() / (total - 1)
    return batch.output((centred - mean) * torch.rsqrt(variance + WHITEN_EPSILON))


@dataclass(frozen=True)
class _Batch:
    """Validated inputs: the convention, the groups, the noisy rewards (float64), and where the output goes."""

    convention: Convention
    groups: Groups
    clean: torch.Tensor
    noisy: torch.Tensor
    stats: dict[str, float]
    dtype: torch.dtype
    device: torch.device

    def output(self, advantages: torch.Tensor) -> AdvantageOutput:
        to = {"dtype": self.dtype, "device": self.device}
        return AdvantageOutput(advantages.to(**to), self.noisy.to(**to), self.stats)


def _prepare(
    rewards: torch.Tensor,
    group_ids: GroupIds,
    convention: str | Convention,
    dither: Dither | None,
    step: int,
    key: tuple[int, ...],
    r_max: float | None,
) -> _Batch:
    """Validate and group the rewards, and add the noise."""
    rewards = torch.as_tensor(rewards)
    clean = rewards.detach().to(dtype=torch.float64, device="cpu")
    if clean.dim() != 1:
        raise ValueError(f"rewards must be a flat vector (one scalar per completion), got shape {tuple(clean.shape)}")
    if not torch.isfinite(clean).all():
        raise ValueError("rewards must be finite; drop or score unscorable completions before computing advantages")
    groups = Groups.from_ids(group_ids, clean.numel())
    conv = _convention(convention)
    sigma, noise = 0.0, torch.zeros_like(clean)
    if dither is not None:
        adaptive = dither.config.adaptive is not None
        sigma = adaptive_sigma(clean, groups, conv, dither.config) if adaptive else dither.sigma(step, r_max)
        noise = sigma * dither.unit(clean.numel(), step, key).to(torch.float64)
    stats = {
        "zero_std_frac": groups.all_equal(clean).double().mean().item() if clean.numel() else 0.0,
        "sigma": float(sigma),
        "noise_std": noise.std().item() if noise.numel() > 1 else 0.0,
    }
    dtype = rewards.dtype if rewards.is_floating_point() else torch.get_default_dtype()
    return _Batch(conv, groups, clean, clean + noise, stats, dtype, rewards.device)


def _convention(convention: str | Convention) -> Convention:
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)} or a Convention, got {convention!r}")
    return CONVENTIONS[convention]
