"""Runs an experiment matrix as separate processes, as many at once as there are workers.

Each run is ``python -m redit.experiments.runner REQUEST.json`` with torch threads = cores / workers, logging to
its file under ``logs/`` (paths: :class:`redit.rundir.ExperimentDir`). The runs are children of this process: they
share its process group (Ctrl-C reaches them), are stopped when it is interrupted (SIGINT, SIGTERM) and die with it
(Linux ``PR_SET_PDEATHSIG``, so even a ``kill -9`` of the parent leaves no trainer behind). A crashed run gets an
``error.txt`` whose first line is its error and the others go on. Rerunning skips finished runs (same arm config and
seed), resumes interrupted ones from their newest complete checkpoint and retries failed ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from redit.atomic import write_atomic
from redit.experiments.spec import ExperimentSpec, RunRequest
from redit.rundir import ExperimentDir, RunDir, exception_line

PARENT_ENV = "REDIT_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 30.0


@dataclass
class Outcome:
    request: RunRequest
    status: str  # "skipped" (already done), "done" or "failed"
    seconds: float = 0.0  # wall time of the run's process


@dataclass
class _Child:
    request: RunRequest
    process: subprocess.Popen
    log_offset: int  # where this attempt's output starts in the (appended) log
    start: float


def run_dir(request: RunRequest) -> RunDir:
    return RunDir(Path(request.raw["output_dir"]))


def check_keys(spec: ExperimentSpec) -> None:
    """Refuse to mix results: a run recorded under another config for the same arm and seed is an error."""
    experiment = ExperimentDir(spec.output_dir)
    for request in spec.requests():
        path = experiment.request(request.arm, request.seed)
        if path.exists() and json.loads(path.read_text())["key"] != request.key:
            raise ValueError(
                f"{run_dir(request).path} was run with a different config for arm '{request.arm}'; "
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
    """Run every (arm, seed); returns each run's outcome. Interrupted (SIGINT/SIGTERM), it stops its runs first."""
    check_keys(spec)
    experiment = ExperimentDir(spec.output_dir)
    requests = spec.requests()
    experiment.prepare()
    prepare_models(spec)
    outcomes = [Outcome(r, "skipped") for r in requests if run_dir(r).status() == "done"]
    pending = [r for r in requests if run_dir(r).status() != "done"]
    threads = max(1, len(os.sched_getaffinity(0)) // spec.workers)
    running: list[_Child] = []
    bar = tqdm(total=len(requests), initial=len(outcomes), desc="runs", unit="run", disable=not show_progress)
    with _stopping(running):
        while pending or running:
            while pending and len(running) < spec.workers:
                running.append(_launch(experiment, pending.pop(0), threads))
            time.sleep(0.2)
            for child in [c for c in running if c.process.poll() is not None]:
                running.remove(child)
                status = _finish(experiment, child)
                outcomes.append(Outcome(child.request, status, time.perf_counter() - child.start))
                bar.update(1)
                bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))
    bar.close()
    return outcomes


@contextlib.contextmanager
def _stopping(running: list[_Child]) -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C; on any interruption the running children are stopped before it propagates."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except BaseException:
        for child in running:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + _STOP_GRACE_S
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _launch(experiment: ExperimentDir, request: RunRequest, threads: int) -> _Child:
    path = experiment.request(request.arm, request.seed)
    write_atomic(path, json.dumps({"key": request.key, "arm": request.arm, "seed": request.seed, "raw": request.raw}))
    run_dir(request).clear_failure()
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "REDIT_TORCH_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        PARENT_ENV: str(os.getpid()),
    }
    with experiment.log(request.arm, request.seed).open("ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "redit.experiments.runner", str(path)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    return _Child(request, process, offset, time.perf_counter())


def _finish(experiment: ExperimentDir, child: _Child) -> str:
    run, code = run_dir(child.request), child.process.returncode
    if code == 0 and run.status() == "done":
        return "done"
    log = experiment.log(child.request.arm, child.request.seed)
    text = log.read_bytes()[child.log_offset :].decode(errors="replace") if log.exists() else ""
    exit_reason = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    tail = [line for line in re.split(r"[\r\n]", text) if line.strip()][-40:]
    run.mark_failed(
        f"{exception_line(text) or exit_reason}\n\n{exit_reason}; last lines of {log}:\n" + "\n".join(tail) + "\n"
    )
    return "failed"


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGTERM this process when ``parent`` dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(f"parent process {parent} is gone")


def _run_one(request_path: Path) -> None:
    """Worker process: train one run, resuming it if it was interrupted."""
    if PARENT_ENV in os.environ:
        die_with_parent(int(os.environ[PARENT_ENV]))
    import torch

    from redit.train import train

    torch.set_num_threads(int(os.environ.get("REDIT_TORCH_THREADS", "1")))
    request = RunRequest(**{k: v for k, v in json.loads(request_path.read_text()).items() if k != "key"})
    resume = run_dir(request).config.exists()
    train(request.config(), resume=resume, overwrite=not resume)


if __name__ == "__main__":
    _run_one(Path(sys.argv[1]))
