"""σ schedules: each one's multiplier at chosen steps equals its formula (hand-computed values), and bad inputs fail."""

from __future__ import annotations

import math

import pytest

from redit.schedules import SCHEDULE_NAMES, make_schedule

T = 100

# (name, params, {step: expected multiplier}) with the expected values worked out by hand from the formulas.
CASES = [
    ("constant", {}, {0: 1.0, 50: 1.0, 10_000: 1.0}),
    # 1 - (1 - f)·t/T, clamped at T
    ("linear", {}, {0: 1.0, 25: 0.75, 100: 0.0, 150: 0.0}),
    ("linear", {"final_ratio": 0.2}, {0: 1.0, 50: 0.6, 100: 0.2}),
    # (t/period + 1)^(-1/2)
    ("sqrt", {}, {0: 1.0, 300: 1 / math.sqrt(2), 900: 0.5, 2400: 1 / 3}),
    ("sqrt", {"period": 10}, {30: 0.5, 80: 1 / 3}),
    # max(min_ratio, factor^t)
    ("exponential", {}, {0: 1.0, 1: 0.99, 100: 0.99**100}),
    ("exponential", {"factor": 0.5, "min_ratio": 0.2}, {0: 1.0, 1: 0.5, 2: 0.25, 3: 0.2, 50: 0.2}),
    # factor^(number of milestones <= t)
    (
        "multistep",
        {"milestones": [250, 500, 750]},
        {0: 1.0, 249: 1.0, 250: 0.5, 500: 0.25, 749: 0.25, 750: 0.125, 5000: 0.125},
    ),
    ("multistep", {"milestones": [2, 5], "factor": 0.1}, {0: 1.0, 1: 1.0, 2: 0.1, 4: 0.1, 5: 0.01}),
    # warm-up t/w, then f + (1 - f)·(1 + cos(π·(t - w)/(T - w)))/2
    ("cosine", {"final_ratio": 0.0}, {0: 1.0, 50: 0.5, 25: 0.5 + 0.5 * math.cos(math.pi / 4), 100: 0.0, 120: 0.0}),
    ("cosine", {"final_ratio": 0.1, "warmup_steps": 10}, {0: 0.0, 5: 0.5, 10: 1.0, 55: 0.55, 100: 0.1}),
    # reverse_x(t) = x(T - t)
    ("reverse_sqrt", {"period": 25}, {0: 1 / math.sqrt(5), 25: 0.5, 100: 1.0}),
    ("reverse_exponential", {"factor": 0.5}, {100: 1.0, 99: 0.5, 98: 0.25}),
    (
        "reverse_multistep",
        {"milestones": [10, 50], "factor": 0.5},
        {0: 0.25, 50: 0.25, 51: 0.5, 90: 0.5, 91: 1.0, 100: 1.0},
    ),
    ("reverse_cosine", {"final_ratio": 0.1, "warmup_steps": 10}, {100: 0.0, 95: 0.5, 90: 1.0, 45: 0.55, 0: 0.1}),
]


