"""Issue 11's careless-user rows: every wrong type, unknown key and bad value is one line naming the dotted field,
all of them at once, before anything is written or deleted (the full TRL ``GRPOConfig`` included)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from redit.cli import main
from redit.config import apply_overrides, load_config, parse_config
from redit.presets import TINY_TRAIN


def config(*overrides: str) -> object:
    return load_config(None, ["--output_dir=unused", *overrides], default=TINY_TRAIN)


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("--model.tiny.foo=1", "model.tiny.foo: unknown key; known: hidden_size, intermediate_size, "),
        ("--data.params.foo=1", "data.params.foo: unknown key; known: digits, operators, heldout_fraction, seed"),
        ("--model.tiny=big", "model.tiny: expected a mapping, got 'big'"),
        ("--model.tiny.hidden_size=big", "model.tiny.hidden_size: expected an integer, got 'big'"),
        ("--model.tiny.num_attention_heads=3", "model.tiny: hidden_size (128) must be a multiple of num_attention_h"),
        ("--training.num_generations='8'", "training.num_generations: expected an integer, got '8'"),
        ("--training.save_steps=often", "training.save_steps: expected a number, got 'often'"),
        ("--training.learning_rate=fast", "training.learning_rate: expected a number, got 'fast'"),
        ("--training.report_to=5", "training.report_to: expected a string or a list, got 5"),
        ("--eval.every=x", "eval.every: expected an integer, got 'x'"),
        ("--eval.k=0", "eval.k: expected a value > 0, got 0"),
        ("--eval.limit=-5", "eval.limit: expected a value > 0, got -5"),
        ("--data.limit=x", "data.limit: expected an integer, got 'x'"),
        ("--data.params.digits=9", "data.params.digits: expected a value <= 4, got 9"),
        ("--training=[1, 2]", "training: expected a mapping, got [1, 2]"),
        ("--training=5", "training: expected a mapping, got 5"),
        ("--rewards=[{name: exact_answer, weight: heavy}]", "rewards[0].weight: expected a number, got 'heavy'"),
        ("--model.dtype=int8", "model.dtype: expected 'auto', 'float32', 'bfloat16' or 'float16', got 'int8'"),
        ("--output_dir=[a, b]", "output_dir: expected a string, got ['a', 'b']"),
        ("--training.max_steps=null", "training.max_steps: required: the run length in steps (TRL would otherwise"),
        ("--training=null", "training.max_steps: required"),
        # TRL's own checks, run by building the GRPOConfig at parse time
        ("--training.per_device_train_batch_size=6", "training: generation_batch_size (6) must be divisible by num"),
    ],
)
def test_each_bad_value_is_one_line_naming_the_field(override: str, line: str) -> None:
    with pytest.raises(ValueError) as error:
        config(override)
    assert str(error.value).startswith(line)
    assert "\n" not in str(error.value)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ValueError) as error:
        config(
            "--training.num_generations=x", "--eval.k=0", "--model.tiny.foo=1", "--dither.sigma=-1", "--data.limit=x"
        )
    lines = str(error.value).splitlines()
    assert lines[0] == "5 problems in the config:"
    assert sorted(line.strip().split(":")[0].split(" ")[0] for line in lines[1:]) == [
        "data.limit",
        "dither.sigma",
        "eval.k",
        "model.tiny.foo",
        "training.num_generations",
    ]


def test_a_config_without_run_length_is_refused(tmp_path: Path) -> None:
    """TRL's default is 3 epochs (475 steps of the tiny preset): a missing training section must not start them."""
    raw = copy.deepcopy(TINY_TRAIN) | {"output_dir": str(tmp_path)}
    del raw["training"]
    with pytest.raises(ValueError, match=r"^training.max_steps: required"):
        parse_config(raw)


def test_config_yaml_records_sections_as_written() -> None:
    """``config.yaml`` of a run (compared on ``--resume``) keeps model.tiny / warm_start as the user gave them."""
    out = config().to_dict()
    assert out["model"]["tiny"] == TINY_TRAIN["model"]["tiny"]
    assert out["model"]["warm_start"] == TINY_TRAIN["model"]["warm_start"]
    assert out["data"]["params"] == TINY_TRAIN["data"]["params"]
    assert parse_config(yaml.safe_load(yaml.safe_dump(out))).to_dict() == out


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("output_dir: x\ntraining:\n\tmax_steps: 3\n", ":3:1: invalid YAML", "indent YAML with spaces, not tabs"),
        ("output_dir: x\nrewards: [exact_answer\n", ":3:1: invalid YAML", "expected ',' or ']'"),
        ("output_dir: x\n  model: {}\n", ":2:8: invalid YAML", "mapping values are not allowed here"),
    ],
)
def test_yaml_errors_name_the_file_and_line(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_config(path, [])
    assert str(error.value).startswith(f"{path}{where}") and problem in str(error.value)


def test_override_values_name_the_override() -> None:
    with pytest.raises(ValueError, match=r"^override '--training.max_steps=\[3': invalid YAML: expected ',' or ']'"):
        apply_overrides({}, ["--training.max_steps=[3"])


def test_overrides_take_a_separate_value() -> None:
    raw = apply_overrides({}, ["--output_dir", "runs/x", "--training.max_steps", "3", "--dither.sigma=0.1"])
    assert raw == {"output_dir": "runs/x", "training": {"max_steps": 3}, "dither": {"sigma": 0.1}}


def test_cli_bad_config_fails_before_the_output_dir_is_touched(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Config errors come before ``--overwrite`` deletes anything and before config.yaml is written."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    bad = ["--eval.k=0", "--training.learning_rate", "fast", "--overwrite"]
    assert main(["train", "--output_dir", str(out), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("redit train: error: 2 problems in the config:")
    assert "training.learning_rate: expected a number, got 'fast'" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    fresh = tmp_path / "fresh"
    assert main(["train", "--output_dir", str(fresh), "--training.per_device_train_batch_size=6"]) == 2
    assert not fresh.exists()  # so the corrected rerun starts cleanly
    assert main(["train", f"--output_dir={fresh}", "--training=5"]) == 2
    assert "redit train: error: training: expected a mapping, got 5" in capsys.readouterr().err


def test_existing_output_dir_message_suggests_a_form_the_cli_accepts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    assert main(["train", "--output_dir", str(out)]) == 2  # the form the message suggests
    err = capsys.readouterr().err
    assert str(out) in err and "--output_dir" in err
    assert (out / "metrics.jsonl").read_text() == "{}\n"
