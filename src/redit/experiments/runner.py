"""Runs an experiment matrix as separate processes, as many at once as there are workers.

Each run is ``python -m redit.experiments.runner REQUEST.json`` with torch threads = cores / workers; its output goes
to ``logs/<arm>-seed<k>.log``. A crashed run leaves ``error.txt`` in its run directory and the others go on.
Rerunning skips finished runs (same arm config and seed), resumes interrupted ones from their last checkpoint and
retries failed ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from redit.experiments.spec import ExperimentSpec, RunRequest


@dataclass
class Outcome:
    request: RunRequest
    status: str  # "skipped" (already done), "done" or "failed"
    seconds: float = 0.0  # wall time of the run's process


def run_dir(request: RunRequest) -> Path:
    return Path(request.raw["output_dir"])


def _request_file(spec: ExperimentSpec, request: RunRequest) -> Path:
    return spec.output_dir / "requests" / f"{request.arm}-seed{request.seed}.json"


def check_keys(spec: ExperimentSpec) -> None:
    """Refuse to mix results: a run recorded under another config for the same arm and seed is an error."""
    for request in spec.requests():
        path = _request_file(spec, request)
        if path.exists() and json.loads(path.read_text())["key"] != request.key:
            raise ValueError(
                f"{run_dir(request)} was run with a different config for arm '{request.arm}'; "
                "choose another --output-dir or rename the arm"
            )


def prepare_models(spec: ExperimentSpec) -> None:
    """Build (or find cached) every distinct starting model once, before the parallel runs need it."""
    from redit.models import resolve_model

    seen = set()
    for request in spec.requests():
        config = request.config()
        key = json.dumps([config.model.__dict__, config.data.__dict__], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            resolve_model(config.model, config.data)


def run_matrix(spec: ExperimentSpec, show_progress: bool = True) -> list[Outcome]:
    """Run every (arm, seed); returns each run's outcome."""
    check_keys(spec)
    (spec.output_dir / "logs").mkdir(parents=True, exist_ok=True)
    (spec.output_dir / "requests").mkdir(parents=True, exist_ok=True)
    prepare_models(spec)
    requests = spec.requests()
    outcomes = [Outcome(r, "skipped") for r in requests if (run_dir(r) / "DONE").exists()]
    pending = [r for r in requests if not (run_dir(r) / "DONE").exists()]
    threads = max(1, len(os.sched_getaffinity(0)) // spec.workers)
    running: dict[subprocess.Popen, tuple[RunRequest, float]] = {}
    bar = tqdm(total=len(requests), initial=len(outcomes), desc="runs", unit="run", disable=not show_progress)
    while pending or running:
        while pending and len(running) < spec.workers:
            request = pending.pop(0)
            running[_launch(spec, request, threads)] = (request, time.perf_counter())
        time.sleep(0.2)
        for process in [p for p in running if p.poll() is not None]:
            request, start = running.pop(process)
            status = _finish(spec, request, process.returncode)
            outcomes.append(Outcome(request, status, time.perf_counter() - start))
            bar.update(1)
            bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))
    bar.close()
    return outcomes


def _launch(spec: ExperimentSpec, request: RunRequest, threads: int) -> subprocess.Popen:
    path = _request_file(spec, request)
    path.write_text(json.dumps({"key": request.key, "arm": request.arm, "seed": request.seed, "raw": request.raw}))
    (run_dir(request) / "error.txt").unlink(missing_ok=True)
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "REDIT_TORCH_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    log = (spec.output_dir / "logs" / f"{request.arm}-seed{request.seed}.log").open("a")
    return subprocess.Popen(
        [sys.executable, "-m", "redit.experiments.runner", str(path)], stdout=log, stderr=subprocess.STDOUT, env=env
    )


def _finish(spec: ExperimentSpec, request: RunRequest, returncode: int) -> str:
    if returncode == 0 and (run_dir(request) / "DONE").exists():
        return "done"
    log = spec.output_dir / "logs" / f"{request.arm}-seed{request.seed}.log"
    tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
    run_dir(request).mkdir(parents=True, exist_ok=True)
    (run_dir(request) / "error.txt").write_text(
        f"exit code {returncode}; last log lines ({log}):\n" + "\n".join(tail) + "\n"
    )
    return "failed"


def _run_one(request_path: Path) -> None:
    """Worker process: train one run, resuming it if it was interrupted."""
    import torch

    from redit.train import train

    torch.set_num_threads(int(os.environ.get("REDIT_TORCH_THREADS", "1")))
    request = RunRequest(**{k: v for k, v in json.loads(request_path.read_text()).items() if k != "key"})
    out = run_dir(request)
    resume = (out / "config.yaml").exists()
    train(request.config(), resume=resume, overwrite=not resume)


if __name__ == "__main__":
    _run_one(Path(sys.argv[1]))
