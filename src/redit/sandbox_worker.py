"""The code sandbox's worker: a locked-down fork server that runs one untrusted program per child process.

Run as a script by :mod:`redit.sandbox` (standard library only, so it never imports ``redit`` or torch). At start,
when it runs as root, the worker puts itself in new mount and network namespaces: every mount becomes read-only, a
small size-capped tmpfs holds the programs' temp directories, directories that only root may enter (e.g. ``/root``
holding the Python install) are hidden behind an empty tmpfs with just the Python paths bound back, and there is no
network interface but a down loopback. Each job is then forked into a child that starts a new session, drops to an
unprivileged uid of its own with no supplementary groups and ``no_new_privs``, and runs under resource limits (address
space, CPU seconds, file size, one process, open files, no core dumps) in a fresh temp directory with an empty
environment; stdout/stderr go to capped in-memory files. Optionally a program still running after 0.1 s drops to a
higher nice value (``long_run_nice``). The worker kills the child at the wall-clock timeout, removes its directory
and answers with one JSON line per job.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import secrets
import select
import shutil
import signal
import stat
import sys
import time

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
UID_BASE = 2_000_000_000  # + the worker's pid: a uid no account uses and no other live worker shares
RESULT_FD = 3
DEMOTE_AFTER_S = 0.1  # a program still running after this long runs at nice ``long_run_nice`` (0: never)
# a program is one process with one thread (RLIMIT_NPROC): numerical libraries must not start thread pools
SINGLE_THREADED = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
# imported once by the worker, so each program finds them already loaded
PRELOAD = (
    "array", "bisect", "builtins", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal", "enum",
    "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math", "operator", "random", "re",
    "statistics", "string", "sys", "textwrap", "typing", "unicodedata",
)  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda s: None if s is None else s.encode()
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def _hidden_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that other users may not enter (``/root`` for a pyenv install)."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        if os.path.isdir(current) and not os.stat(current).st_mode & stat.S_IXOTH:
            return current
    return None


def _expose(paths: list[str]) -> None:
    """Make ``paths`` readable to other users: hide each closed ancestor behind an empty tmpfs, bind the paths back."""
    hidden: dict[str, list[tuple[str, int]]] = {}
    for path in paths:
        ancestor = _hidden_ancestor(path)
        if ancestor is not None and os.path.isdir(path):
            hidden.setdefault(ancestor, []).append((path, os.open(path, os.O_PATH)))
    for ancestor, kept in hidden.items():
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path, fd in kept:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)


def _isolate(config: dict) -> tuple[list[str], str]:
    """Enter private mount and network namespaces (root only); returns the guards in force and the boxes' root."""
    guards = ["rlimits", "session", "empty-env", "capped-output"]
    if os.geteuid() != 0:
        return guards, _host_boxes()
    guards.append("uid")
    if _libc.unshare(CLONE_NEWNET) == 0:
        guards.append("no-network")
    if _libc.unshare(CLONE_NEWNS) != 0:
        return guards, _host_boxes()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    needed = sorted({sys.base_prefix, sys.prefix, *(p for p in sys.path if p)})
    _expose(needed)
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4].encode().decode("unicode_escape") for line in mounts]
    for point in points:
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except OSError:
            return guards, _host_boxes()  # some mount stayed writable: claim no read-only filesystem
    boxes = "/dev/shm" if any(p == "/tmp" or p.startswith("/tmp/") for p in needed) else "/tmp"
    _mount("tmpfs", boxes, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(config['tmpfs_mb'])}m,mode=0711")
    guards += ["read-only-fs", "tmpfs-boxes"]
    return guards, boxes


def _host_boxes() -> str:
    import tempfile

    boxes = tempfile.mkdtemp(prefix="redit-sandbox-")
    os.chmod(boxes, 0o711)
    return boxes


def _limit(config: dict, timeout: float) -> None:
    memory = int(config["memory_mb"]) << 20
    file_size = int(config["file_mb"]) << 20
    cpu = max(1, int(timeout + 0.999))
    for limit, value in (
        (resource.RLIMIT_AS, (memory, memory)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, (file_size, file_size)),
        (resource.RLIMIT_NPROC, (1, 1)),
        (resource.RLIMIT_NOFILE, (64, 64)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_MEMLOCK, (0, 0)),
        (resource.RLIMIT_MSGQUEUE, (0, 0)),
    ):
        resource.setrlimit(limit, value)


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("uid drop did not take")


def _child(job: dict, config: dict, box: str, out_fd: int, err_fd: int, result_fd: int, nonce: str) -> None:
    """Lock this forked process down, then run the program and its tests; never returns."""
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(result_fd, RESULT_FD)
        os.closerange(RESULT_FD + 1, 1 << 16)
        for number in range(1, signal.NSIG):
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        os.chdir(box)
        _limit(config, float(job["timeout"]))
        if config["uid"] is not None:
            _drop_privileges(int(config["uid"]))
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": box, "TMPDIR": box, "LANG": "C.UTF-8"} | SINGLE_THREADED)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    except BaseException:  # noqa: BLE001 (never run a program that is not locked down)
        os._exit(126)
    _run(job, nonce)


