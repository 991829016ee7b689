"""The local launcher: runs as separate processes on this machine, ``spec.workers`` at once.

Each run's torch threads are cores / workers (split between its processes). Runs are forked from a multiprocessing
fork server that imported torch, transformers and TRL once, so a run starts training in about a second instead of
paying those imports again (~10 s on 2 cores). Each run is still its own process, in its own session, logging to its
file; it is SIGTERMed when the fork server dies, which dies with this process, and stopped when this process is
interrupted.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from redit.experiments.progress import MatrixProgress
from redit.experiments.runner import (
    Outcome,
    exit_reason,
    finish_run,
    run_env,
    run_request,
    start_run,
    stop_processes,
)
from redit.experiments.spec import ExperimentSpec, RunRequest
from redit.rundir import ExperimentDir

PRELOAD = ["torch", "transformers", "trl", "redit.train", "redit.integrations.trl_trainer"]


class ForkedRun:
    """A run forked from the fork server, with the part of ``subprocess.Popen``'s interface the launcher uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def terminate(self) -> None:
        self.process.terminate()

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"run {self.process.pid}", timeout or 0.0)
        return self.process.exitcode


def forked_run(request_path: Path, log_path: Path, env: dict[str, str]) -> None:
    """A forked run's body: its own session, its output to its log, then the run (as ``python -m
    redit.experiments.runner REQUEST`` would do it)."""
    os.setsid()
    os.environ.clear()  # this process's environment now, not the fork server's at its start
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        os.dup2(log, stream.fileno())
        stream.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    os.close(log)
    run_request(request_path, parent=os.getppid())


@dataclass
class _Child:
    request: RunRequest
    process: ForkedRun
    log_offset: int
    start: float


class LocalLauncher:
    body = staticmethod(forked_run)  # what each forked process runs: (request path, log path, environment)

    def __init__(self, spec: ExperimentSpec) -> None:
        self.workers = spec.workers
        self.cores = len(os.sched_getaffinity(0))
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)

    def check(self, experiment: ExperimentDir) -> None:
        """Nothing to check (the spec was validated on this machine); start the fork server's imports, which then
        overlap with building the models."""
        multiprocessing.forkserver.ensure_running()

    def close(self) -> None:
        """Nothing to release (the fork server exits with this process)."""

    def run(self, experiment: ExperimentDir, pending: list[RunRequest], progress: MatrixProgress) -> list[Outcome]:
        pending, running, outcomes = list(pending), [], []
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    running.append(self._launch(experiment, pending.pop(0)))
                    progress.started(running[-1].request)
                time.sleep(0.2)
                progress.refresh()
                for child in [c for c in running if c.process.poll() is not None]:
                    running.remove(child)
                    reason = None if child.process.returncode == 0 else exit_reason(child.process.returncode)
                    status = finish_run(experiment, child.request, child.log_offset, reason)
                    outcomes.append(Outcome(child.request, status, time.perf_counter() - child.start))
                    progress.finished(outcomes[-1].request, status)
        except BaseException:
            stop_processes([c.process for c in running])
            raise
        return outcomes

    def _launch(self, experiment: ExperimentDir, request: RunRequest) -> _Child:
        path, offset = start_run(experiment, request)
        threads = max(1, self.cores // self.workers // request.resources.num_processes)
        log = experiment.log(request.arm, request.seed)
        process = self.context.Process(
            target=self.body, args=(path, log, dict(os.environ) | run_env(threads)), daemon=False
        )
        process.start()
        return _Child(request, ForkedRun(process), offset, time.perf_counter())
