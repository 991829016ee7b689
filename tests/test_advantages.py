"""redit.advantages against hand computations, TRL's GRPO lines, and verl's own estimators."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from redit import advantages as adv
from redit.dither import Dither, DitherConfig

# Non-contiguous groups of sizes 3, 4, 1, 2 and 2 (group "e" is all-equal, "c" is alone).
REWARDS = [1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.25, 1.0, 0.0, 0.75, 0.5, 0.5]
GROUPS = ["a", "b", "a", "c", "b", "a", "b", "d", "b", "d", "e", "e"]


def dither(sigma: float = 0.1, **kwargs) -> Dither:
    return Dither(DitherConfig(sigma=sigma, granularity="total", **kwargs))


def by_group(rewards: list[float], groups: list[str]) -> dict[str, list[float]]:
    members: dict[str, list[float]] = {}
    for r, g in zip(rewards, groups):
        members.setdefault(g, []).append(r)
    return members


def hand_grpo(rewards, groups, epsilon, lone):
    """Per completion: (r - group mean) / (sample std + ε); a lone completion gets ``lone(r)``."""
    members = by_group(rewards, groups)
    out = []
    for r, g in zip(rewards, groups):
        m = members[g]
        out.append(lone(r) if len(m) == 1 else (r - statistics.mean(m)) / (statistics.stdev(m) + epsilon))
    return out


@pytest.mark.parametrize(
    ("convention", "epsilon", "lone"),
    [("trl", 1e-4, lambda r: 0.0), ("verl", 1e-6, lambda r: r / (1 + 1e-6))],
)
def test_grpo_matches_hand_computation(convention, epsilon, lone):
    out = adv.grpo(torch.tensor(REWARDS), GROUPS, convention=convention)
    assert out.advantages.tolist() == pytest.approx(hand_grpo(REWARDS, GROUPS, epsilon, lone), abs=1e-6)


def test_batch_scale_uses_group_mean_and_batch_std():
    members = by_group(REWARDS, GROUPS)
    std = statistics.stdev(REWARDS)
    expected = [
        0.0 if len(members[g]) == 1 else (r - statistics.mean(members[g])) / (std + 1e-4)
        for r, g in zip(REWARDS, GROUPS)
    ]
    out = adv.grpo(torch.tensor(REWARDS), GROUPS, scale="batch")
    assert out.advantages.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("convention", ["trl", "verl"])
def test_dr_grpo_and_rloo_match_hand_computation(convention):
    members = by_group(REWARDS, GROUPS)
    lone = (lambda r: 0.0) if convention == "trl" else (lambda r: r)
    dr, loo = [], []
    for i, (r, g) in enumerate(zip(REWARDS, GROUPS)):
        m = members[g]
        others = [REWARDS[j] for j in range(len(REWARDS)) if GROUPS[j] == g and j != i]
        dr.append(lone(r) if len(m) == 1 else r - statistics.mean(m))
        loo.append(lone(r) if not others else r - statistics.mean(others))
    rewards = torch.tensor(REWARDS)
    assert adv.dr_grpo(rewards, GROUPS, convention=convention).advantages.tolist() == pytest.approx(dr, abs=1e-6)
    assert adv.rloo(rewards, GROUPS, convention=convention).advantages.tolist() == pytest.approx(loo, abs=1e-6)


def test_reinforce_pp_baseline_matches_hand_computation():
    weights = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]
    members = by_group(REWARDS, GROUPS)
    centred = [r - statistics.mean(members[g]) if len(members[g]) > 1 else r for r, g in zip(REWARDS, GROUPS)]
    tokens = [c for c, w in zip(centred, weights) for _ in range(w)]  # whitening over tokens, as verl does
    mean, var = statistics.mean(tokens), statistics.variance(tokens)
    expected = [(c - mean) / math.sqrt(var + adv.WHITEN_EPSILON) for c in centred]
    out = adv.reinforce_pp_baseline(torch.tensor(REWARDS), GROUPS, convention="verl", weights=torch.tensor(weights))
    assert out.advantages.tolist() == pytest.approx(expected, abs=1e-6)
    unweighted = adv.reinforce_pp_baseline(torch.tensor(REWARDS), GROUPS, convention="verl").advantages
    mean, std = statistics.mean(centred), statistics.stdev(centred)
    assert unweighted.tolist() == pytest.approx([(c - mean) / std for c in centred], abs=1e-6)


def test_group_ids_may_be_tensors_or_arrays():
    ids = {g: i for i, g in enumerate(sorted(set(GROUPS)))}
    as_int = [ids[g] for g in GROUPS]
    reference = adv.grpo(torch.tensor(REWARDS), GROUPS).advantages
    for group_ids in (torch.tensor(as_int), np.array(GROUPS, dtype=object), as_int):
        assert torch.equal(adv.grpo(torch.tensor(REWARDS), group_ids).advantages, reference)


def test_dtype_device_and_statistics():
    out = adv.grpo(torch.tensor(REWARDS, dtype=torch.float64), GROUPS)
    assert out.advantages.dtype == torch.float64
    assert adv.grpo(torch.tensor([1, 0, 1, 1]), [0, 0, 1, 1]).advantages.dtype == torch.float32
    assert out.stats == {"zero_std_frac": pytest.approx(3 / 12), "sigma": 0.0, "noise_std": 0.0}  # "c" and "e"
    assert torch.equal(out.rewards, torch.tensor(REWARDS, dtype=torch.float64))


# ---- TRL: GRPOTrainer._generate_and_score_completions (trl 1.16, grpo_trainer.py, `sum_then_normalize` branch),
# mirrored line for line on contiguous groups of `num_generations`, with TRL's own `nanstd`.
def trl_grpo(rewards: torch.Tensor, num_generations: int, scale_rewards: str) -> torch.Tensor:
    nanstd = pytest.importorskip("trl.trainer.utils", reason="TRL (the trl extra) is not installed here").nanstd

    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    if scale_rewards in ["group", "none"]:
        std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
        std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
    else:
        std_rewards = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards != "none":
        advantages = advantages / (std_rewards + 1e-4)
    return advantages


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_grpo_matches_trl(scale, sigma):
    generator = torch.Generator().manual_seed(1)
    num_generations = 8
    rewards = torch.randint(0, 3, (64 * num_generations,), generator=generator).float() / 2  # many all-equal groups
    group_ids = torch.arange(64).repeat_interleave(num_generations)
    out = adv.grpo(rewards, group_ids, scale=scale, dither=dither(sigma), step=7)
    expected = trl_grpo(out.rewards, num_generations, scale)
    torch.testing.assert_close(out.advantages, expected, atol=1e-6, rtol=0)


def verl_batch(rewards: torch.Tensor, group_ids: list, seed: int = 0):
    """verl's layout: the outcome reward on the last response token, a right-padded response mask."""
    lengths = torch.randint(1, 6, (len(rewards),), generator=torch.Generator().manual_seed(seed))
    mask = (torch.arange(6) < lengths[:, None]).float()
    token_level = torch.zeros(len(rewards), 6)
    token_level[torch.arange(len(rewards)), lengths - 1] = rewards
    return token_level, mask, np.array(group_ids, dtype=object)


