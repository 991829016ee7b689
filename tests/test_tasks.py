"""Task loading: GSM8K and MATH from files and folders, gold extraction, prompt styles, registry and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from redit.rewards import REWARDS
from redit.tasks import TASKS, default_prompt_style, default_rewards, load_task
from redit.tasks.prompts import GSM8K_SYSTEM_PROMPT, MATH_INSTRUCTION, PROMPT_STYLES, R1_SYSTEM_PROMPT, build_prompt

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_loads_prompts_and_gold_answers():
    rows = load_task("gsm8k", str(DATA / "gsm8k_sample.jsonl"))
    assert len(rows) == 5
    assert set(rows.column_names) >= {"prompt", "answer", "question", "solution"}
    assert rows["answer"] == ["18", "3", "70000", "2125", "114200"]
    prompt = rows[0]["prompt"]
    assert prompt[0] == {"role": "system", "content": GSM8K_SYSTEM_PROMPT}
    assert prompt[1] == {"role": "user", "content": rows[0]["question"]}
    assert rows[0]["solution"].endswith("#### 18")


def test_gsm8k_one_shot_and_plain_prompts():
    one_shot = load_task("gsm8k", str(DATA / "gsm8k_sample.jsonl"), prompt_style="gsm8k_oneshot", limit=1)[0]["prompt"]
    assert [m["role"] for m in one_shot] == ["system", "user", "assistant", "user"]
    assert "<answer>\n7\n</answer>" in one_shot[2]["content"]
    plain = load_task("gsm8k", str(DATA / "gsm8k_sample.jsonl"), conversational=False, limit=2)
    assert len(plain) == 2
    assert plain[0]["prompt"].startswith(GSM8K_SYSTEM_PROMPT + "\n\n") and plain[0]["prompt"].endswith(
        plain[0]["question"]
    )


def test_math_loads_with_answer_field_and_instruction():
    rows = load_task("math", str(DATA / "math_sample.jsonl"))
    assert rows[1]["answer"] == "\\frac{14}{3}"
    (message,) = rows[0]["prompt"]
    assert message["role"] == "user" and message["content"] == f"{rows[0]['problem']}\n{MATH_INSTRUCTION}"
    r1 = load_task("math", str(DATA / "math_sample.jsonl"), prompt_style="r1", limit=1)[0]["prompt"]
    assert r1[0] == {"role": "system", "content": R1_SYSTEM_PROMPT}


def test_math_gold_falls_back_to_the_last_box(tmp_path: Path):
    rows = [
        {"problem": "p", "solution": "so \\boxed{1} no, \\boxed{\\frac{1}{2}}"},
        {"problem": "q", "solution": "\\boxed{3}", "answer": ""},
    ]
    loaded = load_task("math", str(write_jsonl(tmp_path / "m.jsonl", rows)))
    assert loaded["answer"] == ["\\frac{1}{2}", "3"]


def test_math_row_without_any_final_answer_is_an_error(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "m.jsonl", [{"problem": "p", "solution": "\\boxed{1}"}, {"problem": "q", "solution": "none"}]
    )
    with pytest.raises(ValueError, match="row 1 has no 'answer'"):
        load_task("math", str(path))


def test_parquet_and_folder_with_split(tmp_path: Path):
    rows = [json.loads(line) for line in (DATA / "gsm8k_sample.jsonl").read_text().splitlines()]
    Dataset.from_list(rows).to_parquet(str(tmp_path / "test.parquet"))
    from_file = load_task("gsm8k", str(tmp_path / "test.parquet"), limit=3)
    from_folder = load_task("gsm8k", str(tmp_path), split="test")
    assert from_file["answer"] == ["18", "3", "70000"]
    assert list(from_folder["answer"]) == list(from_file["answer"]) + ["2125", "114200"]
    with pytest.raises(FileNotFoundError, match="no 'train' split"):
        load_task("gsm8k", str(tmp_path), split="train")


def test_bad_input_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown task 'chess'; valid tasks: arithmetic, gsm8k, humaneval, math, mbpp"):
        load_task("chess", "x.jsonl")
    with pytest.raises(FileNotFoundError, match="data file not found: .*missing.jsonl"):
        load_task("gsm8k", str(tmp_path / "missing.jsonl"))
    wrong = write_jsonl(tmp_path / "w.jsonl", [{"problem": "p", "solution": "\\boxed{1}"}])
    with pytest.raises(ValueError, match="missing column\\(s\\) question, answer; found problem, solution"):
        load_task("gsm8k", str(wrong))
    with pytest.raises(ValueError, match="unknown prompt style 'chatty'"):
        load_task("gsm8k", str(DATA / "gsm8k_sample.jsonl"), prompt_style="chatty")
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(ValueError, match="b.jsonl:2: not a JSON object"):
        load_task("gsm8k", str(broken))


def test_registry_is_extensible_and_lazy(monkeypatch):
    assert TASKS["arithmetic"] == "redit.tasks.arithmetic"
    monkeypatch.setitem(TASKS, "gsm8k_copy", "redit.tasks.gsm8k")
    assert load_task("gsm8k_copy", str(DATA / "gsm8k_sample.jsonl"), limit=1)["answer"] == ["18"]
    assert default_rewards("gsm8k_copy") == default_rewards("gsm8k")
    assert default_prompt_style("math") == "math" and default_prompt_style("gsm8k") == "gsm8k"
    assert set(default_rewards("math")) <= set(REWARDS)


def test_every_prompt_style_builds_both_forms():
    for style in PROMPT_STYLES:
        messages = build_prompt("What is 2+2?", style)
        assert messages[-1] == {"role": "user", "content": messages[-1]["content"]} and "2+2" in messages[-1]["content"]
        assert build_prompt("What is 2+2?", style, conversational=False) == "\n\n".join(m["content"] for m in messages)


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data (not in a fresh clone)")
def test_shared_data_loads_in_full():
    gsm8k = load_task("gsm8k", str(SHARED / "gsm8k"), split="test")
    assert len(gsm8k) == 1319 and all(a.lstrip("-").isdigit() for a in gsm8k["answer"])
    math500 = load_task("math", str(SHARED / "math500"), split="test")
    assert len(math500) == 500 and all(math500["answer"])
