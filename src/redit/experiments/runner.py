"""Runs an experiment matrix: what every launcher shares, and the one command each (arm, seed) run is.

A run is ``python -m redit.experiments.runner REQUEST.json`` whichever launcher starts it (a local process pool,
:mod:`redit.experiments.local`, or Ray tasks, :mod:`redit.experiments.ray_launcher`), logging to its file under
``logs/`` (paths: :class:`redit.rundir.ExperimentDir`). The process dies with the process that started it (Linux
``PR_SET_PDEATHSIG``), so stopping or killing a launcher leaves no trainer behind. A crashed run gets an
``error.txt`` whose first line is its error and the others go on. Rerunning skips finished runs (same arm config and
seed), resumes interrupted ones from their newest complete checkpoint and retries failed ones. A run whose resources
ask for several processes trains under ``torchrun`` (the command execs it, so it too dies with its parent).
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

from redit.atomic import write_atomic
from redit.experiments.progress import MatrixProgress
from redit.experiments.spec import ExperimentSpec, Resources, RunRequest
from redit.rundir import ExperimentDir, RunDir, exception_line

PARENT_ENV = "REDIT_PARENT_PID"
RESUME_ENV = "REDIT_RESUME"
THREADS_ENV = "REDIT_TORCH_THREADS"
STOP_GRACE_S = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    request: RunRequest
    status: str  # "skipped" (already done), "done" or "failed"
    seconds: float = 0.0  # wall time of the run's process


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


def run_matrix(spec: ExperimentSpec, show_progress: bool = True, address: str | None = None) -> list[Outcome]:
    """Run every (arm, seed) on ``spec.launcher``; returns each run's outcome. Bad input (a changed arm config, for
    Ray a cluster that cannot run the spec) is refused before any run starts; interrupted (SIGINT/SIGTERM), the
    launcher stops its runs before the interruption propagates."""
    check_keys(spec)
    experiment = ExperimentDir(spec.output_dir)
    if spec.launcher == "ray":
        from redit.experiments.ray_launcher import RayLauncher

        launcher = RayLauncher(spec, address)
    else:
        from redit.experiments.local import LocalLauncher

        launcher = LocalLauncher(spec)
    with contextlib.closing(launcher):
        experiment.prepare()
        launcher.check(experiment)
        prepare_models(spec)
        requests = spec.requests()
        outcomes = [Outcome(r, "skipped") for r in requests if run_dir(r).status() == "done"]
        pending = [r for r in requests if run_dir(r).status() != "done"]
        progress = MatrixProgress(len(requests), len(outcomes), show_progress)
        with contextlib.closing(progress), _sigterm_interrupts():
            outcomes += launcher.run(experiment, pending, progress)
    return outcomes


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C, so a launcher stops its runs the same way for both."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_run(experiment: ExperimentDir, request: RunRequest) -> tuple[Path, int]:
    """Write the run's request file and clear an earlier failure; returns the request path and where this
    attempt's output will start in the (appended) log."""
    path = experiment.request(request.arm, request.seed)
    payload = {"key": request.key, "arm": request.arm, "seed": request.seed, "raw": request.raw}
    write_atomic(path, json.dumps(payload | {"resources": request.resources.model_dump()}))
    run_dir(request).clear_failure()
    log = experiment.log(request.arm, request.seed)
    return path, log.stat().st_size if log.exists() else 0


def run_command(request_path: Path) -> list[str]:
    """The command of one run, the same on every launcher (``sys.executable`` of the host that runs it)."""
    return [sys.executable, "-m", "redit.experiments.runner", str(request_path)]


def run_env(threads: int) -> dict[str, str]:
    """Environment additions for a run's process: its CPU threads and unbuffered output for the live log."""
    return {
        "OMP_NUM_THREADS": str(threads),
        THREADS_ENV: str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def exit_reason(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def finish_run(experiment: ExperimentDir, request: RunRequest, log_offset: int, reason: str | None) -> str:
    """``done`` if the run exited cleanly (``reason`` None) and finished; else record ``error.txt`` (the exception
    of this attempt's log, or ``reason``, then the log's tail) and return ``failed``."""
    run = run_dir(request)
    if reason is None and run.status() == "done":
        return "done"
    reason = reason or "exit code 0 before the run finished"
    log = experiment.log(request.arm, request.seed)
    text = log.read_bytes()[log_offset:].decode(errors="replace") if log.exists() else ""
    tail = [line for line in re.split(r"[\r\n]", text) if line.strip()][-40:]
    run.mark_failed(f"{exception_line(text) or reason}\n\n{reason}; last lines of {log}:\n" + "\n".join(tail) + "\n")
    return "failed"


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process, then SIGKILL those still alive after the grace period."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGTERM this process when ``parent`` dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(f"parent process {parent} is gone")


def distributed_command(request_path: Path, processes: int) -> list[str]:
    """This module under ``torchrun`` (the launcher ``accelerate launch`` uses for several GPUs) with ``processes``
    processes on this node: one per GPU, or CPU processes (gloo) without GPUs. DeepSpeed and FSDP come from the
    run's own ``training.deepspeed`` / ``training.fsdp`` settings, as with any Trainer under torchrun."""
    launch = ["-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", str(processes)]
    return [sys.executable, *launch, "--module", "redit.experiments.runner", str(request_path)]


def run_request(request_path: Path, parent: int | None = None) -> None:
    """A run's process: train it, resuming it if it was interrupted; dies with ``parent`` if given. Several processes
    exec ``torchrun``, which runs this module again once per process, each told the outer process's resume decision
    (and so never launching again)."""
    if parent is not None:
        die_with_parent(parent)
    payload = json.loads(request_path.read_text())
    request = RunRequest(payload["arm"], payload["seed"], payload["raw"], Resources(**payload.get("resources", {})))
    launched = RESUME_ENV in os.environ  # by the distributed launcher
    resume = os.environ.get(RESUME_ENV, str(int(run_dir(request).config.exists()))) == "1"
    processes = request.resources.num_processes
    if processes > 1 and not launched:
        command = distributed_command(request_path, processes)
        os.execve(command[0], command, os.environ | {RESUME_ENV: str(int(resume))})  # keeps PR_SET_PDEATHSIG
    import torch

    from redit.train import train

    torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
    train(request.config(), resume=resume, overwrite=not resume)


if __name__ == "__main__":
    parent = os.environ.pop(PARENT_ENV, None)
    run_request(Path(sys.argv[1]), None if parent is None else int(parent))