def random_groups(n_groups: int = 40, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Groups of sizes 1 to 8 in shuffled order, with rewards in {0, 0.5, 1}."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 9, (n_groups,), generator=generator)
    groups = [f"uid-{g}" for g, size in enumerate(sizes.tolist()) for _ in range(size)]
    order = torch.randperm(len(groups), generator=generator).tolist()
    rewards = torch.randint(0, 3, (len(groups),), generator=generator).float() / 2
    return rewards, [groups[i] for i in order]


@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_estimators_match_verl(sigma):
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos", reason="verl runs in `make test-verl`")
    rewards, groups = random_groups()
    token_level, mask, index = verl_batch(rewards, groups)
    noise = dither(sigma)
    noisy = adv.grpo(rewards, groups, dither=noise, step=3).rewards
    noisy_tokens, _, _ = verl_batch(noisy, groups)

    def ours(fn, **kwargs):
        out = fn(rewards, groups, convention="verl", dither=noise, step=3, **kwargs).advantages
        return out[:, None] * mask

    for norm, scale in ((True, "group"), (False, "none")):
        expected, _ = core_algos.compute_grpo_outcome_advantage(noisy_tokens, mask, index, norm_adv_by_std_in_grpo=norm)
        torch.testing.assert_close(ours(adv.grpo, scale=scale), expected, atol=1e-6, rtol=0)
    expected, _ = core_algos.compute_rloo_outcome_advantage(noisy_tokens, mask, index)
    torch.testing.assert_close(ours(adv.rloo), expected, atol=1e-6, rtol=0)
    expected, _ = core_algos.compute_reinforce_plus_plus_baseline_outcome_advantage(noisy_tokens, mask, index)
    torch.testing.assert_close(ours(adv.reinforce_pp_baseline, weights=mask.sum(-1)), expected, atol=1e-6, rtol=0)
    assert token_level.sum(-1).tolist() == rewards.tolist()


def test_dithered_grpo_adds_the_core_noise_and_centres_each_group():
    rewards, groups = random_groups(n_groups=200)
    noise = dither(0.2, distribution="uniform", seed=5)
    out = adv.grpo(rewards, groups, dither=noise, step=11, key=(2,))
    expected_noise = noise.noise(len(rewards), 11, (2,))
    torch.testing.assert_close(out.rewards - rewards, expected_noise, atol=1e-6, rtol=0)
    assert out.stats["sigma"] == pytest.approx(0.2)
    assert out.stats["noise_std"] == pytest.approx(expected_noise.double().std().item(), rel=1e-6)
    for g in set(groups):
        members = [i for i, h in enumerate(groups) if h == g]
        if len(members) > 1:
            assert abs(out.advantages[members].sum().item()) < 1e-5
    assert not torch.equal(out.advantages, adv.grpo(rewards, groups, dither=noise, step=12, key=(2,)).advantages)
    assert not torch.equal(out.advantages, adv.grpo(rewards, groups, dither=noise, step=11, key=(3,)).advantages)
    assert torch.equal(out.advantages, adv.grpo(rewards, groups, dither=noise, step=11, key=(2,)).advantages)


def test_noise_std_follows_sigma_schedule_and_ratio():
    rewards = torch.zeros(20_000)
    groups = torch.arange(2_500).repeat_interleave(8)
    linear = dither(0.3, schedule="linear", max_steps=100)
    # Sample std of 20k draws: relative error ≈ 1/√(2·20000) = 0.5%; 3% is 6 standard errors.
    assert adv.grpo(rewards, groups, dither=linear, step=0).stats["noise_std"] == pytest.approx(0.3, rel=0.03)
    assert adv.grpo(rewards, groups, dither=linear, step=75).stats["noise_std"] == pytest.approx(0.075, rel=0.03)
    at_end = adv.grpo(rewards, groups, dither=linear, step=100)
    assert at_end.stats["sigma"] == 0.0 and torch.equal(at_end.advantages, torch.zeros(20_000))
    ratio = Dither(DitherConfig(ratio=0.1, granularity="total", distribution="laplace"))
    out = adv.dr_grpo(rewards, groups, dither=ratio, r_max=2.0)
    assert out.stats["sigma"] == pytest.approx(0.2 / math.sqrt(3))
    assert out.stats["noise_std"] == pytest.approx(0.2 / math.sqrt(3), rel=0.03)
    with pytest.raises(ValueError, match="R_max"):
        adv.grpo(rewards, groups, dither=ratio)


@pytest.mark.parametrize(
    ("rewards", "group_ids", "kwargs", "match"),
    [
        (torch.zeros(4), None, {}, "group_ids is required"),
        (torch.zeros(4), [0, 0, 1], {}, "one id per reward"),
        (torch.zeros(2, 2), [0, 0], {}, "flat vector"),
        (torch.tensor([1.0, float("nan")]), [0, 0], {}, "finite"),
        (torch.zeros(4), [0, 0, 1, 1], {"scale": "global"}, "scale must be one of"),
        (torch.zeros(4), [0, 0, 1, 1], {"convention": "openrlhf"}, "convention must be one of"),
    ],
)
def test_bad_inputs_raise(rewards, group_ids, kwargs, match):
    with pytest.raises(ValueError, match=match):
        adv.grpo(rewards, group_ids, **kwargs)
