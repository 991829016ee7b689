"""Run under ``accelerate launch --multi_gpu --num_processes 2`` with no GPU visible (gloo): one generation call of ``ReditGRPOTrainer`` per noise mode
on the tiny model, with groups split across the processes; each process writes what it computed to
``<out>/rank<r>.json`` (see ``tests/test_distributed.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from test_trl_trainer import MODES, WEIGHTS

from redit.config import load_config
from redit.presets import TINY_TRAIN
from redit.train import build_trainer

PER_PROCESS, GROUP = 6, 4  # 12 completions in 3 groups: the middle group is split across the two processes


def main(out: Path) -> None:
    results = {}
    for mode, dither in MODES.items():
        config = load_config(
            None,
            [
                f"--output_dir={out / mode}",
                "--model.warm_start=null",
                f"--training.per_device_train_batch_size={PER_PROCESS}",
                f"--training.num_generations={GROUP}",
                "--training.max_completion_length=4",
                (
                    f"--rewards=[{{name: 'test_trl_trainer:has_digit', weight: {WEIGHTS[0]}}}, "
                    f"{{name: 'test_trl_trainer:length', weight: {WEIGHTS[1]}}}]"
                ),
                "--eval.every=0",
                dither,
            ],
            default=TINY_TRAIN,
        )
        trainer, _ = build_trainer(config)
        rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
        rows = trainer.train_dataset.select(range(PER_PROCESS * world // GROUP))
        inputs = [dict(row) for row in rows for _ in range(GROUP)][rank * PER_PROCESS : (rank + 1) * PER_PROCESS]
        torch.manual_seed(rank)
        trainer.model.train()
        output = trainer._generate_and_score_completions(inputs)
        weights = trainer.reward_weights.double()
        results[mode] = {
            "local": output["advantages"].tolist(),
            "all": list(trainer._logs["advantages"])[-PER_PROCESS * world :],
            "total": (trainer._redit_rewards.double().cpu() * weights).sum(dim=1).tolist(),
            "sigma": trainer._metrics["train"]["redit/sigma"][-1],
        }
    (out / f"rank{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
