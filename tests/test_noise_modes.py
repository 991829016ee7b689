"""Noise-scale modes and adaptive σ (beyond the paper): hand-made groups against direct computation."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from redit.advantages import CONVENTIONS, Groups, adaptive_sigma, grpo, mode_advantages
from redit.dither import Dither, DitherConfig
from redit.integrations.trl import ReditRewards

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


def correct(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [float(c == "ok") for c in completions]


def fmt(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [0.5 * len(c) for c in completions]


def bound(redit: ReditRewards, scale_rewards: str = "none", weights: list[float] | None = None) -> dict[str, float]:
    logs: dict[str, float] = {}
    args = SimpleNamespace(
        process_index=0,
        reward_weights=weights,
        num_generations=4,
        multi_objective_aggregation="sum_then_normalize",
        scale_rewards=scale_rewards,
        per_device_train_batch_size=12,
        steps_per_generation=1,
    )
    redit.callback.on_init_end(args, SimpleNamespace(global_step=0), None, model=SimpleNamespace(training=True))
    return logs


COMPLETIONS = ["ok"] * 4 + ["ok", "no", "no", "no"] + ["ok", "ok", "no", "no"]
PROMPTS = ["a"] * 4 + ["b"] * 4 + ["c"] * 4


@pytest.mark.parametrize("granularity", ["per_function", "total"])
@pytest.mark.parametrize("mode", ["std_floor", "flat_only"])
def test_trl_path_hands_trl_redit_advantages(mode: str, granularity: str) -> None:
    """TRL with scale_rewards='none' computes total - group mean; with the shaped outputs that is our advantage."""
    config = DitherConfig(sigma=0.05, mode=mode, std_floor=0.4, granularity=granularity)
    redit = ReditRewards([fmt, correct], config)
    weights = [0.5, 2.0]
    logs = bound(redit, weights=weights)
    kwargs = {"trainer_state": SimpleNamespace(global_step=5), "log_metric": logs.__setitem__}
    outs = [torch.tensor(fn(prompts=PROMPTS, completions=COMPLETIONS, **kwargs)) for fn in redit.reward_funcs]
    total = weights[0] * outs[0] + weights[1] * outs[1]
    trl_advantages = total - total.view(3, 4).mean(dim=1).repeat_interleave(4)
    clean_total = torch.tensor([weights[0] * 0.5 * len(c) + weights[1] * (c == "ok") for c in COMPLETIONS])
    if granularity == "per_function":
        noise = sum(w * Dither(config).noise(12, 5, (0, 0, i)) for i, w in enumerate(weights))
    else:
        noise = Dither(config).noise(12, 5, (0, 0, len(weights)))
    expected = mode_advantages(
        clean_total.double(), noise.double(), Groups.from_ids(PROMPTS, 12), TRL, config, redit.sigma_total(5)
    )
    torch.testing.assert_close(trl_advantages, expected.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0], torch.tensor([0.5 * len(c) for c in COMPLETIONS]))  # others stay clean
    assert logs["redit/reward_clean"] == pytest.approx(clean_total.mean().item())


def test_trl_path_adaptive_sigma_is_logged_within_bounds() -> None:
    adaptive = {"target": 0.1, "sigma_min": 0.01, "sigma_max": 0.3}
    redit = ReditRewards([correct], DitherConfig(sigma=0.05, mode="std_floor", adaptive=adaptive))
    logs = bound(redit)
    kwargs = {"trainer_state": SimpleNamespace(global_step=2), "log_metric": logs.__setitem__}
    redit.reward_funcs[0](prompts=PROMPTS, completions=COMPLETIONS, **kwargs)
    assert 0.01 <= logs["redit/sigma"] <= 0.3
    clean = torch.tensor([float(c == "ok") for c in COMPLETIONS], dtype=torch.float64)
    config = redit.dither.config
    assert logs["redit/sigma"] == pytest.approx(adaptive_sigma(clean, Groups.from_ids(PROMPTS, 12), TRL, config))


def test_trl_path_refuses_trl_settings_that_would_undo_the_mode() -> None:
    with pytest.raises(ValueError, match="set training.scale_rewards=none"):
        bound(ReditRewards([correct], DitherConfig(sigma=0.05, mode="std_floor")), scale_rewards="group")
    with pytest.raises(ValueError, match="last reward, whose weight is 0"):
        bound(ReditRewards([fmt, correct], DitherConfig(sigma=0.05, mode="flat_only")), weights=[1.0, 0.0])


def test_run_config_sets_and_checks_scale_rewards_for_modes(tmp_path: Any) -> None:
    from redit.config import load_config
    from redit.presets import TINY_TRAIN
    from redit.train import grpo_args

    base = [f"--output_dir={tmp_path}", "--dither.mode=std_floor"]
    with pytest.raises(ValueError, match="set training.scale_rewards=none"):
        load_config(None, base, default=TINY_TRAIN)  # the preset asks for group scaling
    config = load_config(None, [*base, "--training.scale_rewards=none"], default=TINY_TRAIN)
    assert grpo_args(config).scale_rewards == "none"
