"""``ReditGRPOTrainer`` on the tiny model: TRL's advantages reproduced without noise, the noise modes computed by
``redit.advantages``, TRL's ``reward`` metric clean in every mode, async rewards, evaluation groups, start-up checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from trl import GRPOTrainer

from redit.advantages import CONVENTIONS, Groups, adaptive_sigma, mode_advantages
from redit.config import load_config
from redit.dither import Dither, DitherConfig
from redit.integrations.trl import ReditRewards
from redit.integrations.trl_trainer import check_trl_version, gathered_advantages
from redit.presets import TINY_TRAIN
from redit.rewards.base import reward
from redit.train import build_trainer

WEIGHTS = [2.0, 0.5]
MODES = {
    "off": "--dither=off",
    "faithful": "--dither={sigma: 0.1}",
    "std_floor": "--dither={sigma: 0.1, mode: std_floor, std_floor: 0.4}",
    "flat_only": "--dither={sigma: 0.1, mode: flat_only, flat_scale: 0.2}",
    "adaptive": "--dither={sigma: 0.1, mode: std_floor, adaptive: {target: 0.1, sigma_min: 0.01, sigma_max: 0.3}}",
    "total": "--dither={ratio: 0.1, granularity: total}",
}


@reward(max_reward=1.0)
def has_digit(prompts: list[Any], completions: list[str], **_: Any) -> list[float]:
    return [float(any(ch.isdigit() for ch in c)) for c in completions]


@reward(max_reward=4.0)
def length(prompts: list[Any], completions: list[str], **_: Any) -> list[float]:
    return [float(min(len(c), 4)) for c in completions]


@reward(max_reward=1.0)
async def has_digit_async(prompts: list[Any], completions: list[str], **kwargs: Any) -> list[float]:
    return has_digit(prompts, completions)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIT_CACHE", str(tmp_path_factory.mktemp("redit-cache")))
        yield


def trainer_for(tmp_path: Path, *overrides: str, rewards: str = f"{__name__}:has_digit") -> Any:
    config = load_config(
        None,
        [
            f"--output_dir={tmp_path}",
            "--model.warm_start=null",
            "--training.per_device_train_batch_size=16",
            "--training.num_generations=4",
            "--eval.every=0",
            f"--rewards=[{{name: '{rewards}', weight: {WEIGHTS[0]}}}, {{name: '{__name__}:length', weight: 0.5}}]",
            *overrides,
        ],
        default=TINY_TRAIN,
    )
    return build_trainer(config)[0]


def batch(trainer: Any, group_size: int) -> list[dict[str, Any]]:
    rows = trainer.train_dataset.select(range(16 // group_size))
    return [dict(row) for row in rows for _ in range(group_size)]


def score(trainer: Any, inputs: list[dict[str, Any]], generate: Any = None, train: bool = True) -> dict[str, Any]:
    """One generation call with a fixed sampling seed (``generate``: which class's method runs)."""
    torch.manual_seed(0)
    trainer.model.train(train)
    return (generate or type(trainer))._generate_and_score_completions(trainer, inputs)


def clean_totals(trainer: Any, n: int) -> torch.Tensor:
    """The weighted clean reward of the last ``n`` logged completions, recomputed from their text."""
    prompts, completions = list(trainer._logs["prompt"])[-n:], list(trainer._logs["completion"])[-n:]
    per_function = [torch.tensor(fn(prompts, completions), dtype=torch.float64) for fn in (has_digit, length)]
    return WEIGHTS[0] * per_function[0] + WEIGHTS[1] * per_function[1]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_without_noise_the_advantages_are_trls(tmp_path: Path, scale: str) -> None:
    trainer = trainer_for(tmp_path, "--dither=off", f"--training.scale_rewards={scale}")
    inputs = batch(trainer, 4)
    ours, theirs = score(trainer, inputs), score(trainer, inputs, GRPOTrainer)
    assert torch.equal(ours["completion_ids"], theirs["completion_ids"])
    torch.testing.assert_close(ours["advantages"], theirs["advantages"], atol=1e-5, rtol=1e-5)
    assert ours["advantages"].abs().sum() > 0  # some group has distinct rewards


def test_faithful_equals_reditrewards_in_a_plain_grpotrainer(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, MODES["faithful"])
    wrapped = ReditRewards([has_digit, length], DitherConfig(sigma=0.1))
    plain = GRPOTrainer(
        model=trainer.model,
        reward_funcs=wrapped.reward_funcs,
        args=trainer.args,
        train_dataset=trainer.train_dataset,
        processing_class=trainer.processing_class,
        callbacks=[wrapped.callback],
    )
    inputs = batch(trainer, 4)
    torch.testing.assert_close(
        score(trainer, inputs)["advantages"], score(plain, inputs)["advantages"], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_trl_reward_metric_is_the_clean_weighted_reward_and_advantages_follow_the_mode(
    tmp_path: Path, mode: str
) -> None:
    trainer = trainer_for(tmp_path, MODES[mode])
    out = score(trainer, batch(trainer, 4))
    total = clean_totals(trainer, 16)
    metrics = trainer._metrics["train"]
    assert metrics["reward"][-1] == pytest.approx(total.mean().item(), abs=1e-5)
    flat = Groups.from_ids(torch.arange(16) // 4, 16).all_equal(total).double().mean().item()
    assert metrics["frac_reward_zero_std"][-1] == pytest.approx(flat)
    if mode == "off":
        assert metrics["redit/sigma"][-1] == 0.0
        return
    config, groups = trainer.dither.config, Groups.from_ids(torch.arange(16) // 4, 16)
    dither, trl = Dither(config), CONVENTIONS["trl"]
    if config.adaptive is not None:
        sigma = adaptive_sigma(total, groups, trl, config)
        noise = sigma * dither.unit(16, 0, (0, 0, 2)).double()
    elif config.granularity == "total":
        sigma = dither.sigma(0, WEIGHTS[0] * 1.0 + WEIGHTS[1] * 4.0)
        noise = dither.noise(16, 0, (0, 0, 2), WEIGHTS[0] * 1.0 + WEIGHTS[1] * 4.0).double()
    else:
        sigma = (WEIGHTS[0] ** 2 * 0.1**2 + WEIGHTS[1] ** 2 * 0.1**2) ** 0.5
        noise = sum(w * dither.noise(16, 0, (0, 0, i)).double() for i, w in enumerate(WEIGHTS))
    expected = mode_advantages(total, noise, groups, trl, config, sigma)
    torch.testing.assert_close(out["advantages"], expected.float(), atol=1e-5, rtol=1e-5)
    assert metrics["redit/sigma"][-1] == pytest.approx(sigma)


def test_evaluation_is_clean_with_num_generations_eval_groups(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, MODES["flat_only"], "--training.num_generations_eval=2")
    inputs = batch(trainer, 2)
    ours, theirs = score(trainer, inputs, train=False), score(trainer, inputs, GRPOTrainer, train=False)
    torch.testing.assert_close(ours["advantages"], theirs["advantages"], atol=1e-5, rtol=1e-5)
    total = clean_totals(trainer, 16)
    torch.testing.assert_close(
        ours["advantages"], gathered_advantages(total, torch.zeros(16), 2, "group").float(), atol=1e-5, rtol=1e-5
    )
    assert trainer._metrics["eval"]["redit/sigma"] == [0.0]  # logged by ReditGRPOTrainer only


def test_async_reward_functions_are_awaited(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, MODES["faithful"], rewards=f"{__name__}:has_digit_async")
    out = score(trainer, batch(trainer, 4))
    assert trainer._metrics["train"]["reward"][-1] == pytest.approx(clean_totals(trainer, 16).mean().item(), abs=1e-5)
    assert out["advantages"].shape == (16,)
    with pytest.raises(ValueError, match="'has_digit_async' is async.*ReditGRPOTrainer"):
        ReditRewards([has_digit_async])


def test_unnamed_coroutine_from_a_wrapped_reward_is_refused() -> None:
    wrapped = ReditRewards([lambda prompts, completions, **_: has_digit_async(prompts, completions)])
    wrapped.bind(model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="returned a coroutine, which ReditRewards cannot await"):
        wrapped.reward_funcs[0](prompts=["p"], completions=["1"], trainer_state=type("S", (), {"global_step": 0}))


def test_start_up_checks_name_the_setting(tmp_path: Path) -> None:
    check_trl_version("1.16.3")
    with pytest.raises(ValueError, match="trl>=1.16,<1.17, but trl 1.17.0 is installed"):
        check_trl_version("1.17.0")
    with pytest.raises(ValueError, match="dither.mode=std_floor .* set training.scale_rewards=group"):
        trainer_for(tmp_path, MODES["std_floor"], "--training.scale_rewards=none")
    with pytest.raises(ValueError, match="multi_objective_aggregation=normalize_then_sum"):
        trainer_for(tmp_path, "--training.multi_objective_aggregation=normalize_then_sum")
    with pytest.raises(ValueError, match="dither.mode=flat_only sets the advantages.*ReditGRPOTrainer"):
        ReditRewards([has_digit], DitherConfig(sigma=0.1, mode="flat_only"))


def test_training_completions_are_written_with_answers_and_clean_rewards(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, MODES["flat_only"])
    inputs = batch(trainer, 4)
    out = score(trainer, inputs)
    records = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in records] == [row["answer"] for row in inputs]
    assert all(r["step"] == 1 for r in records)
    totals = [WEIGHTS[0] * r["rewards"]["has_digit"] + WEIGHTS[1] * r["rewards"]["length"] for r in records]
    assert totals == pytest.approx(clean_totals(trainer, 16).tolist())
    assert [r["advantage"] for r in records] == pytest.approx(out["advantages"].tolist(), abs=1e-6)
    score(trainer, inputs, train=False)  # evaluation batches are not training completions
    assert len((tmp_path / "completions.jsonl").read_text().splitlines()) == 16
