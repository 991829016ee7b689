"""``ReditRewards`` driven by hand (as TRL calls it), then real TRL ``GRPOTrainer`` runs on the tiny model."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from redit.atomic import read_jsonl
from redit.cli import main
from redit.config import load_config
from redit.dither import Dither, DitherConfig
from redit.integrations.trl import ReditRewards, frac_constant_groups, group_ids
from redit.presets import TINY_TRAIN
from redit.rewards.base import reward
from redit.tasks import load_task
from redit.train import build_trainer, train


@reward(max_reward=1.0)
def correct(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [float(c == "ok") for c in completions]


@reward(max_reward=2.0)
def length(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
    return [None if c == "skip" else min(2.0, len(c) / 2) for c in completions]


class Harness:
    """Calls wrapped rewards the way TRL's ``GRPOTrainer._calculate_rewards`` does, collecting ``log_metric``."""

    def __init__(
        self,
        redit: ReditRewards,
        rank: int = 0,
        weights: list[float] | None = None,
        group_size: int = 4,
    ):
        self.redit, self.model = redit, SimpleNamespace(training=True)
        self.logs: dict[str, float] = {}
        args = SimpleNamespace(
            process_index=rank,
            reward_weights=weights,
            num_generations=group_size,
            multi_objective_aggregation="sum_then_normalize",
        )
        redit.callback.on_train_begin(args, SimpleNamespace(global_step=0), None, model=self.model)

    def __call__(self, step: int, prompts: list[str], completions: list[str]) -> list[list[float | None]]:
        self.logs = {}
        kwargs = {"trainer_state": SimpleNamespace(global_step=step), "log_metric": self.logs.__setitem__}
        return [
            fn(prompts=prompts, completions=completions, completion_ids=[], **kwargs) for fn in self.redit.reward_funcs
        ]


PROMPTS = ["a"] * 4 + ["b"] * 4 + ["a"] * 4
COMPLETIONS = ["ok"] * 4 + ["ok", "no", "ok", "no"] + ["xx"] * 4  # groups: all 1, mixed, all 0 (for `correct`)
CLEAN = [1.0] * 4 + [1.0, 0.0, 1.0, 0.0] + [0.0] * 4


def noisy(sigma: float = 0.1, **kwargs: Any) -> ReditRewards:
    return ReditRewards([correct], DitherConfig(sigma=sigma, **kwargs))


def test_group_ids_cut_runs_into_groups() -> None:
    assert group_ids(PROMPTS, 4).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert group_ids(["a"] * 8 + ["b"] * 2, 4).tolist() == [0] * 4 + [1] * 4 + [2] * 2


def test_frac_constant_groups() -> None:
    groups = group_ids(PROMPTS, 4)
    assert frac_constant_groups(torch.tensor(CLEAN), groups) == pytest.approx(2 / 3)
    with_nan = torch.tensor([1.0, math.nan, 1.0, 1.0, 0.0, 1.0, math.nan, 0.0, 0.5, 0.5, 0.5, math.nan])
    assert frac_constant_groups(with_nan, groups) == pytest.approx(2 / 3)
    assert frac_constant_groups(torch.tensor(CLEAN) + 1e-3 * torch.arange(12.0), groups) == 0.0


def test_training_adds_noise_and_logs_clean_metrics() -> None:
    harness = Harness(noisy(0.1))
    (values,) = harness(3, PROMPTS, COMPLETIONS)
    noise = torch.tensor(values) - torch.tensor(CLEAN)
    assert torch.all(noise != 0) and noise.abs().max().item() < 0.6
    assert harness.logs == pytest.approx(
        {
            "redit/rewards_clean/correct": 0.5,
            "redit/reward_clean": 0.5,
            "redit/frac_zero_std_clean": 2 / 3,
            "redit/sigma": 0.1,
        }
    )
    assert frac_constant_groups(torch.tensor(values), group_ids(PROMPTS, 4)) == 0.0


def test_evaluation_rewards_stay_clean() -> None:
    harness = Harness(noisy(0.1))
    harness.model.training = False
    (values,) = harness(3, PROMPTS, COMPLETIONS)
    assert values == CLEAN
    assert harness.logs["redit/sigma"] == 0.0 and harness.logs["redit/reward_clean"] == 0.5
    # evaluation calls do not advance the call counter: the next training draw is call 0 of step 3
    harness.model.training = True
    fresh = Harness(noisy(0.1))
    assert harness(3, PROMPTS, COMPLETIONS) == fresh(3, PROMPTS, COMPLETIONS)


