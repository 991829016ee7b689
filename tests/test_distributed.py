"""Two processes on CPU (``accelerate launch --multi_gpu --num_processes 2`` with no GPU visible: gloo; note that
``--cpu`` would start one process only) with the tiny model: the advantages every
process computes are identical and follow the per-process keyed noise; a 2-process run resumed from a checkpoint
repeats the uninterrupted one; held-out evaluation runs on both processes and covers every prompt once.

Not tested here: FSDP / ZeRO-3 sharding (CPU FSDP is not supported by this torch/accelerate set-up); held-out
evaluation is written for it (every process generates, ``synced_gpus``), see README."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_trl_trainer import MODES, WEIGHTS

from redit.callbacks import HeldoutEval, read_jsonl
from redit.config import load_config
from redit.dither import Dither
from redit.integrations.trl_trainer import gathered_advantages
from redit.models import resolve_model
from redit.presets import TINY_TRAIN
from redit.rewards import get_reward

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2", "--num_machines=1"]
LAUNCH += ["--mixed_precision=no", "--dynamo_backend=no"]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redit-cache")


def launch(cache: Path, *args: str) -> None:
    env = os.environ | {"REDIT_CACHE": str(cache), "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([*LAUNCH, *args], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_process_computes_the_same_advantages_from_keyed_noise(cache: Path, tmp_path: Path) -> None:
    launch(cache, str(ROOT / "tests" / "distributed_check.py"), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for mode in ranks[0]:
        first, second = ranks[0][mode], ranks[1][mode]
        assert first["all"] == second["all"] and first["total"] == second["total"], mode
        assert first["all"] == pytest.approx(first["local"] + second["local"], abs=1e-6), mode
        if mode == "off":
            assert first["sigma"] == 0.0
            continue
        if mode in ("adaptive", "total"):
            continue  # drawn under the same keys; covered by the identical advantages above
        total = torch.tensor(first["total"], dtype=torch.float64)
        dither = Dither(load_config(None, ["--output_dir=x", MODES[mode]], default=TINY_TRAIN).dither)
        # each process's completions carry noise keyed by (call 0, its rank, function): independent draws
        draws = [sum(w * dither.noise(6, 0, (0, rank, i)).double() for i, w in enumerate(WEIGHTS)) for rank in (0, 1)]
        assert not torch.allclose(draws[0], draws[1])
        expected = gathered_advantages(total, torch.cat(draws), 4, "group", dither.config, first["sigma"])
        assert first["all"] == pytest.approx(expected.tolist(), abs=1e-5), mode


def train_args(out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "redit.cli",
        "train",
        f"--output_dir={out}",
        "--model.warm_start.steps=5",
        "--training.per_device_train_batch_size=8",
        "--training.num_generations=4",
        "--training.max_steps=2",
        "--training.save_steps=1",
        "--eval.every=1",
        "--eval.limit=7",
        "--dither={sigma: 0.1, mode: flat_only}",
        *extra,
    ]


def test_two_process_run_resumes_exactly_and_evaluates_on_both(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    launch(cache, *train_args(out))
    metrics, evals = read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "eval.jsonl")
    assert [r["step"] for r in metrics] == [1, 2] and [r["step"] for r in evals] == [0, 1, 2]
    shutil.rmtree(out / "checkpoint-2")
    shutil.rmtree(out / "final")
    (out / "DONE").unlink()
    launch(cache, *train_args(out, "--resume"))
    resumed = read_jsonl(out / "metrics.jsonl")
    assert resumed[0] == metrics[0]
    for key in ("reward_clean", "loss", "grad_norm"):
        assert resumed[1][key] == pytest.approx(metrics[1][key], abs=1e-6), key
    assert read_jsonl(out / "eval.jsonl") == evals

    # greedy accuracy at step 0, split over two processes, equals one process's over the same 7 prompts
    config = load_config(None, train_args(out)[3:], default=TINY_TRAIN)
    monkeypatch.setenv("REDIT_CACHE", str(cache))
    path = resolve_model(config.model, config.data)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    heldout = config.data.load(config.data.eval_split, 7)
    tokenizer = AutoTokenizer.from_pretrained(path)
    single = HeldoutEval(
        tmp_path / "x.jsonl",
        heldout["prompt"],
        heldout["answer"],
        get_reward("exact_answer"),
        tokenizer,
        every=1,
        max_new_tokens=4,
    )
    greedy = single.accuracy(AutoModelForCausalLM.from_pretrained(path), sample=False, seed=0)
    assert evals[0]["accuracy_greedy"] == pytest.approx(greedy)
