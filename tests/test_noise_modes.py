"""Noise-scale modes and adaptive σ (beyond the paper): hand-made groups against direct computation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from redit.advantages import CONVENTIONS, Groups, adaptive_sigma, grpo, mode_advantages
from redit.dither import Dither, DitherConfig

TRL = CONVENTIONS["trl"]
# three groups of 4: all-equal (noise only), one correct, two correct
CLEAN = torch.tensor([1.0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0], dtype=torch.float64)
IDS = [0] * 4 + [1] * 4 + [2] * 4
NOISE = torch.tensor([0.05, -0.02, 0.01, -0.04, 0.03, -0.01, 0.02, 0.0, -0.03, 0.01, 0.02, -0.05], dtype=torch.float64)


def by_hand(values: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """GRPO per group of 4: (v - mean) / (max(unbiased std, floor) + 1e-4)."""
    out = []
    for g in range(3):
        v = values[4 * g : 4 * g + 4].tolist()
        mean = sum(v) / 4
        std = math.sqrt(sum((x - mean) ** 2 for x in v) / 3)
        out += [(x - mean) / (max(std, floor) + 1e-4) for x in v]
    return torch.tensor(out, dtype=torch.float64)


def modes(mode: str, **kwargs: Any) -> DitherConfig:
    return DitherConfig(sigma=0.03, mode=mode, **kwargs)


def test_faithful_is_grpo_on_noisy_rewards() -> None:
    got = mode_advantages(CLEAN, NOISE, Groups.from_ids(IDS, 12), TRL, modes("faithful"), 0.03)
    torch.testing.assert_close(got, by_hand(CLEAN + NOISE))
    # the noise-only group gets unit-size advantages although sigma is tiny
    assert got[:4].std().item() == pytest.approx(1.0, abs=1e-2)


def test_std_floor_shrinks_noise_only_groups_and_keeps_mixed_ones() -> None:
    got = mode_advantages(CLEAN, NOISE, Groups.from_ids(IDS, 12), TRL, modes("std_floor", std_floor=0.4), 0.03)
    torch.testing.assert_close(got, by_hand(CLEAN + NOISE, floor=0.4))
    noise_only = NOISE[:4] - NOISE[:4].mean()
    torch.testing.assert_close(got[:4], noise_only / (0.4 + 1e-4))
    torch.testing.assert_close(got[4:], by_hand(CLEAN + NOISE)[4:])  # mixed stds (0.5, 0.58) exceed the floor


def test_flat_only_noise_only_in_flat_groups_with_bounded_scale() -> None:
    config = modes("flat_only", flat_scale=0.2)
    got = mode_advantages(CLEAN, NOISE, Groups.from_ids(IDS, 12), TRL, config, 0.03)
    torch.testing.assert_close(got[:4], 0.2 * (NOISE[:4] - NOISE[:4].mean()) / 0.03)
    torch.testing.assert_close(got[4:], by_hand(CLEAN)[4:])  # clean GRPO, no noise at all


def test_flat_only_expected_advantage_is_zero_and_variance_as_stated() -> None:
    """Over many draws: noise-only groups have mean 0 and variance flat_scale² (1 - 1/G)."""
    dither = Dither(modes("flat_only", flat_scale=0.2))
    flat = torch.zeros(4 * 2000, dtype=torch.float64)
    ids = torch.arange(2000).repeat_interleave(4)
    out = grpo(flat, ids, dither=dither, step=3).advantages.double()
    assert abs(out.mean().item()) < 5 * 0.2 / math.sqrt(out.numel())
    assert out.var().item() == pytest.approx(0.04 * 0.75, rel=0.05)


def test_adaptive_sigma_formula_bounds_and_reproducibility() -> None:
    config = modes("std_floor", std_floor=0.5, adaptive={"target": 0.25, "sigma_min": 0.0, "sigma_max": 1.0})
    groups = Groups.from_ids(IDS, 12)
    signal = (by_hand(CLEAN, floor=0.5)[4:] ** 2).sum().item()
    expected = 0.5 * math.sqrt(0.25 * signal / (4 * 0.75))
    assert adaptive_sigma(CLEAN, groups, TRL, config) == pytest.approx(expected)
    assert adaptive_sigma(CLEAN, groups, TRL, config) == adaptive_sigma(CLEAN.clone(), groups, TRL, config)
    tight = modes("std_floor", std_floor=0.5, adaptive={"target": 0.25, "sigma_min": 0.0, "sigma_max": 0.1})
    assert adaptive_sigma(CLEAN, groups, TRL, tight) == 0.1
    all_flat, none_flat = torch.zeros(12, dtype=torch.float64), torch.tensor([1.0, 0, 0, 0] * 3, dtype=torch.float64)
    assert adaptive_sigma(all_flat, groups, TRL, config) == 1.0
    assert adaptive_sigma(none_flat, groups, TRL, config) == 0.0
    out_a = grpo(CLEAN, IDS, dither=Dither(config), step=7)
    out_b = grpo(CLEAN, IDS, dither=Dither(config), step=7)
    torch.testing.assert_close(out_a.advantages, out_b.advantages)
    assert out_a.stats["sigma"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "loud"}, "dither.mode"),
        ({"mode": "std_floor", "std_floor": 0}, "dither.std_floor"),
        ({"mode": "flat_only", "flat_scale": -1}, "dither.flat_scale"),
        ({"adaptive": {"target": 1, "sigma_min": 0, "sigma_max": 1}}, "needs dither.mode=std_floor"),
        ({"mode": "std_floor", "adaptive": {"target": 1, "sigma_min": 2, "sigma_max": 1}}, "sigma_min <= sigma_max"),
        ({"mode": "std_floor", "adaptive": {"target": 1}}, "dither.adaptive must give"),
    ],
)
def test_bad_mode_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DitherConfig(sigma=0.1, **kwargs)
