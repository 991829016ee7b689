"""Run configuration: overrides, and every bad input failing with an error that names the field, before training."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from redit.cli import main
from redit.config import apply_overrides, load_config, parse_config
from redit.dither import DitherConfig
from redit.presets import TINY_TRAIN
from redit.train import grpo_args, resolved_config


def config(*overrides: str, output_dir: str = "unused") -> Any:
    return load_config(None, [f"--output_dir={output_dir}", *overrides], default=TINY_TRAIN)


def test_overrides_are_parsed_as_yaml() -> None:
    raw = apply_overrides(
        {"dither": {"sigma": 0.05}},
        ["--dither.sigma=0.1", "--dither.schedule_params.period=100", "training.max_steps=7", "--rewards=[a, b]"],
    )
    assert raw == {
        "dither": {"sigma": 0.1, "schedule_params": {"period": 100}},
        "training": {"max_steps": 7},
        "rewards": ["a", "b"],
    }


def test_overrides_reach_the_run_config() -> None:
    run = config("--dither.schedule=sqrt", "--dither.schedule_params.period=100", "--training.max_steps=7")
    assert run.dither == DitherConfig(sigma=0.05, schedule="sqrt", schedule_params={"period": 100}, max_steps=7)
    assert run.training["max_steps"] == 7 and run.rewards[0].name == "exact_answer"
    assert TINY_TRAIN["training"]["max_steps"] == 50  # the preset itself is untouched


@pytest.mark.parametrize("off", ["off", "none", "false", "null"])
def test_dither_off(off: str) -> None:
    assert config(f"--dither={off}").dither is None


def test_dither_max_steps_follows_training_unless_given() -> None:
    assert config("--training.max_steps=12").dither.max_steps == 12
    assert config("--training.max_steps=12", "--dither.max_steps=30").dither.max_steps == 30


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--dither.sigma=-0.1"], r"dither.sigma must be a finite number >= 0, got -0.1"),
        (["--dither.sigma=.nan"], r"dither.sigma must be a finite number >= 0, got nan"),
        (["--dither.sigma=.inf"], r"dither.sigma must be a finite number >= 0"),
        (["--dither.sigma=null", "--dither.ratio=-1"], r"dither.ratio must be a finite number >= 0"),
        (["--dither.sigma=abc"], r"dither.sigma must be a finite number"),
        (["--dither.ratio=0.05"], r"give exactly one of dither.sigma .* or dither.ratio"),
        (["--dither.sigma=null"], r"give exactly one of dither.sigma"),
        (["--dither.distribution=cauchy"], r"dither.distribution: unknown 'cauchy'"),
        (["--dither.schedule=cosin"], r"dither.schedule: unknown schedule 'cosin'"),
        (["--dither.schedule_params.periods=3", "--dither.schedule=sqrt"], r"dither.schedule_params.*'periods'"),
        (["--dither.granularity=sample"], r"dither.granularity must be one of"),
        (["--dither.sigma=yes"], r"dither.sigma must be a finite number >= 0, got True"),
        (["--dither.seed=1.5"], r"dither.seed must be an integer"),
        (["--dither.seed=true"], r"dither.seed must be an integer"),
        (["--dither.sigmaa=0.1"], r"dither: unknown key\(s\) \['sigmaa'\]"),
        (["--dither=on"], r"dither: expected 'off' or a mapping"),
        (["--training.max_steps=null", "--dither.schedule=linear"], r"dither.schedule 'linear' needs the run length"),
        (["--training.max_steps=null", "--dither.schedule=reverse_sqrt"], r"dither.schedule 'reverse_sqrt' needs"),
        (["--training.max_steps=0"], r"^training.max_steps: expected a value > 0, got 0$"),
        (["--dither.max_steps=-5", "--dither.schedule=linear"], r"dither.max_steps must be a positive integer"),
        (["--training.lr=0.1"], r"training.lr: unknown key \(not a trl.GRPOConfig field\)"),
        (["--training.output_dir=x"], r"training.output_dir: set the top-level output_dir"),
        (["--model.size=3"], r"model.size: unknown key; known: name_or_path, tiny, dtype, lora, warm_start"),
        (["--data.taks=gsm8k"], r"data.taks: unknown key \(did you mean 'task'\?\)"),
        (["--eval.evry=2"], r"eval.evry: unknown key \(did you mean 'every'\?\)"),
        (["--optim.lr=1"], r"optim: unknown key; known: output_dir, model, data, rewards, training, dither, eval"),
        (["--rewards=[{name: exact_answer, wieght: 2}]"], r"rewards\[0\].wieght: unknown key \(did you mean 'weight'"),
        (
            ["--rewards=[{name: exact_answer, max_reward: 0}]"],
            r"rewards\[0\].max_reward: expected a value > 0(.0)?, got 0",
        ),
        (["--rewards=[]"], r"rewards: expected at least 1 item"),
        (["--rewards=null"], r"rewards: required: list at least one reward"),
        (["--output_dir="], r"output_dir: required: where the run is written, e.g. --output_dir runs/my-run"),
        (["--dither.sigma.x=1"], r"override '--dither.sigma.x=1': 'sigma' is not a section"),
        (["--dither.sigma"], r"override '--dither.sigma' must look like --section.key=value"),
        (["--dither.schedule_params=5"], r"dither.schedule_params must be a mapping, got 5"),
        (["--data.task=chess"], r"data.task: unknown task 'chess'"),
        (["--data.prompt_style=poem"], r"data.prompt_style: unknown prompt style 'poem'"),
        (["--data.task=gsm8k"], r"data.params: task 'gsm8k' takes no params, got \['digits', 'operators'\]"),
        (["--model.warm_start.steps=0"], r"model.warm_start.steps: expected a value > 0, got 0"),
        (["--model.lora.lora_dropout=1.5"], r"model.lora.lora_dropout: expected a value < 1(.0)?, got 1.5"),
        (["--model.name_or_path=x"], r"model.warm_start applies to tiny models only"),
        (
            ["--dither.mode=std_floor", "--training.scale_rewards=none"],
            r"dither.mode=std_floor replaces GRPO's group scaling: set training.scale_rewards=group",
        ),
        (["--model.name_or_path=smollm", "--model.warm_start=null"], r"neither a folder, a hub id .* alias"),
    ],
)
def test_bad_input_names_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(*overrides)


def test_load_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", [])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="the config must be a mapping of sections"):
        load_config(tmp_path / "list.yaml", [])


def test_dither_config_from_dict_is_validated_directly() -> None:
    with pytest.raises(ValueError, match=r"dither: unknown key\(s\) \['sigm'\]"):
        DitherConfig.from_dict({"sigm": 0.1})
    with pytest.raises(ValueError, match="dither.sigma must be a finite number"):
        DitherConfig(sigma=math.nan)
    with pytest.raises(ValueError, match="dither.schedule 'cosine' needs the run length"):
        DitherConfig(sigma=0.1, schedule="cosine")
    assert DitherConfig(sigma=0.1, schedule="cosine", max_steps=10).make_schedule()(10, 10) == 0.01  # authors' floor


def test_resolved_config_writes_out_trl_defaults(tmp_path: Path) -> None:
    """scale_rewards / loss_type / beta are explicit in config.yaml even when the config leaves them to TRL."""
    raw = copy.deepcopy(TINY_TRAIN) | {"output_dir": str(tmp_path / "run")}
    for key in ("scale_rewards", "loss_type", "beta", "num_generations", "max_grad_norm"):
        raw["training"].pop(key, None)
    raw["training"]["per_device_train_batch_size"] = 8
    run = parse_config(raw)
    resolved = resolved_config(run, grpo_args(run))
    from trl import GRPOConfig

    trl_default = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=8)
    for key in ("scale_rewards", "loss_type", "beta", "num_generations", "max_grad_norm"):
        assert resolved["training"][key] == getattr(trl_default, key), key


def test_reward_weights_conflict_is_refused() -> None:
    with pytest.raises(ValueError, match="training.reward_weights conflicts with rewards\\[\\].weight"):
        config("--training.reward_weights=[2.0]")


def unbounded(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
    return [0.0] * len(completions)


def test_ratio_without_r_max_fails_before_training() -> None:
    with pytest.raises(ValueError, match=r"dither.ratio .*\['unbounded'\] declare none"):
        config(f"--rewards=[{__name__}:unbounded]", "--dither.sigma=null", "--dither.ratio=0.05")
    # declaring R_max in the config is enough
    with_max = config(
        f"--rewards=[{{name: '{__name__}:unbounded', max_reward: 2}}]", "--dither.sigma=null", "--dither.ratio=0.05"
    )
    from redit.config import build_rewards
    from redit.rewards.base import max_reward_of

    assert [max_reward_of(fn) for fn in build_rewards(with_max)] == [2.0]


def test_unknown_or_uncallable_reward_fails_before_training() -> None:
    with pytest.raises(ValueError, match=r"^rewards\[0\].name: unknown reward 'exact'"):
        config("--rewards=[exact]")
    with pytest.raises(ValueError, match=r"^rewards\[1\].name: cannot import 'no.such.module:fn'"):
        config("--rewards=[exact_answer, 'no.such.module:fn']")
    with pytest.raises(ValueError, match=r"^rewards\[0\].name: 'redit.presets:TINY_TRAIN' is not callable \(a dict\)"):
        config("--rewards=[redit.presets:TINY_TRAIN]")
    with pytest.raises(ValueError, match=r"^eval.reward: unknown reward 'exact'"):
        config("--eval.reward=exact")


def test_cli_reports_bad_input_without_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", f"--output_dir={tmp_path / 'run'}", "--dither.sigma=-1"]) == 2
    assert "redit train: error: dither.sigma must be a finite number >= 0" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    assert main(["train", f"--output_dir={tmp_path / 'run'}"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == "{}\n"


def test_exponent_floats_are_numbers_in_files_and_overrides(tmp_path: Path) -> None:
    """Plain YAML 1.1 reads ``5e-6`` as a string, which TRL would only reject at its first optimizer step."""
    path = tmp_path / "run.yaml"
    path.write_text("output_dir: out\nrewards: [exact_answer]\ntraining: {max_steps: 5, learning_rate: 5e-6}\n")
    assert load_config(path, []).training["learning_rate"] == 5e-6
    assert load_config(path, ["--training.learning_rate=2E-5"]).training["learning_rate"] == 2e-5
