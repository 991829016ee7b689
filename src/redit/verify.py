"""Fast, safe answer checking: math-verify in a pool of sandboxed worker processes.

Model output is untrusted. Every check runs in a separate worker process that

* parses LaTeX only (math-verify's ``LatexExtractionConfig``: an ANTLR grammar, never ``eval``);
* refuses, through an audit hook, to compile Python from strings, start processes, open sockets or write files;
* has a memory cap (``RLIMIT_AS``) and a soft in-worker timer;
* is killed and replaced by the parent when a check runs past the hard ``timeout``, whichever thread calls.

Both the gold answer and the predicted answer are *final answers* (``"\\frac{1}{2}"``, ``"72"``), wrapped in
``\\boxed{}`` by the worker and compared with ``verify(gold, prediction)``. Gold answers are parsed once per worker
and cached (LRU). Plain numerals are compared exactly in the parent without a round trip.

This module imports only the standard library at top level; the worker runs it as a script (so the worker never
imports the ``redit`` package, hence never torch).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Status = Literal["correct", "incorrect", "timeout", "error"]
CORRECT: Status = "correct"
INCORRECT: Status = "incorrect"
TIMEOUT: Status = "timeout"
ERROR: Status = "error"

_STARTUP_TIMEOUT_S = 120.0
_SOFT_TIMEOUT_FRACTION = 0.8  # the worker gives up on its own at this fraction of the hard timeout
_PIPELINE_DEPTH = 4  # pairs queued per worker
_NUMERAL = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _numeral(text: str) -> Fraction | None:
    """The exact value of a plain decimal numeral (``"1,080"``, ``"-2.50"``, ``"\\$72"``), else ``None``."""
    text = text.strip().strip("$").removeprefix("\\$").strip()
    if len(text) > 64 or not _NUMERAL.fullmatch(text):
        return None
    return Fraction(text.replace(",", ""))


def quick_check(gold: str, answer: str) -> Status | None:
    """Decide plain-numeral pairs exactly without math-verify; ``None`` when math-verify is needed."""
    gold_value, answer_value = _numeral(gold), _numeral(answer)
    if gold_value is None or answer_value is None:
        return None
    if gold_value == answer_value:
        return CORRECT
    # unequal integers are unequal under any rounding; unequal decimals go to math-verify's float rounding
    both_integers = gold_value.denominator == 1 and answer_value.denominator == 1
    return INCORRECT if both_integers else None


@dataclass
class _Worker:
    proc: subprocess.Popen
    buffer: bytes = b""
    ready: bool = False
    tasks: deque = field(default_factory=deque)  # in flight, oldest (being checked) first
    deadline: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.tasks) or not self.ready

    @property
    def fd(self) -> int:
        return self.proc.stdout.fileno()  # type: ignore[union-attr]


@dataclass
class Verifier:
    """A pool of answer-checking workers; ``check`` is thread-safe and never hangs past ``timeout``.

    ``workers`` defaults to the available cores, ``timeout`` is the hard limit per answer in seconds,
    ``memory_mb`` the address-space cap of each worker, ``max_chars`` the longest answer checked (longer
    answers are incorrect), ``gold_cache_size`` the number of parsed gold answers each worker keeps.
    """

    workers: int | None = None
    timeout: float = 5.0
    memory_mb: int = 2048
    max_chars: int = 1000
    gold_cache_size: int = 4096
    counts: Counter = field(default_factory=Counter, init=False)
    _pool: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pid: int = field(default_factory=os.getpid, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        self.workers = self.workers or available_cores()

    def check(self, golds: Sequence[str], answers: Sequence[str]) -> list[Status]:
        """Check each ``answers[i]`` against ``golds[i]``; one status per pair."""
        if len(golds) != len(answers):
            raise ValueError(f"got {len(golds)} gold answers for {len(answers)} answers")
        statuses: list[Status | None] = [self._precheck(g, a) for g, a in zip(golds, answers, strict=True)]
        todo: dict[tuple[str, str], list[int]] = {}
        for i, status in enumerate(statuses):
            if status is None:
                todo.setdefault((str(golds[i]), str(answers[i])), []).append(i)
        pairs = list(todo)
        with self._lock:
            for pair, status in zip(pairs, self._run(pairs) if pairs else [], strict=True):
                for i in todo[pair]:
                    statuses[i] = status
            self.counts.update(statuses)
        return statuses  # type: ignore[return-value]

    def start(self) -> None:
        """Start the workers now (``check`` would on first use) and wait until every one is ready."""
        with self._lock:
            self._ensure_pool()
            with selectors.DefaultSelector() as selector:
                while not all(worker.ready for worker in self._pool):
                    self._wait(selector, deque(), [])

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (empty before the first check that needs them)."""
        return [worker.proc.pid for worker in self._pool]

    def close(self) -> None:
        """Stop all workers (a later ``check`` starts new ones)."""
        with self._lock:
            for worker in self._pool:
                _stop(worker)
            self._pool.clear()

    def _precheck(self, gold: object, answer: object) -> Status | None:
        if not isinstance(answer, str) or not answer.strip() or len(answer) > self.max_chars:
            return INCORRECT
        return quick_check(str(gold), answer)

    def _spawn(self) -> _Worker:
        soft = self.timeout * _SOFT_TIMEOUT_FRACTION
        config = json.dumps({"memory_mb": self.memory_mb, "soft_timeout": soft, "cache": self.gold_cache_size})
        bootstrap = "import runpy, sys; del sys.path[0]; runpy.run_path(sys.argv[1], run_name='__main__')"
        proc = subprocess.Popen(
            [sys.executable, "-c", bootstrap, os.path.abspath(__file__), config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
        )
        os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
        return _Worker(proc, deadline=time.monotonic() + _STARTUP_TIMEOUT_S)

    def _ensure_pool(self) -> None:
        if self._pid != os.getpid():  # inherited through fork: the workers belong to the parent
            self._pool, self._pid = [], os.getpid()
        while len(self._pool) < int(self.workers or 1):
            self._pool.append(self._spawn())

    def _run(self, pairs: list[tuple[str, str]]) -> list[Status]:
        """Dispatch ``pairs`` to the workers and collect their statuses, enforcing deadlines.

        Each worker gets up to ``_PIPELINE_DEPTH`` pairs at a time, so it never idles waiting for this process to
        be scheduled; the deadline applies to the pair it is checking (from when the previous one finished).
        """
        self._ensure_pool()
        results: list[Status | None] = [None] * len(pairs)
        pending = deque(range(len(pairs)))
        with selectors.DefaultSelector() as selector:
            while pending or any(w.tasks for w in self._pool):
                for worker in list(self._pool):
                    while worker.ready and pending and len(worker.tasks) < _PIPELINE_DEPTH:
                        if not self._assign(worker, pending, pairs, results):
                            break
                self._wait(selector, pending, results)
        return results  # type: ignore[return-value]

    def _assign(self, worker: _Worker, pending: deque, pairs: list, results: list) -> bool:
        """Send the next pending pair to ``worker``; ``False`` if the worker turned out dead (and was replaced)."""
        task = pending.popleft()
        if not worker.tasks:
            worker.deadline = time.monotonic() + self.timeout
        worker.tasks.append(task)
        try:
            worker.proc.stdin.write(json.dumps(pairs[task]).encode() + b"\n")  # type: ignore[union-attr]
            worker.proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            worker.tasks.pop()
            pending.appendleft(task)
            self._fail(worker, ERROR, pending, results)
            return False
        return True

    def _fail(self, worker: _Worker, status: Status, pending: deque, results: list) -> None:
        """Give the pair being checked ``status``, requeue the worker's other pairs and replace the worker."""
        if worker.tasks:
            results[worker.tasks.popleft()] = status
            pending.extendleft(reversed(worker.tasks))
        _stop(worker)
        self._pool[self._pool.index(worker)] = self._spawn()

    def _wait(self, selector: selectors.BaseSelector, pending: deque, results: list) -> None:
        """Wait for worker output or the nearest deadline, and act on it."""
        live = [w for w in self._pool if w.busy]
        if not live:
            return
        for worker in live:
            selector.register(worker.fd, selectors.EVENT_READ, worker)
        try:
            events = selector.select(max(0.0, min(w.deadline for w in live) - time.monotonic()))
        finally:
            for worker in live:
                selector.unregister(worker.fd)
        for key, _ in events:
            self._read(key.data, pending, results)
        now = time.monotonic()
        for worker in live:
            if worker in self._pool and worker.busy and worker.deadline <= now:
                if not worker.ready:
                    _stop(worker)
                    raise RuntimeError("an answer-checking worker did not start; see its error output above")
                self._fail(worker, TIMEOUT, pending, results)

    def _read(self, worker: _Worker, pending: deque, results: list) -> None:
        try:
            chunk = os.read(worker.fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:  # the worker died (crash, memory, signal)
            if not worker.ready:
                _stop(worker)
                raise RuntimeError("an answer-checking worker exited at start; see its error output above")
            self._fail(worker, ERROR, pending, results)
            return
        worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message == "ready":
                worker.ready = True
            elif worker.tasks:
                results[worker.tasks.popleft()] = message
                worker.deadline = time.monotonic() + self.timeout


def _stop(worker: _Worker) -> None:
    """Kill a worker process and reap it."""
    for stream in (worker.proc.stdin, worker.proc.stdout):
        try:
            stream.close()  # type: ignore[union-attr]
        except OSError:
            pass
    if worker.proc.poll() is None:
        worker.proc.kill()
    worker.proc.wait()


class ProcessWide(Generic[T]):
    """One process-wide instance of a pool (anything with ``close``): built by ``build`` on first use, replaceable
    (the old one closed), closed at exit. The verifier and the code sandbox each keep one."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build, self._value, self._lock = build, None, threading.Lock()
        atexit.register(self.close)

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def replace(self, new: T) -> T:
        with self._lock:
            old, self._value = self._value, new
        if old is not None:
            old.close()
        return new

    def close(self) -> None:
        if self._value is not None:
            self._value.close()


def _verifier_from_env() -> Verifier:
    workers, timeout = os.environ.get("REDIT_VERIFY_WORKERS"), os.environ.get("REDIT_VERIFY_TIMEOUT")
    return Verifier(workers=int(workers) if workers else None, timeout=float(timeout or 5.0))


_shared: ProcessWide[Verifier] = ProcessWide(_verifier_from_env)


def get_verifier() -> Verifier:
    """The process-wide verifier used by the rewards: created on first use, closed at exit.

    ``REDIT_VERIFY_WORKERS`` and ``REDIT_VERIFY_TIMEOUT`` (seconds) override its defaults.
    """
    return _shared.get()


def configure_verifier(**options: object) -> Verifier:
    """Replace the process-wide verifier by ``Verifier(**options)`` (closing the old one) and return it."""
    return _shared.replace(Verifier(**options))  # type: ignore[arg-type]


def check_answers(golds: Sequence[str], answers: Sequence[str]) -> list[Status]:
    """Check answers against gold answers with the process-wide verifier."""
    return get_verifier().check(golds, answers)


# ----------------------------------------------------------------------------------------------------------------
# Worker side: runs as a script in its own process (see ``Verifier._spawn``).

_DENIED_EVENTS = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "subprocess.Popen", "pty.spawn", "socket.", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.link",
    "os.symlink", "os.truncate", "os.chmod", "os.chown", "os.chdir", "shutil.", "ctypes.", "webbrowser.",
    "urllib.Request", "http.client.connect", "ftplib.", "smtplib.",
)  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# sympy compiles small generated snippets (``Integer (14 )``); none of them needs dunders or these builtins
_UNSAFE_CODE = re.compile(
    r"__|\b(?:eval|exec|compile|open|getattr|setattr|delattr|globals|locals|vars|input|breakpoint|memoryview)\b"
)


class _SoftTimeout(BaseException):
    """Raised by the worker's own timer; a ``BaseException`` so library ``except Exception`` cannot swallow it."""


def _audit(event: str, args: tuple) -> None:
    """Deny side effects, and Python compiled from strings that could reach them, once the worker is serving."""
    if event.startswith(_DENIED_EVENTS):
        raise PermissionError(f"{event} is not allowed in an answer-checking worker")
    if event == "open" and _writes(args):
        raise PermissionError("writing files is not allowed in an answer-checking worker")
    if event == "compile" and not _from_file(args[1]) and _UNSAFE_CODE.search(_source_text(args[0])):
        raise PermissionError("compiling this code is not allowed in an answer-checking worker")
    if event == "exec" and not _from_file(args[0].co_filename) and _UNSAFE_CODE.search(" ".join(args[0].co_names)):
        raise PermissionError("executing this code is not allowed in an answer-checking worker")


def _writes(open_args: tuple) -> bool:
    _, mode, flags = open_args
    return (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
    )


def _from_file(filename: object) -> bool:
    return isinstance(filename, str) and filename.endswith(".py")


def _source_text(source: object) -> str:
    """Text of a ``compile`` source; an AST is checked later, when its code object is executed."""
    if isinstance(source, bytes):
        return source.decode(errors="replace")
    return source if isinstance(source, str) else ""


def _worker_setup(memory_mb: int) -> None:
    import logging
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    logging.disable(logging.CRITICAL)  # math-verify logs every parse failure and its disabled signal timeouts
    sys.setrecursionlimit(10_000)


def _worker_main(config: dict) -> None:
    """Serve checks: one JSON ``[gold, answer]`` per line in, one JSON status per line out."""
    import functools

    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from libraries go to stderr, never into the protocol
    _worker_setup(int(config["memory_mb"]))
    from math_verify import LatexExtractionConfig, parse, verify

    latex = [LatexExtractionConfig()]

    def parse_answer(text: str) -> list:
        return parse("\\boxed{" + text + "}", latex, parsing_timeout=None)

    parse_gold = functools.lru_cache(maxsize=int(config["cache"]))(parse_answer)

    def check(gold: str, answer: str) -> str:
        parsed_gold = parse_gold(gold)
        return CORRECT if parsed_gold and verify(parsed_gold, parse_answer(answer), timeout_seconds=None) else INCORRECT

    for gold, answer in _WARMUP:  # import and compile everything a check needs before locking down
        check(gold, answer)
    parse_gold.cache_clear()

    def on_alarm(signum: int, frame: object) -> None:
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    sys.addaudithook(_audit)
    protocol.write(b'"ready"\n')
    protocol.flush()
    for line in sys.stdin.buffer:
        gold, answer = json.loads(line)
        signal.setitimer(signal.ITIMER_REAL, float(config["soft_timeout"]))
        try:
            status = check(gold, answer)
        except _SoftTimeout:
            status = TIMEOUT
        except (Exception, RecursionError, MemoryError):  # noqa: BLE001 (any failure of untrusted input scores 0)
            status = ERROR
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        protocol.write(json.dumps(status).encode() + b"\n")
        protocol.flush()


_WARMUP = [
    ("\\frac{1}{2}", "0.5"), ("x^2+1", "1+x^2"), ("(1, 2]", "(1,2]"), ("\\{1,2\\}", "\\{2, 1\\}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"), ("\\text{(C)}", "C"),
    ("3, 5, 7", "7,5,3"), ("x=5", "5"), ("10\\%", "0.1"), ("\\sqrt{2}", "2^{1/2}"), ("\\infty", "\\infty"),
    ("2\\pi", "6.2832"), ("x \\in [1, 2]", "[1,2]"), ("a < b", "b > a"), ("\\sin x", "\\sin(x)"),
    ("\\log_2 8", "3"), ("5!", "120"), ("\\binom{5}{2}", "10"), ("\\dfrac{3}{4}", "\\tfrac34"), ("1.5", "\\frac32"),
    ("y = 2x + 3", "2x+3"), ("\\$5.00", "5"), ("90^\\circ", "90"), ("\\text{Monday}", "\\text{monday}"),
    ("-\\frac{\\sqrt{3}}{2}", "-\\sqrt{3}/2"), ("\\pm 2", "2, -2"), ("i", "\\sqrt{-1}"), ("1+2i", "2i+1"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"), ("\\mathbf{(A)}", "A"), ("4\\sqrt{3}", "\\sqrt{48}"),
]  # fmt: skip


if __name__ == "__main__":
    _worker_main(json.loads(sys.argv[-1]))