def _run(job: dict, nonce: str) -> None:
    """Execute the program, then each test in its namespace; report which tests passed on ``RESULT_FD``."""
    namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
    error = None
    passed = []
    try:
        exec(compile(job["program"], "<program>", "exec"), namespace)  # noqa: S102 (in the locked-down child)
    except BaseException as exc:  # noqa: BLE001
        error = f"program: {type(exc).__name__}: {exc}"[:500]
    if error is None:
        for test in job["tests"]:
            try:
                exec(compile(test, "<test>", "exec"), namespace)  # noqa: S102
                passed.append(True)
            except BaseException:  # noqa: BLE001 (sys.exit in a test is a failed test)
                passed.append(False)
    report = json.dumps({"nonce": nonce, "passed": passed, "error": error}).encode()
    with contextlib.suppress(BaseException):  # output over the cap
        sys.stdout.flush()
        sys.stderr.flush()
    os.write(RESULT_FD, report)
    os._exit(0)


def _read_capped(fd: int, limit: int) -> str:
    return os.pread(fd, limit, 0).decode(errors="replace")


def run_job(job: dict, config: dict, boxes: str, sequence: int) -> dict:
    """Fork a child for ``job``, wait up to its timeout, clean up; the job's outcome."""
    box = os.path.join(boxes, f"box{sequence}")
    os.mkdir(box, 0o700)
    if config["uid"] is not None:
        os.chown(box, int(config["uid"]), int(config["uid"]))
    out_fd, err_fd = os.memfd_create("stdout"), os.memfd_create("stderr")
    read_end, write_end = os.pipe()
    nonce = secrets.token_hex(16)
    timeout = float(job["timeout"])
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(job, config, box, out_fd, err_fd, write_end, nonce)
    os.close(write_end)
    start = time.monotonic()
    pidfd = os.pidfd_open(pid)
    nice = int(config["long_run_nice"])
    ready, _, _ = select.select([pidfd], [], [], min(timeout, DEMOTE_AFTER_S) if nice else timeout)
    if not ready:  # a long runner (often a hang) yields the CPU to the short programs of other workers
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        ready, _, _ = select.select([pidfd], [], [], max(0.0, start + timeout - time.monotonic()))
    timed_out = not ready
    if timed_out:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    _, wait_status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    os.close(pidfd)
    os.set_blocking(read_end, False)
    try:
        message = os.read(read_end, 1 << 16)
    except BlockingIOError:
        message = b""
    os.close(read_end)
    outcome = _outcome(wait_status, message, nonce, timed_out, len(job["tests"]))
    outcome |= {
        "stdout": _read_capped(out_fd, int(config["output_bytes"])),
        "stderr": _read_capped(err_fd, int(config["output_bytes"])),
        "seconds": round(seconds, 4),
    }
    os.close(out_fd)
    os.close(err_fd)
    shutil.rmtree(box, ignore_errors=True)
    return outcome


def _outcome(wait_status: int, message: bytes, nonce: str, timed_out: bool, n_tests: int) -> dict:
    failed = [False] * n_tests
    if timed_out:
        return {"status": "timeout", "passed": failed, "detail": "wall-clock timeout"}
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        status = "timeout" if number in (signal.SIGXCPU, signal.SIGKILL) else "error"
        return {"status": status, "passed": failed, "detail": f"killed by {signal.Signals(number).name}"}
    code = os.WEXITSTATUS(wait_status)
    try:
        report = json.loads(message)
        valid = isinstance(report, dict) and report.get("nonce") == nonce and code == 0
    except ValueError:
        valid = False
    if not valid:
        return {"status": "error", "passed": failed, "detail": f"exited with code {code} without a valid report"}
    passed = report.get("passed")
    if report.get("error") or not isinstance(passed, list) or len(passed) != n_tests:
        return {"status": "error", "passed": failed, "detail": str(report.get("error"))[:500]}
    return {"status": "ok", "passed": [p is True for p in passed], "detail": ""}


def main(config: dict) -> None:
    """Serve jobs: one JSON object per line on stdin (program, tests, timeout), one JSON outcome per line out."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints never reach the protocol
    for name in PRELOAD:
        __import__(name)
    guards, boxes = _isolate(config)
    config["uid"] = UID_BASE + os.getpid() if "uid" in guards else None
    protocol.write(json.dumps({"ready": guards}).encode() + b"\n")
    protocol.flush()
    for sequence, line in enumerate(sys.stdin.buffer):
        job = json.loads(line)
        try:
            outcome = run_job(job, config, boxes, sequence)
        except OSError as error:  # the worker's own failure (e.g. the tmpfs full): the job scores 0
            outcome = {"status": "error", "passed": [False] * len(job["tests"]), "detail": f"sandbox: {error}"}
        protocol.write(json.dumps(outcome).encode() + b"\n")
        protocol.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[-1]))