def test_without_dither_rewards_are_clean_and_still_logged() -> None:
    harness = Harness(ReditRewards([correct], None))
    assert harness(0, PROMPTS, COMPLETIONS) == [CLEAN]
    assert harness.logs["redit/sigma"] == 0.0 and harness.logs["redit/frac_zero_std_clean"] == pytest.approx(2 / 3)


def test_noise_is_the_dither_draw_keyed_by_step_call_rank_function() -> None:
    config = DitherConfig(sigma=0.1, seed=5)
    harness = Harness(ReditRewards([correct, length], config), rank=2)
    first = harness(7, PROMPTS, COMPLETIONS)
    second = harness(7, PROMPTS, COMPLETIONS)  # a second generation within the same step: call index 1
    dither = Dither(config)
    for call, values in enumerate((first, second)):
        for index, clean in enumerate((CLEAN, [min(2.0, len(c) / 2) for c in COMPLETIONS])):
            expected = torch.tensor(clean) + dither.noise(12, 7, (call, 2, index))
            assert torch.allclose(torch.tensor(values[index]), expected, atol=1e-7)
    assert first != second


def test_same_seed_same_noise_other_rank_or_seed_other_noise() -> None:
    reference = Harness(noisy(seed=1))(4, PROMPTS, COMPLETIONS)
    assert Harness(noisy(seed=1))(4, PROMPTS, COMPLETIONS) == reference
    assert Harness(noisy(seed=1), rank=1)(4, PROMPTS, COMPLETIONS) != reference
    assert Harness(noisy(seed=2))(4, PROMPTS, COMPLETIONS) != reference


def test_resumed_wrapper_draws_what_the_original_draws() -> None:
    """A fresh wrapper (as after a restart from a checkpoint) at step k repeats the uninterrupted run's noise."""
    original = Harness(noisy(seed=3))
    history = {(step, call): original(step, PROMPTS, COMPLETIONS) for step in range(5) for call in range(2)}
    resumed = Harness(noisy(seed=3))
    for step in (3, 4):
        for call in range(2):
            assert resumed(step, PROMPTS, COMPLETIONS) == history[(step, call)]


def test_none_rewards_pass_through() -> None:
    harness = Harness(ReditRewards([length], DitherConfig(sigma=0.1)))
    (values,) = harness(0, ["p"] * 4, ["ab", "skip", "abcd", "skip"])
    assert values[1] is None and values[3] is None
    assert values[0] != 1.0 and values[2] is not None
    assert harness.logs["redit/reward_clean"] == pytest.approx(1.5)


def test_per_function_granularity() -> None:
    harness = Harness(ReditRewards([correct, length], DitherConfig(ratio=0.1)), weights=[1.0, 0.5])
    values = harness(0, PROMPTS, COMPLETIONS)
    assert all(v != c for v, c in zip(values[0], CLEAN))
    expected = math.sqrt((1.0 * 0.1 / math.sqrt(3)) ** 2 + (0.5 * 2.0 * 0.1 / math.sqrt(3)) ** 2)
    assert harness.logs["redit/sigma"] == pytest.approx(expected, rel=1e-6)
    clean_length = [min(2.0, len(c) / 2) for c in COMPLETIONS]
    assert harness.logs["redit/reward_clean"] == pytest.approx(0.5 + 0.5 * sum(clean_length) / 12)


