"""Tiny-model GRPO step time in one process vs two on CPU (``accelerate launch --multi_gpu --num_processes 2`` with no
GPU visible: gloo; ``--cpu`` would start one process).

Both run ``redit train`` on the ``tiny-cpu`` preset with the same global batch (64 completions per step: 64 on one
process, 32 on each of two). A step's time is the difference between the wall times of a ``--long`` and a ``--short``
run divided by the extra steps, which cancels start-up, model loading and the end-of-run save. The warm-started model
is built once first (cached under ``$REDIT_CACHE``).

    python benchmarks/bench_processes.py [--short 2] [--long 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines=1"]
LAUNCH += ["--mixed_precision=no", "--dynamo_backend=no"]


def run_seconds(processes: int, steps: int, out: Path) -> float:
    """Wall time of one ``redit train`` run of ``steps`` steps on ``processes`` processes."""
    train = ["-m", "redit.cli", "train", f"--output_dir={out}", f"--training.max_steps={steps}"]
    train += [f"--training.per_device_train_batch_size={64 // processes}", "--eval.every=0", "--overwrite"]
    start = time.perf_counter()
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    launch = [*LAUNCH, *(["--multi_gpu"] if processes > 1 else []), f"--num_processes={processes}"]
    subprocess.run([*launch, *train], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=2, help="steps of the short run")
    parser.add_argument("--long", type=int, default=8, help="steps of the long run")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_seconds(1, 1, Path(tmp) / "warm")  # builds and caches the warm-started model
        for processes in (1, 2):
            short = run_seconds(processes, options.short, Path(tmp) / f"p{processes}-short")
            long = run_seconds(processes, options.long, Path(tmp) / f"p{processes}-long")
            per_step = (long - short) / (options.long - options.short)
            print(
                f"{processes} process(es): {per_step:.3f} s/step (runs of {short:.1f} s and {long:.1f} s)", flush=True
            )


if __name__ == "__main__":
    main()
