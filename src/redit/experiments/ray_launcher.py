"""The Ray launcher (``redit compare --launcher ray``): every (arm, seed) run is a Ray task with its arm's resources.

The task runs the run's usual command (:func:`redit.experiments.runner.run_command`) as its child process, on the
node Ray picks, with the driver's working directory; the child dies with the task's worker. Runs read and write the
spec's ``output_dir`` (so on a cluster it must be storage every node mounts at the same path: checked before any
task starts) and their output streams, line by line, into ``logs/`` there, where the driver reads each run's step
and a failed run's tail. Ray does not retry a run: as on the local launcher, rerunning the compare resumes it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from redit.experiments.progress import MatrixProgress
from redit.experiments.runner import (
    PARENT_ENV,
    STOP_GRACE_S,
    Outcome,
    exit_reason,
    finish_run,
    run_command,
    run_env,
    start_run,
    stop_processes,
)
from redit.experiments.spec import ExperimentSpec, Resources, RunRequest
from redit.rundir import ExperimentDir

CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 120.0
FORWARDED_ENV = ("REDIT_CACHE",)  # the driver prepared the starting models there


class RayLauncher:
    """Connects to Ray (``address``: a cluster's ``host:port``, ``ray://host:port`` or ``auto``; None: ``RAY_ADDRESS``,
    a cluster started on this machine, else a new local instance) and refuses what it cannot run."""

    def __init__(self, spec: ExperimentSpec, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--launcher ray needs Ray: pip install 'redit[ray]'") from None
        self.ray, self.owned = ray, not ray.is_initialized()
        if self.owned:
            if address not in (None, "auto", "local"):
                _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise ValueError(f"no Ray cluster at {address or 'RAY_ADDRESS'}: {first}") from None
        try:
            self.resources = {arm: self._fit(arm, spec.arm_resources(arm)) for arm in spec.arms}
        except ValueError:
            self.close()
            raise

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()

    def _fit(self, arm: str, resources: Resources) -> dict[str, float]:
        """Ray options of one run of ``arm``; refuses resources no alive node has."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node["Alive"]]
        gpus = resources.num_gpus
        if gpus is None:
            gpus = 1.0 if any(node.get("GPU", 0) >= 1 for node in nodes) else 0.0
        need = {"CPU": resources.num_cpus, "GPU": gpus}
        if not any(all(node.get(name, 0) >= amount for name, amount in need.items()) for node in nodes):
            largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)))
            have = ", ".join(f"{largest.get(name, 0):g} {name}" for name in need)
            raise ValueError(
                f"arm '{arm}' asks {need['CPU']:g} CPU, {need['GPU']:g} GPU per run, but no node of the Ray cluster "
                f"has that much (the largest: {have}): lower arms.{arm}.resources (or spec.resources) or add nodes"
            )
        return {"num_cpus": resources.num_cpus, "num_gpus": gpus}

    def check(self, experiment: ExperimentDir) -> None:
        """Every node must see the output directory (and the driver's working directory) at the same path, and
        import this redit: one probe task pinned to each alive node, before any run starts."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = experiment.path.resolve() / f".ray-probe-{uuid.uuid4().hex}"
        probe.write_text("")
        probe_task = self.ray.remote(num_cpus=0, max_retries=0)(_probe)
        try:
            for node in (n for n in self.ray.nodes() if n["Alive"]):
                where = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                try:
                    ref = probe_task.options(scheduling_strategy=where).remote(str(probe), os.getcwd())
                    problem = self.ray.get(ref, timeout=PROBE_TIMEOUT_S)
                except (
                    self.ray.exceptions.RayError
                ) as error:  # redit missing or different there, a node lost, a probe that hangs
                    problem = f"cannot run redit's probe task there ({type(error).__name__}); is redit installed?"
                if problem:
                    raise ValueError(f"Ray node {node['NodeManagerAddress']}: {problem} (see docs/ray.md)")
        finally:
            probe.unlink(missing_ok=True)

    def run(self, experiment: ExperimentDir, pending: list[RunRequest], progress: MatrixProgress) -> list[Outcome]:
        task = self.ray.remote(max_retries=0)(_run_task)
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        submitted: dict[Any, tuple[RunRequest, int, float]] = {}
        outcomes: list[Outcome] = []
        waiting: list[Any] = []
        try:
            for request in pending:
                path, offset = start_run(experiment, request)
                options = self.resources[request.arm]
                threads = max(1, int(options["num_cpus"]) // request.resources.num_processes)
                log = str(experiment.log(request.arm, request.seed).resolve())
                ref = task.options(**options).remote(str(path.resolve()), env | run_env(threads), log, os.getcwd())
                submitted[ref] = (request, offset, time.perf_counter())
                waiting.append(ref)
            while waiting:
                ready, waiting = self.ray.wait(waiting, num_returns=len(waiting), timeout=0.5)
                for ref in ready:
                    request, offset, start = submitted[ref]
                    if _key(request) not in progress.running:
                        progress.started(request)
                    status = finish_run(experiment, request, offset, self._reason(ref))
                    outcomes.append(Outcome(request, status, time.perf_counter() - start))
                    progress.finished(request, status)
                for ref in [r for r in waiting if _key(submitted[r][0]) not in progress.running]:
                    request, offset, _ = submitted[ref]
                    if _log_size(experiment, request) > offset:  # the task wrote its first line
                        progress.started(request)
                        submitted[ref] = (request, offset, time.perf_counter())
                progress.refresh()
        except BaseException:
            self._cancel(waiting)
            raise
        return outcomes

    def _reason(self, ref: Any) -> str | None:
        """None for a clean exit, else why the run's process (or its task) ended."""
        try:
            code = self.ray.get(ref)
        except (
            self.ray.exceptions.RayError
        ) as error:  # the worker died (killed, node lost, out of memory) or the task raised
            first = (str(error).strip().splitlines() or [""])[0]
            return f"Ray task failed: {type(error).__name__}: {first}"[:300]
        return None if code == 0 else exit_reason(code)

    def _cancel(self, refs: list[Any]) -> None:
        """Cancel queued tasks and interrupt running ones (each stops its run), waiting for them to end."""
        for ref in reversed(refs):  # queued ones first, so none starts in the place of a cancelled one
            self.ray.cancel(ref)
        self.ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_S + 10)


