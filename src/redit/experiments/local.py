"""The local launcher: runs as separate processes on this machine, ``spec.workers`` at once.

Each run's torch threads are cores / workers (split between its processes). The runs are children of this process:
they share its process group (Ctrl-C reaches them), are stopped when it is interrupted and die with it.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

from redit.experiments.progress import MatrixProgress
from redit.experiments.runner import (
    PARENT_ENV,
    Outcome,
    exit_reason,
    finish_run,
    run_command,
    run_env,
    start_run,
    stop_processes,
)
from redit.experiments.spec import ExperimentSpec, RunRequest
from redit.rundir import ExperimentDir


@dataclass
class _Child:
    request: RunRequest
    process: subprocess.Popen
    log_offset: int
    start: float


class LocalLauncher:
    def __init__(self, spec: ExperimentSpec) -> None:
        self.workers = spec.workers
        self.cores = len(os.sched_getaffinity(0))

    def check(self, experiment: ExperimentDir) -> None:
        """Nothing to check: the spec was validated on this machine."""

    def close(self) -> None:
        """Nothing to release."""

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
        env = os.environ | run_env(threads) | {PARENT_ENV: str(os.getpid())}
        with experiment.log(request.arm, request.seed).open("ab") as log:
            process = subprocess.Popen(run_command(path), stdout=log, stderr=subprocess.STDOUT, env=env)
        return _Child(request, process, offset, time.perf_counter())
