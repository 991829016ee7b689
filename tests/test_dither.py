"""The dithering core: noise statistics and shape, ratio scaling, user distributions, keyed reproducibility.

Every draw is seeded, so these tests are deterministic; the bounds are still chosen as if they were not:
means within 5 standard errors, variances within 5 standard errors of the sample variance, KS p-value > 1e-3.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from redit.dither import DISTRIBUTIONS, Dither, DitherConfig, ratio_to_sigma, unit_noise
from redit.rng import derive_seed, keyed_generator

N = 200_000
KURTOSIS = {"gaussian": 3.0, "uniform": 1.8, "laplace": 6.0}  # E[x^4] / sigma^4


def reference(distribution: str, sigma: float) -> stats.rv_continuous:
    """The distribution with std ``sigma`` that the noise should follow."""
    if distribution == "gaussian":
        return stats.norm(0.0, sigma)
    if distribution == "uniform":
        half_width = sigma * math.sqrt(3.0)
        return stats.uniform(-half_width, 2.0 * half_width)
    return stats.laplace(0.0, sigma / math.sqrt(2.0))


def draw(distribution: str, sigma: float, n: int = N, seed: int = 0, key: tuple[int, ...] = ()) -> torch.Tensor:
    return Dither(DitherConfig(distribution=distribution, sigma=sigma, seed=seed)).noise(n, step=0, key=key)


@pytest.mark.parametrize("sigma", [0.05, 1.0, 3.0])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_mean_variance_and_shape(distribution: str, sigma: float) -> None:
    noise = draw(distribution, sigma)
    assert noise.dtype == torch.float32 and noise.shape == (N,)
    samples = noise.double()
    assert abs(samples.mean().item()) < 5.0 * sigma / math.sqrt(N)
    variance_se = sigma**2 * math.sqrt((KURTOSIS[distribution] - 1.0) / N)
    assert abs(samples.var().item() - sigma**2) < 5.0 * variance_se
    assert stats.kstest(samples.numpy(), reference(distribution, sigma).cdf).pvalue > 1e-3


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_ks_rejects_the_other_shapes(distribution: str) -> None:
    """The KS check is sharp enough to tell the three shapes apart at equal variance."""
    samples = draw(distribution, 1.0).numpy()
    for other in DISTRIBUTIONS:
        if other != distribution:
            assert stats.kstest(samples, reference(other, 1.0).cdf).pvalue < 1e-6


def test_uniform_support() -> None:
    samples = draw("uniform", 1.0)
    half_width = math.sqrt(3.0)
    assert samples.abs().max().item() <= half_width
    assert samples.abs().max().item() > 0.999 * half_width


def test_zero_sigma_gives_zero_noise() -> None:
    assert torch.equal(draw("gaussian", 0.0, n=100), torch.zeros(100))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize(("ratio", "r_max"), [(0.05, 1.0), (0.1, 2.0), (0.3, 5.0)])
def test_ratio_scaling_std(distribution: str, ratio: float, r_max: float) -> None:
    """σ0 = R_max·m/√3 (the std of U(-R_max·m, R_max·m)) for every distribution."""
    config = DitherConfig(distribution=distribution, ratio=ratio)
    expected = r_max * ratio / math.sqrt(3.0)
    assert config.base_sigma(r_max) == pytest.approx(expected, rel=1e-12)
    assert ratio_to_sigma(ratio, r_max) == pytest.approx(expected, rel=1e-12)
    samples = Dither(config).noise(N, step=0, r_max=r_max).double()
    variance_se = expected**2 * math.sqrt((KURTOSIS[distribution] - 1.0) / N)
    assert abs(samples.var().item() - expected**2) < 5.0 * variance_se


def test_ratio_uniform_spans_plus_minus_r_max_times_m() -> None:
    samples = Dither(DitherConfig(distribution="uniform", ratio=0.1)).noise(N, step=0, r_max=2.0)
    assert samples.min().item() >= -0.2 - 1e-6 and samples.max().item() <= 0.2 + 1e-6
    assert samples.min().item() < -0.199 and samples.max().item() > 0.199


def test_uniform_and_gaussian_have_equal_variance_under_ratio_scaling() -> None:
    uniform = Dither(DitherConfig(distribution="uniform", ratio=0.05)).noise(N, step=0, r_max=1.0).double()
    gaussian = Dither(DitherConfig(distribution="gaussian", ratio=0.05)).noise(N, step=0, r_max=1.0).double()
    # The variance ratio of two independent samples has relative std ≈ sqrt((κ_u - 1 + κ_g - 1) / N) ≈ 0.0042.
    assert uniform.var().item() / gaussian.var().item() == pytest.approx(1.0, abs=0.02)


def test_ratio_without_r_max_names_the_fix() -> None:
    with pytest.raises(ValueError, match="dither.ratio.*max_reward"):
        DitherConfig(ratio=0.05).base_sigma(None)


def test_sigma_follows_the_schedule() -> None:
    dither = Dither(DitherConfig(sigma=0.2, schedule="linear", schedule_params={"final_ratio": 0.5}, max_steps=10))
    assert dither.sigma(0) == pytest.approx(0.2)
    assert dither.sigma(4) == pytest.approx(0.2 * (1.0 - 0.5 * 4 / 10))
    assert dither.sigma(10) == pytest.approx(0.1)
    ratio = Dither(DitherConfig(ratio=0.3, schedule="sqrt", schedule_params={"period": 10}))
    assert ratio.sigma(30, r_max=2.0) == pytest.approx(2.0 * 0.3 / math.sqrt(3.0) * 0.5)
    assert ratio.noise(N, step=30, r_max=2.0).std().item() == pytest.approx(0.6 / math.sqrt(3.0) * 0.5, rel=0.02)


def rademacher(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).float() * 2.0 - 1.0


def test_callable_distribution_is_used_and_scaled() -> None:
    noise = Dither(DitherConfig(distribution=rademacher, sigma=0.3)).noise(1000, step=2, key=(1,))
    assert noise.unique().tolist() == pytest.approx([-0.3, 0.3])
    assert torch.equal(noise, 0.3 * rademacher(1000, keyed_generator(0, 2, 1)))


def test_callable_with_nonzero_mean_is_rejected() -> None:
    def shifted(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, generator=generator) + 0.1

    with pytest.raises(ValueError, match="dither.distribution.*zero-mean"):
        DitherConfig(distribution=shifted, sigma=0.1)


def test_callable_with_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"dither.distribution.*shape \(3,\).*expected \(5,\)"):
        unit_noise(lambda n, g: torch.zeros(3), 5, keyed_generator(0))


def test_same_seed_step_and_key_reproduce_the_noise() -> None:
    config = DitherConfig(sigma=0.1, seed=7)
    first = Dither(config).noise(64, step=12, key=(3, 1, 0))
    assert torch.equal(first, Dither(DitherConfig(sigma=0.1, seed=7)).noise(64, step=12, key=(3, 1, 0)))
    for other in (
        Dither(DitherConfig(sigma=0.1, seed=8)).noise(64, step=12, key=(3, 1, 0)),
        Dither(config).noise(64, step=13, key=(3, 1, 0)),
        Dither(config).noise(64, step=12, key=(3, 2, 0)),
        Dither(config).noise(64, step=12, key=(1, 3, 0)),
        Dither(config).noise(64, step=12, key=(3, 1)),
    ):
        assert not torch.allclose(first, other)


def test_draws_are_a_prefix_of_longer_draws() -> None:
    """The first n values do not depend on how many are drawn (Gaussian draws in chunks, so check it too)."""
    for distribution in DISTRIBUTIONS:
        assert torch.equal(draw(distribution, 1.0, n=64, key=(1,)), draw(distribution, 1.0, n=256, key=(1,))[:64])


def test_ranks_draw_uncorrelated_noise() -> None:
    """Keys that differ only in rank (or call, or function) give independent streams: |corr| < 5/√n."""
    base = draw("gaussian", 1.0, key=(0, 0, 0)).double()
    for key in ((0, 1, 0), (0, 2, 0), (1, 0, 0), (0, 0, 1)):
        other = draw("gaussian", 1.0, key=key).double()
        assert abs(torch.corrcoef(torch.stack([base, other]))[0, 1].item()) < 5.0 / math.sqrt(N)


def test_derive_seed_is_distinct_over_many_keys() -> None:
    seeds = {derive_seed(0, step, call, rank) for step in range(50) for call in range(4) for rank in range(8)}
    assert len(seeds) == 50 * 4 * 8
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(1, 1, 2)


def test_ratio_choices_draw_one_seeded_ratio_per_function() -> None:
    """The authors' random ablation: each function's m comes from the list, fixed by (seed, function)."""
    choices = [0.01, 0.02, 0.05, 0.1, 0.3, 0.5]
    config = DitherConfig(ratio_choices=choices, seed=3)
    drawn = [config.function_ratio(i) for i in range(40)]
    assert set(drawn) <= set(choices) and len(set(drawn)) >= 4
    assert drawn == [DitherConfig(ratio_choices=choices, seed=3).function_ratio(i) for i in range(40)]
    assert drawn != [DitherConfig(ratio_choices=choices, seed=4).function_ratio(i) for i in range(40)]
    dither = Dither(config)
    for function in range(5):
        assert dither.sigma(0, 2.0, function) == pytest.approx(ratio_to_sigma(drawn[function], 2.0), rel=1e-12)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ratio_choices": [0.1, -0.05]}, "dither.ratio_choices must be a non-empty list of finite numbers >= 0"),
        ({"ratio_choices": []}, "dither.ratio_choices must be a non-empty list"),
        ({"ratio_choices": [0.1, float("nan")]}, "dither.ratio_choices"),
        ({"ratio_choices": [0.1], "ratio": 0.1}, "give exactly one of dither.sigma"),
        ({"ratio_choices": [0.1], "granularity": "total"}, "dither.ratio_choices draws one m per reward function"),
    ],
)
def test_bad_ratio_choices_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DitherConfig.from_dict(values)
