"""Kill a tiny ``redit train`` with SIGKILL at random moments, resume it each time, compare with an uninterrupted run.

    python benchmarks/kill_loop.py [--kills 20] [--seed 0] [--keep DIR]

The kills cycle through three kinds of random moment: a random time in the first half of an uninterrupted run
(imports, model loading, the first steps), a random point within a step 1-3 steps after the resumed one (generation,
rewards, evaluation, logging), and a random point while a checkpoint is being written (``checkpoint.partial/`` exists).
After the last kill the run is resumed to the end. Its ``metrics.jsonl`` must have the uninterrupted run's steps and values (floats within 1e-6)
and its ``eval.jsonl`` must be equal. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redit.atomic import read_jsonl
from redit.rundir import STAGING, RunDir

ARGS = [
    "--model.tiny.hidden_size=32",
    "--model.tiny.intermediate_size=64",
    "--model.tiny.num_hidden_layers=2",
    "--model.warm_start.steps=5",
    "--training.per_device_train_batch_size=16",
    "--training.num_generations=4",
    "--training.max_steps=80",
    "--training.save_steps=2",
    "--eval.every=3",
    "--eval.limit=8",
    "--eval.k=2",
]
TOLERANCE = 1e-6


def command(out: Path) -> list[str]:
    """``redit train`` as the compare runner starts it: resume once config.yaml exists, else start (over)."""
    mode = ["--resume"] if RunDir(out).config.exists() else ["--overwrite"]
    return [sys.executable, "-m", "redit.cli", "train", f"--output_dir={out}", *ARGS, *mode]


def start(out: Path, log: Path) -> subprocess.Popen:
    with log.open("ab") as handle:
        return subprocess.Popen(command(out), stdout=handle, stderr=subprocess.STDOUT)


def fresh(path: Path, since: float) -> bool:
    """``path`` was written by the current attempt (a killed attempt leaves ``checkpoint.partial/`` and rows behind)."""
    try:
        return path.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def kill_once(out: Path, log: Path, rng: random.Random, kind: str, horizon: float) -> dict[str, Any]:
    """Start (or resume) the run and SIGKILL it at a random moment of ``kind``; what was on disk when it died.

    ``time``: uniform in the first half of an uninterrupted run's duration (start-up, model loading, early steps);
    ``step``: within a step, 1-3 steps after the resumed one; ``save``: while a checkpoint is being written.
    """
    run = RunDir(out)
    checkpoint = run.latest_checkpoint()
    target = (int(checkpoint.name.split("-")[1]) if checkpoint else 0) + rng.randint(1, 3)
    since, process, began = time.time(), start(out, log), time.monotonic()
    deadline = began + (rng.uniform(0.0, horizon / 2) if kind == "time" else 3 * horizon)
    while time.monotonic() < deadline and process.poll() is None:
        if kind == "save" and fresh(out / STAGING, since):
            time.sleep(rng.uniform(0.0, 0.05))
            break
        if kind == "step" and fresh(run.metrics, since) and max_step(run.metrics) >= target:
            time.sleep(rng.uniform(0.0, 0.3))
            break
        time.sleep(0.005)
    saving = fresh(out / STAGING, since)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = run.latest_checkpoint()
    return {
        "kind": kind,
        "after_s": round(time.monotonic() - began, 2),
        "killed": process.returncode == -signal.SIGKILL,
        "while_saving": saving,
        "checkpoint": checkpoint.name if checkpoint else None,
        "last_row": max_step(run.metrics),
    }


def max_step(path: Path) -> int:
    return max((r["step"] for r in read_jsonl(path)), default=0)


def differences(reference: list[dict[str, Any]], resumed: list[dict[str, Any]], exact: bool) -> list[str]:
    """Where ``resumed`` differs from ``reference`` (floats within TOLERANCE unless ``exact``)."""
    if [r.get("step") for r in reference] != [r.get("step") for r in resumed]:
        return [f"steps {[r.get('step') for r in reference]} != {[r.get('step') for r in resumed]}"]
    found = []
    for ref, new in zip(reference, resumed, strict=True):
        for key in sorted(set(ref) | set(new)):
            a, b = ref.get(key), new.get(key)
            close = isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, abs_tol=TOLERANCE)
            if a != b and (exact or not close):
                found.append(f"step {ref['step']} {key}: {a} != {b}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="redit-kill-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("REDIT_CACHE", str(root / "cache"))
    rng = random.Random(args.seed)

    reference, interrupted = root / "reference", root / "interrupted"
    began = time.monotonic()
    subprocess.run(command(reference), check=True, capture_output=True)
    horizon = time.monotonic() - began
    print(f"uninterrupted run: {horizon:.1f} s", flush=True)

    kills = []
    while len(kills) < args.kills and RunDir(interrupted).status() != "done":
        kind = ("time", "step", "save")[len(kills) % 3]
        kill = kill_once(interrupted, root / "interrupted.log", rng, kind, horizon)
        if kill["killed"]:
            kills.append(kill)
            print(f"kill {len(kills):2d}: {json.dumps(kill)}", flush=True)
    if len(kills) < args.kills:
        print(f"the run finished after {len(kills)} kills; rerun with a longer --training.max_steps", file=sys.stderr)
    final = subprocess.run(command(interrupted), check=False, capture_output=True, text=True)
    if final.returncode != 0:
        print(final.stdout[-2000:], final.stderr[-2000:], file=sys.stderr)
        return 1
    problems = differences(read_jsonl(reference / "metrics.jsonl"), read_jsonl(interrupted / "metrics.jsonl"), False)
    problems += differences(read_jsonl(reference / "eval.jsonl"), read_jsonl(interrupted / "eval.jsonl"), True)
    saving = sum(k["while_saving"] for k in kills)
    print(f"{len(kills)} kills ({saving} while a checkpoint was being written); {len(problems)} differences")
    for problem in problems[:20]:
        print("  " + problem)
    return 1 if problems or len(kills) < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
