"""Running untrusted programs for code rewards: a pool of sandboxed fork-server workers (see ``docs/code.md``).

``run_programs(jobs)`` runs each :class:`Job` (a program and its tests) and returns one :class:`Outcome` per job; the
same job twice in a batch runs once. Every program runs in a separate, locked-down process forked by a worker
(:mod:`redit.sandbox_worker`); the workers run in parallel, 4 per core by default. Nothing a program does raises
here: a crash, hang, exit or resource exhaustion is an outcome with status ``"error"`` or ``"timeout"``.

``set_executor(fn)`` (or ``REDIT_CODE_EXECUTOR=module:function``) replaces the local pool by any callable with the
signature of ``run_programs``, e.g. a client of a remote sandbox service.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from redit.verify import ProcessWide, available_cores

Status = Literal["ok", "error", "timeout"]
STRICT_GUARDS = ("uid", "no-network", "read-only-fs", "tmpfs-boxes")
_STARTUP_TIMEOUT_S = 60.0
_GRACE_S = 2.0  # the worker enforces the timeout; the pool kills a worker that is this much later still


@dataclass(frozen=True)
class Job:
    """A program and the tests to run after it, each a separate snippet in the program's global namespace."""

    program: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What running a job gave: ``passed[i]`` for test ``i`` (all ``False`` unless ``status == "ok"``)."""

    status: Status
    passed: tuple[bool, ...]
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and bool(self.passed) and all(self.passed)

    @property
    def fraction(self) -> float:
        return sum(self.passed) / len(self.passed) if self.status == "ok" and self.passed else 0.0


class _Worker:
    """One fork-server process; ``run`` sends a job and waits for its outcome, killing the worker if it is late."""

    def __init__(self, config: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_worker.py"),
             json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )  # fmt: skip
        self.buffer = b""
        ready = self._reply(time.monotonic() + _STARTUP_TIMEOUT_S)
        if not isinstance(ready, dict) or "ready" not in ready:
            self.stop()
            raise RuntimeError("a code-sandbox worker failed to start; see its error output above")
        self.guards: list[str] = ready["ready"]

    def run(self, job: Job, timeout: float) -> dict | None:
        """The job's outcome, or ``None`` when the worker died or missed the deadline (it is then stopped)."""
        request = {"program": job.program, "tests": list(job.tests), "timeout": timeout}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            self.stop()
            return None
        reply = self._reply(time.monotonic() + timeout + _GRACE_S)
        if reply is None:
            self.stop()
        return reply

    def _reply(self, deadline: float) -> dict | None:
        stdout = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(stdout, 1 << 16) if ready else b""
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:  # never from a healthy worker: treat it as dead
            return None

    def stop(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def default_workers() -> int:
    """4 per core (at most 64 beyond the cores): hangs hold workers without idling cores, and a spinning hang gets
    a share of the CPU, not a whole core. A worker takes about 11 MB."""
    cores = available_cores()
    return min(4 * cores, cores + 64)


@dataclass
class CodeSandbox:
    """A pool of sandbox workers; ``run`` is thread-safe and returns within about ``timeout`` + 2 s per job.

    ``workers`` defaults to 4 per core (:func:`default_workers`); ``timeout`` is the wall-clock seconds per job
    (program and all its tests; CPU seconds are capped at the next whole second); ``memory_mb`` the address-space
    cap, ``file_mb`` the largest file (stdout and stderr included) a program may write, ``tmpfs_mb`` the size of each
    worker's temp-directory filesystem, ``output_bytes`` how much of stdout/stderr comes back. ``long_run_nice`` is
    the nice value a program still running after 0.1 s drops to (default 0: none; 19 lets hangs cost the rest little
    CPU, but can starve honest slow programs into timeouts where other processes keep the cores busy).
    ``allow_degraded`` (default: ``REDIT_CODE_ALLOW_DEGRADED=1``) runs even where the OS refuses the strict guards
    (not root, no namespaces). See ``docs/code.md``.
    """

    workers: int | None = None
    timeout: float = 5.0
    memory_mb: int = 1024
    file_mb: int = 16
    tmpfs_mb: int = 64
    output_bytes: int = 4096
    long_run_nice: int = 0
    allow_degraded: bool = field(default_factory=lambda: os.environ.get("REDIT_CODE_ALLOW_DEGRADED") == "1")
    counts: dict = field(default_factory=lambda: {"ok": 0, "error": 0, "timeout": 0}, init=False)
    _idle: queue.SimpleQueue = field(default_factory=queue.SimpleQueue, init=False, repr=False)
    _all: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pid: int = field(default_factory=os.getpid, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if not 0 <= self.long_run_nice <= 19:
            raise ValueError(f"long_run_nice must be in 0..19, got {self.long_run_nice}")
        self.workers = self.workers or default_workers()

    @property
    def guards(self) -> list[str]:
        """The isolation guards in force (see ``docs/code.md``); starts the pool."""
        self.start()
        return list(self._all[0].guards)

    def start(self) -> None:
        """Start the workers now (``run`` would on first use); refuse to run without the strict guards."""
        with self._lock:
            if self._pid != os.getpid():  # inherited through fork: the workers belong to the parent
                self._idle, self._all, self._pid = queue.SimpleQueue(), [], os.getpid()
            while len(self._all) < int(self.workers or 1):
                worker = self._spawn()
                self._all.append(worker)
                self._idle.put(worker)

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run each job (each distinct job once); one outcome per job, in order."""
        self.start()
        unique = list(dict.fromkeys(jobs))
        if len(unique) <= 1:
            outcomes = [self._run_one(job) for job in unique]
        else:
            with ThreadPoolExecutor(max_workers=min(len(unique), int(self.workers or 1))) as pool:
                outcomes = list(pool.map(self._run_one, unique))
        by_job = dict(zip(unique, outcomes, strict=True))
        with self._lock:
            for outcome in outcomes:
                self.counts[outcome.status] += 1
        return [by_job[job] for job in jobs]

    def close(self) -> None:
        """Stop all workers (a later ``run`` starts new ones)."""
        with self._lock:
            for worker in self._all:
                worker.stop()
            self._all.clear()
            self._idle = queue.SimpleQueue()

    def _spawn(self) -> _Worker:
        config = {
            "memory_mb": self.memory_mb,
            "file_mb": self.file_mb,
            "tmpfs_mb": self.tmpfs_mb,
            "output_bytes": self.output_bytes,
            "long_run_nice": self.long_run_nice,
        }
        worker = _Worker(config)
        missing = [g for g in STRICT_GUARDS if g not in worker.guards]
        if missing and not self.allow_degraded:
            worker.stop()
            raise PermissionError(
                f"the code sandbox cannot enforce {', '.join(missing)} here (it needs root and Linux namespaces); "
                "run as root, point the reward at a remote sandbox (docs/code.md), or accept weaker isolation with "
                "REDIT_CODE_ALLOW_DEGRADED=1"
            )
        return worker

    def _run_one(self, job: Job) -> Outcome:
        worker = self._idle.get()
        try:
            reply = worker.run(job, self.timeout)
        finally:
            if worker.proc.poll() is not None:
                worker = self._replace(worker)
            self._idle.put(worker)
        if reply is None:
            return Outcome("timeout", (False,) * len(job.tests), "the sandbox worker missed its deadline")
        return Outcome(
            reply["status"], tuple(reply["passed"]), reply["detail"], reply["stdout"], reply["stderr"], reply["seconds"]
        )

    def _replace(self, dead: _Worker) -> _Worker:
        worker = self._spawn()
        with self._lock:
            self._all[self._all.index(dead)] = worker
        return worker


Executor = Callable[[Sequence[Job]], list[Outcome]]
_executor: Executor | None = None


def _sandbox_from_env() -> CodeSandbox:
    workers, timeout = os.environ.get("REDIT_CODE_WORKERS"), os.environ.get("REDIT_CODE_TIMEOUT")
    nice = os.environ.get("REDIT_CODE_LONG_RUN_NICE")
    return CodeSandbox(
        workers=int(workers) if workers else None,
        timeout=float(timeout or 5.0),
        long_run_nice=int(nice) if nice else 0,
    )


_shared: ProcessWide[CodeSandbox] = ProcessWide(_sandbox_from_env)


def get_sandbox() -> CodeSandbox:
    """The process-wide sandbox: created on first use, closed at exit.

    ``REDIT_CODE_WORKERS``, ``REDIT_CODE_TIMEOUT`` (seconds), ``REDIT_CODE_LONG_RUN_NICE`` and
    ``REDIT_CODE_ALLOW_DEGRADED=1`` override defaults.
    """
    return _shared.get()


def configure_sandbox(**options: object) -> CodeSandbox:
    """Replace the process-wide sandbox by ``CodeSandbox(**options)`` (closing the old one) and return it."""
    return _shared.replace(CodeSandbox(**options))  # type: ignore[arg-type]


def set_executor(executor: Executor | None) -> None:
    """Run programs with ``executor`` (e.g. a remote sandbox client) instead of the local pool; ``None`` restores."""
    global _executor
    _executor = executor


def _env_executor() -> Executor | None:
    spec = os.environ.get("REDIT_CODE_EXECUTOR")
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"REDIT_CODE_EXECUTOR={spec!r}: cannot import it ({error}); use module:function") from None


def run_programs(jobs: Sequence[Job]) -> list[Outcome]:
    """Run jobs with the configured executor (``set_executor``, ``REDIT_CODE_EXECUTOR``) or the local sandbox."""
    executor = _executor or _env_executor()
    if executor is not None:
        return list(executor(jobs))
    return get_sandbox().run(jobs)