@pytest.mark.parametrize(("name", "params", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_value_at_chosen_steps(name: str, params: dict, expected: dict[int, float]) -> None:
    schedule = make_schedule(name, **params)
    for step, value in expected.items():
        assert schedule(step, T) == pytest.approx(value, abs=1e-12), f"{name}{params} at step {step}"


def test_every_schedule_is_covered() -> None:
    assert {name for name, _, _ in CASES} == set(SCHEDULE_NAMES)
    assert set(SCHEDULE_NAMES) == {
        "constant",
        "linear",
        "sqrt",
        "exponential",
        "multistep",
        "cosine",
        "reverse_sqrt",
        "reverse_exponential",
        "reverse_multistep",
        "reverse_cosine",
    }


@pytest.mark.parametrize("name", ["sqrt", "exponential", "multistep", "cosine"])
def test_reverse_mirrors_forward(name: str) -> None:
    forward, backward = make_schedule(name), make_schedule(f"reverse_{name}")
    assert backward.name == f"reverse_{name}"
    for step in range(0, 1001, 37):
        assert backward(step, 1000) == forward(1000 - step, 1000)


@pytest.mark.parametrize("name", [n for n in SCHEDULE_NAMES if n != "constant"])
def test_multiplier_stays_in_unit_interval(name: str) -> None:
    schedule = make_schedule(name)
    assert all(0.0 <= schedule(step, 1000) <= 1.0 for step in range(0, 1200, 7))


@pytest.mark.parametrize(
    "name", ["linear", "cosine", *(f"reverse_{n}" for n in ("sqrt", "exponential", "multistep", "cosine"))]
)
def test_needs_max_steps(name: str) -> None:
    schedule = make_schedule(name)
    assert schedule.needs_max_steps
    for max_steps in (None, 0):
        with pytest.raises(ValueError, match=f"schedule '{name}' needs max_steps"):
            schedule(3, max_steps)


# The authors' schedules, written from their code (base noise m, step t, run length T), as the ratio m(t):
def authors_cosine(t: int, max_update: int, base: float, final: float, warmup: int = 0) -> float:
    if warmup > 0 and t < warmup:
        return base * t / warmup
    if t <= max_update:
        return final + (base - final) * (1 + math.cos(math.pi * (t - warmup) / (max_update - warmup))) / 2
    return final


AUTHORS = {  # name, params: m(t, T) at base m = 0.1 with the authors' default parameters
    ("sqrt", ()): lambda t, T: 0.1 * math.pow(t / 300 + 1.0, -0.5),
    ("reverse_sqrt", ()): lambda t, T: 0.1 * math.pow((T - t) / 300 + 1.0, -0.5),
    ("exponential", ()): lambda t, T: max(1e-3, 0.1 * 0.99**t),
    ("reverse_exponential", ()): lambda t, T: max(1e-3, 0.1 * 0.99 ** (T - t)),
    ("multistep", ()): lambda t, T: 0.1 * 0.5 ** sum(m <= t for m in (2000, 4000, 6000, 8000)),
    ("reverse_multistep", ()): lambda t, T: 0.1 * 0.5 ** sum(m <= T - t for m in (2000, 4000, 6000, 8000)),
    ("cosine", (("max_update", 8000), ("warmup_steps", 1000))): lambda t, T: authors_cosine(t, 8000, 0.1, 1e-3, 1000),
    ("reverse_cosine", (("max_update", 8000),)): lambda t, T: authors_cosine(T - t, 8000, 0.1, 1e-3),
}


@pytest.mark.parametrize(("key", "formula"), AUTHORS.items(), ids=[k[0] for k in AUTHORS])
@pytest.mark.parametrize("max_steps", [1000, 10_000])
def test_authors_parameters_give_their_formulas(key: tuple, formula, max_steps: int) -> None:
    """m(t) = 0.1 x multiplier equals the authors' noise at their defaults, e.g. horizon 8000 over 1000 steps."""
    name, params = key
    schedule = make_schedule(name, **dict(params))
    for step in (0, 1, 10, 299, 500, 999, 1000, 2000, 4000, 7999, 8000, 8001, 9500, 10_000):
        if step <= max_steps:
            assert 0.1 * schedule(step, max_steps) == pytest.approx(formula(step, max_steps), rel=1e-12, abs=1e-15)


def test_authors_active_run_is_nearly_constant() -> None:
    """Their active run: reverse cosine, horizon 8000, base 0.1 over 1000 steps: m from 0.0962 up to 0.1."""
    schedule = make_schedule("reverse_cosine", max_update=8000)
    values = [0.1 * schedule(t, 1000) for t in range(1001)]
    assert values[0] == pytest.approx(1e-3 + 0.099 * (1 + math.cos(math.pi / 8)) / 2)
    assert values[-1] == pytest.approx(0.1) and values == sorted(values) and min(values) > 0.096


def test_cosine_with_horizon_does_not_need_max_steps() -> None:
    schedule = make_schedule("cosine", max_update=100, final_ratio=0.0)
    assert not schedule.needs_max_steps
    assert schedule(50) == pytest.approx(0.5) and schedule(150) == 0.0


@pytest.mark.parametrize("name", ["constant", "sqrt", "exponential", "multistep"])
def test_does_not_need_max_steps(name: str) -> None:
    assert make_schedule(name)(10, None) > 0.0


def test_negative_step_is_rejected() -> None:
    with pytest.raises(ValueError, match="step must be >= 0"):
        make_schedule("constant")(-1)


def test_unknown_schedule_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="dither.schedule: unknown schedule 'cosin'.*reverse_cosine"):
        make_schedule("cosin")
    with pytest.raises(ValueError, match="unknown schedule 'reverse_linear'"):
        make_schedule("reverse_linear")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "sqrt",
            {"periods": 3},
            r"dither.schedule_params: unknown parameter\(s\) \['periods'\].*allowed: \['period'\]",
        ),
        ("constant", {"factor": 0.5}, r"unknown parameter\(s\) \['factor'\] for schedule 'constant'"),
        ("sqrt", {"period": 0}, "dither.schedule_params.period must be > 0"),
        ("exponential", {"factor": 1.5}, "dither.schedule_params.factor must be in"),
        ("linear", {"final_ratio": -0.1}, "dither.schedule_params.final_ratio .* must be finite and >= 0"),
        ("cosine", {"final_ratio": float("nan")}, "dither.schedule_params.final_ratio"),
        ("multistep", {"milestones": [10, -5]}, "dither.schedule_params.milestones"),
        ("cosine", {"max_update": 0}, r"dither.schedule_params.max_update \(the cosine horizon\) must be"),
        ("reverse_cosine", {"max_update": -8000}, "dither.schedule_params.max_update"),
        ("cosine", {"max_update": 10, "warmup_steps": 10}, "max_update .* > warmup_steps"),
    ],
)
def test_bad_params_name_the_field(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_schedule(name, **params)