def test_total_granularity_puts_one_draw_on_the_weighted_total() -> None:
    weights = [1.0, 0.5]
    harness = Harness(ReditRewards([correct, length], DitherConfig(ratio=0.1, granularity="total")), weights=weights)
    n = 40_000
    prompts, completions = ["p"] * n, ["ok", "abc"] * (n // 2)
    values = harness(0, prompts, completions)
    clean = torch.tensor([[1.0, 1.0], [0.0, 1.5]]).repeat(n // 2, 1)
    assert values[0] == clean[:, 0].tolist()  # the first function stays clean
    total_noise = (torch.tensor(values).T - clean) @ torch.tensor(weights)
    sigma = 0.1 * (1.0 * 1.0 + 0.5 * 2.0) / math.sqrt(3)  # ratio of the weighted total's maximum
    assert harness.logs["redit/sigma"] == pytest.approx(sigma, rel=1e-6)
    assert total_noise.std().item() == pytest.approx(sigma, rel=0.02)  # 5 standard errors at n = 40k
    assert abs(total_noise.mean().item()) < 5 * sigma / math.sqrt(n)


def test_total_granularity_rejects_a_zero_last_weight() -> None:
    with pytest.raises(ValueError, match="dither.granularity=total.*weight is 0"):
        Harness(ReditRewards([correct, length], DitherConfig(sigma=0.1, granularity="total")), weights=[1.0, 0.0])


def test_wrong_length_names_the_function() -> None:
    def short(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [1.0] * (len(completions) - 1)

    harness = Harness(ReditRewards([short], DitherConfig(sigma=0.1)))
    with pytest.raises(ValueError, match="reward function 'short' returned 11 values for 12 completions"):
        harness(0, PROMPTS, COMPLETIONS)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_name_the_function(bad: float) -> None:
    def broken(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [bad] + [0.0] * (len(completions) - 1)

    with pytest.raises(ValueError, match="reward function 'broken' returned non-finite values"):
        Harness(ReditRewards([broken], DitherConfig(sigma=0.1)))(0, PROMPTS, COMPLETIONS)


def test_non_numbers_name_the_function() -> None:
    def wordy(prompts: list[str], completions: list[str], **_: Any) -> list[Any]:
        return ["correct"] * len(completions)

    with pytest.raises(ValueError, match="reward function 'wordy' returned a non-number"):
        Harness(ReditRewards([wordy], DitherConfig(sigma=0.1)))(0, PROMPTS, COMPLETIONS)


def test_ratio_needs_max_reward() -> None:
    def unbounded(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match=r"dither.ratio.*\['unbounded'\] declare none"):
        ReditRewards([correct, unbounded], DitherConfig(ratio=0.05))
    ReditRewards([unbounded], DitherConfig(sigma=0.05))  # absolute sigma needs no R_max


def test_unbound_wrapper_and_reward_models_are_refused() -> None:
    with pytest.raises(RuntimeError, match="callbacks=\\[redit.callback\\]"):
        noisy().reward_funcs[0](prompts=["p"], completions=["ok"], trainer_state=SimpleNamespace(global_step=0))
    with pytest.raises(TypeError, match="Reward models are not supported"):
        ReditRewards([torch.nn.Linear(1, 1)])
    with pytest.raises(ValueError, match="training.reward_weights has 1 values for 2 reward functions"):
        Harness(ReditRewards([correct, length]), weights=[1.0])


def test_wrapped_functions_keep_name_doc_and_max_reward() -> None:
    wrapped = ReditRewards([correct, length]).reward_funcs
    assert [f.__name__ for f in wrapped] == ["correct", "length"]
    assert [f.max_reward for f in wrapped] == [1.0, 2.0]


# --- real GRPOTrainer runs on the tiny model -------------------------------------------------------------------

FAST = [
    "--model.warm_start.steps=5",
    "--training.per_device_train_batch_size=16",
    "--training.num_generations=4",
    "--dither.sigma=0.1",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One model cache for the module: the warm-started tiny model is built once."""
    path = tmp_path_factory.mktemp("redit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIT_CACHE", str(path))
        yield path


def run(out: Path, *overrides: str, resume: bool = False) -> Path:
    return train(load_config(None, [f"--output_dir={out}", *FAST, *overrides], default=TINY_TRAIN), resume=resume)


@pytest.mark.slow
def test_grpo_run_writes_metrics_eval_config_and_done(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    overrides = [f"--output_dir={out}", *FAST, "--training.max_steps=3", "--eval.every=2", "--eval.limit=8"]
    assert main(["train", *overrides]) == 0
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        for key in ("loss", "grad_norm", "reward_clean", "frac_zero_std_clean", "sigma"):
            assert isinstance(record[key], float), (key, record)
        assert record["sigma"] == pytest.approx(0.1)
        assert 0.0 <= record["reward_clean"] <= 1.0 and 0.0 <= record["frac_zero_std_clean"] <= 1.0
        assert record["reward"] == record["reward_clean"]  # ReditGRPOTrainer leaves TRL's reward clean
    assert [r["step"] for r in read_jsonl(out / "eval.jsonl")] == [0, 2, 3]
    assert all(0.0 <= r["accuracy_greedy"] <= 1.0 and r["k"] == 4 for r in read_jsonl(out / "eval.jsonl"))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert {"scale_rewards", "loss_type", "beta", "num_generations", "max_grad_norm"} <= set(saved["training"])
    assert saved["dither"]["sigma"] == 0.1 and saved["dither"]["max_steps"] == 3
    assert (out / "DONE").exists() and (out / "final" / "config.json").exists()
    assert any((out / "tensorboard").iterdir())


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(cache: Path, tmp_path: Path) -> None:
    """Train 4 steps (checkpoints at 2 and 4); drop everything after step 2 and resume: steps 3-4 repeat exactly."""
    args = ("--training.max_steps=4", "--training.save_steps=2", "--eval.every=2", "--eval.limit=8")
    out = run(tmp_path / "run", *args)
    uninterrupted = read_jsonl(out / "metrics.jsonl")
    evals = read_jsonl(out / "eval.jsonl")
    assert [r["step"] for r in uninterrupted] == [1, 2, 3, 4]
    shutil.rmtree(out / "checkpoint-4")
    shutil.rmtree(out / "final")
    (out / "DONE").unlink()

    with pytest.raises(ValueError, match="--resume: the config differs .*dither.sigma"):
        run(out, *args, "--dither.sigma=0.2", resume=True)
    run(out, *args, resume=True)
    resumed = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert resumed[:2] == uninterrupted[:2]
    for before, after in zip(uninterrupted[2:], resumed[2:]):
        # same completions (clean reward) and same noise (same advantages, so same loss)
        assert after["reward_clean"] == pytest.approx(before["reward_clean"], abs=1e-9)
        assert after["loss"] == pytest.approx(before["loss"], abs=1e-6)
    assert read_jsonl(out / "eval.jsonl") == evals
    assert (out / "DONE").exists() and any((out / "tensorboard").iterdir())


@pytest.mark.slow
def test_trl_evaluation_rewards_stay_clean(cache: Path, tmp_path: Path) -> None:
    """TRL's own evaluation loop (model in eval mode) scores the clean rewards, after training with noise."""
    config = load_config(
        None,
        [
            f"--output_dir={tmp_path}",
            *FAST,
            "--training.max_steps=1",
            "--eval.every=0",
            "--training.per_device_eval_batch_size=16",
        ],
        default=TINY_TRAIN,
    )
    trainer, _ = build_trainer(config)
    heldout = load_task("arithmetic", None, split="test", limit=8, conversational=False, **config.data.params)
    before = trainer.evaluate(eval_dataset=heldout)  # bound at construction: works before train() too
    assert before["eval_redit/sigma"] == 0.0
    trainer.train()
    metrics = trainer.evaluate(eval_dataset=heldout)
    assert metrics["eval_redit/sigma"] == 0.0
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["sigma"] == pytest.approx(0.1)


@pytest.mark.slow
def test_bad_reward_fails_at_the_first_step_naming_the_function(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="reward function 'short_reward' returned"):
        run(out, "--training.max_steps=2", "--eval.every=0", f"--rewards=[{__name__}:short_reward]")
    assert read_jsonl(out / "metrics.jsonl") == [] and not list(out.glob("checkpoint-*"))


def short_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [0.0] * (len(completions) - 1)


def test_metrics_records_are_json_lines(tmp_path: Path) -> None:
    from redit.callbacks import MetricsJsonl

    callback = MetricsJsonl(tmp_path / "metrics.jsonl")
    args, state = SimpleNamespace(process_index=0), SimpleNamespace(global_step=5)
    callback.on_log(args, state, None, logs={"loss": 0.5, "grad_norm": float("nan"), "redit/sigma": 0.1, "x": 1})
    callback.on_log(args, state, None, logs={"train_runtime": 3.0})  # end-of-training summary: not a step
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["step"] == 5 and record["loss"] == 0.5 and record["grad_norm"] is None
    assert record["sigma"] == 0.1 and record["redit/sigma"] == 0.1 and "x" not in record


def test_ratio_choices_give_each_function_its_drawn_ratio() -> None:
    """The authors' random ablation through TRL: function i's noise has std R_max_i x m_i / sqrt(3), m_i logged."""
    config = DitherConfig(ratio_choices=[0.01, 0.1, 0.5], seed=1)
    ratios = [config.function_ratio(i) for i in range(2)]
    harness = Harness(ReditRewards([correct, length], config))
    out = [harness(0, ["p"] * 4000, ["ok"] * 4000)[i] for i in range(2)]
    for i, (r_max, clean) in enumerate(((1.0, 1.0), (2.0, 1.0))):
        noise = torch.tensor(out[i]) - clean
        assert noise.std().item() == pytest.approx(r_max * ratios[i] / math.sqrt(3), rel=0.1)
        assert harness.logs[f"redit/ratio/{('correct', 'length')[i]}"] == ratios[i]