def _key(request: RunRequest) -> tuple[str, int]:
    return request.arm, request.seed


def _log_size(experiment: ExperimentDir, request: RunRequest) -> int:
    log = experiment.log(request.arm, request.seed)
    return log.stat().st_size if log.exists() else 0


def _check_reachable(address: str) -> None:
    """Fail in seconds, not Ray's minutes of retries, when nothing listens at ``host:port``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except ValueError:
        raise ValueError(f"--address {address!r}: expected host:port, ray://host:port or auto") from None
    except OSError as error:
        raise ValueError(
            f"no Ray cluster at {address} ({error.strerror or type(error).__name__}): start one with "
            "`ray start --head` there, or fix --address"
        ) from None


def _probe(path: str, cwd: str) -> str | None:
    """A Ray task: why this node cannot run the matrix, or None."""
    if not Path(path).exists():
        return f"does not see {Path(path).parent} at that path: put output_dir on storage every node mounts"
    if not Path(cwd).is_dir():
        return f"has no {cwd} (the driver's working directory, where runs start): create it or start from another"
    return None


def _run_task(request_path: str, env: dict[str, str], log_path: str, cwd: str) -> int:
    """A Ray task: one run as the task's child process, its output appended to ``log_path``; returns its exit
    code. Cancelled (Ctrl-C on the driver), it stops the run first."""
    with open(log_path, "ab") as log:
        log.write(f"redit: Ray task on {socket.gethostname()} (pid {os.getpid()})\n".encode())
        log.flush()
        child_env = os.environ | env | {PARENT_ENV: str(os.getpid())}
        command = run_command(Path(request_path))
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=cwd)
    try:
        while process.poll() is None:  # short waits: Ray's cancel arrives as an exception between them
            time.sleep(0.2)
        return process.returncode
    except BaseException:
        stop_processes([process])
        raise
