"""verl's real trainer on CPU: ``python -m verl.trainer.main_ppo`` with ``algorithm.adv_estimator=grpo_redit``.

Three training steps on the offline tiny model through verl's own driver, Ray actors, TransferQueue, agent loop,
reward loop and FSDP2 actor; ``tests/verl_cpu`` adds the CPU platform and the Hugging Face ``generate`` rollout that
verl 0.9 lacks. Every completion scores the same (``tests/verl_cpu/reward.py``), so GRPO's clean advantages are
exactly zero and any non-zero advantage is ReDit's noise. Runs in ``make test-verl``.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytest.importorskip("verl", reason="verl is not installed here; `make test-verl` runs these in .venv-verl")

import pandas as pd

from redit import advantages
from redit.dither import Dither, DitherConfig
from redit.tiny import save_tiny_model

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
REWARD = TESTS / "verl_cpu" / "reward.py"
SCORE = runpy.run_path(str(REWARD))["SCORE"]
MODULES = "redit.integrations.verl,verl_cpu"
DATA_SOURCE = "tiny_arithmetic"
STEPS, PROMPTS, GROUP = 3, 4, 4
SEED, SIGMA = 7, 0.1
RAY_START_TIMEOUT = "The current node timed out during startup"
ADVANTAGE_LOG = "REDIT_TEST_ADVANTAGE_LOG"  # tests/verl_cpu/advantage_log.py


@dataclass(frozen=True)
class Run:
    """One verl run: its metrics by step (verl's file logger) and, for ReDit estimators, each step's recorded rows."""

    metrics: dict[int, dict[str, float]]
    advantages: dict[int, dict[str, list]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The tiny model, and train/validation parquet files in verl's RL dataset format."""
    root = tmp_path_factory.mktemp("verl_e2e")
    save_tiny_model(root / "model")
    rows = [
        {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": f"What is {i % 7 + 1} + {i % 5 + 2}?"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(i % 7 + i % 5 + 3)},
            "extra_info": {"split": "train", "index": i},
        }
        for i in range(4 * PROMPTS)
    ]
    pd.DataFrame(rows).to_parquet(root / "train.parquet")
    pd.DataFrame(rows[:PROMPTS]).to_parquet(root / "val.parquet")
    return root


def cpu_overrides(root: Path, pythonpath: str) -> list[str]:
    """What the CPU shims need from verl's config, then the tiny run's sizes."""
    return [
        # Ray: fake GPUs for verl's GPU bundles, one TransferQueue storage unit, the plug-ins in every actor
        "+ray_kwargs.ray_init.num_cpus=16",
        "+ray_kwargs.ray_init.num_gpus=1",
        "+ray_kwargs.ray_init.include_dashboard=False",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES='{MODULES}'",
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM=cpu",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH='{pythonpath}'",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        "trainer.device=cpu",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        # model and engines: no flash-attention, FSDP2 (FSDP1 needs an accelerator), the hf rollout
        f"actor_rollout_ref.model.path={root / 'model'}",
        "actor_rollout_ref.model.use_remove_padding=False",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.actor.use_torch_compile=False",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=False",
        "actor_rollout_ref.rollout.name=hf",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.calculate_log_probs=False",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        f"reward.custom_reward_function.path={REWARD}",
        # the tiny run
        f"data.train_files={root / 'train.parquet'}",
        f"data.val_files={root / 'val.parquet'}",
        f"data.train_batch_size={PROMPTS}",
        "data.max_prompt_length=48",
        "data.max_response_length=16",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.rollout.n={GROUP}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={PROMPTS}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={PROMPTS * GROUP}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={PROMPTS * GROUP}",
        "actor_rollout_ref.actor.optim.lr=1e-4",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "algorithm.use_kl_in_reward=False",
        f"trainer.total_training_steps={STEPS}",
        f"trainer.test_freq={STEPS}",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
    ]


def train(root: Path, name: str, *overrides: str) -> Run:
    """Run verl's trainer in a fresh process (and Ray cluster); return its metrics and recorded advantages."""
    metrics = root / f"{name}.jsonl"
    advantages = root / f"{name}.advantages.jsonl"
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "VERL_USE_EXTERNAL_MODULES": MODULES,
        "VERL_PLATFORM": "cpu",
        "VERL_FILE_LOGGER_PATH": str(metrics),
        "HYDRA_FULL_ERROR": "1",
    }
    record = f"+ray_kwargs.ray_init.runtime_env.env_vars.{ADVANTAGE_LOG}='{advantages}'"
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *cpu_overrides(root, pythonpath), record, *overrides]
    run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1200, check=False)
    if RAY_START_TIMEOUT in run.stderr:  # Ray gives its node a fixed 30 s to start; an overloaded machine can miss it
        run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert run.returncode == 0, f"{name}: rc {run.returncode}\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    by_step: dict[int, dict[str, float]] = {}
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        by_step.setdefault(record["step"], {}).update(record["data"])
    assert sorted(by_step) == list(range(STEPS + 1)), f"{name}: logged steps {sorted(by_step)}"
    rows = [json.loads(line) for line in advantages.read_text().splitlines()] if advantages.exists() else []
    return Run(by_step, {row["step"]: row for row in rows})


@pytest.fixture(scope="module")
def redit_run(inputs) -> Run:
    return train(
        inputs,
        "grpo_redit",
        "algorithm.adv_estimator=grpo_redit",
        f"+algorithm.redit_sigma={SIGMA}",
        f"+algorithm.redit_seed={SEED}",
    )


@pytest.fixture(scope="module")
def grpo_run(inputs) -> Run:
    return train(inputs, "grpo", "algorithm.adv_estimator=grpo")


def test_grpo_redit_learns_from_noise_when_every_reward_is_equal(redit_run):
    for step in range(1, STEPS + 1):
        metrics = redit_run.metrics[step]
        assert metrics["critic/score/min"] == metrics["critic/score/max"] == SCORE, step  # logged rewards clean
        assert metrics["critic/advantages/max"] > 0 > metrics["critic/advantages/min"], step
        assert metrics["actor/grad_norm"] > 0, step


def test_plain_grpo_gets_exactly_zero_advantages(grpo_run):
    for step in range(1, STEPS + 1):
        metrics = grpo_run.metrics[step]
        assert metrics["critic/advantages/max"] == metrics["critic/advantages/min"] == 0.0, step
        assert metrics["actor/grad_norm"] == 0.0, step


def test_noise_is_reproducible_from_the_seed(redit_run):
    """ReDit draws the step's noise from (seed, global step) alone and assigns it in batch-row order: every advantage
    verl trained on is recomputed here, outside verl, from the seed and the rows' groups as the run recorded them
    (verl's ``balance_batch`` reorders rows by length, so groups are interleaved)."""
    dither = Dither(DitherConfig(sigma=SIGMA, seed=SEED, granularity="total"))
    assert sorted(redit_run.advantages) == list(range(1, STEPS + 1))
    for step, row in redit_run.advantages.items():
        groups = row["groups"]
        assert sorted(groups.count(group) for group in set(groups)) == [GROUP] * PROMPTS, step
        rewards = torch.tensor(row["rewards"])
        assert torch.equal(rewards, torch.full_like(rewards, SCORE)), step
        expected = advantages.grpo(rewards, groups, convention="verl", dither=dither, step=step).advantages
        assert row["advantages"] == pytest.approx(expected.tolist(), abs=1e-5), step
        metrics = redit_run.metrics[step]  # what verl logged is what it trained on
        assert metrics["critic/advantages/max"] == pytest.approx(max(row["advantages"]), abs=1e-5), step
        assert metrics["critic/advantages/min"] == pytest.approx(min(row["advantages"]), abs=1e-5), step


def test_validation_scores_are_clean(redit_run):
    for step in (0, STEPS):  # before training and after the last step
        assert redit_run.metrics[step][f"val-core/{DATA_SOURCE}/acc/mean@1"] == SCORE, step
        assert redit_run.metrics[step][f"val-aux/{DATA_SOURCE}/reward/mean@1"] == SCORE, step
