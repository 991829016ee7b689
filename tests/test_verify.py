"""Answer checking: math-verify semantics, hard timeouts from any thread, crash recovery and sandboxing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from redit.verify import CORRECT, ERROR, INCORRECT, TIMEOUT, Verifier, _audit, quick_check

TIMEOUT_S = 2.0
SLACK_S = 2.0  # scheduling slack on a loaded 2-core machine


@pytest.fixture(scope="module")
def verifier():
    v = Verifier(workers=2, timeout=TIMEOUT_S, memory_mb=1536)
    yield v
    v.close()


@pytest.mark.parametrize(
    ("gold", "answer", "expected"),
    [
        ("72", "72", CORRECT),
        ("1080", "1,080", CORRECT),
        ("72", "\\$72", CORRECT),
        ("2.5", "2.50", CORRECT),
        ("72", "73", INCORRECT),
        ("0.3333333", "0.33333333", None),  # decimals that differ go to math-verify's rounding
        ("\\frac{1}{2}", "0.5", None),
        ("1,2", "12", None),  # not a thousands separator
    ],
)
def test_quick_check_decides_only_plain_numerals(gold, answer, expected):
    assert quick_check(gold, answer) == expected


def test_math_verify_semantics(verifier):
    golds = [
        "\\frac{14}{3}",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        "\\text{Evelyn}",
        "1,-2",
        "\\frac{14}{3}",
        "(-2,1)",
    ]
    answers = ["\\dfrac{14}{3}", "(3, \\pi/2)", "\\text{Evelyn}", "-2, 1", "4.5", "(1,-2)"]
    assert verifier.check(golds, answers) == [CORRECT, CORRECT, CORRECT, CORRECT, INCORRECT, INCORRECT]


def test_empty_and_overlong_answers_are_incorrect_without_a_worker():
    v = Verifier(workers=1, max_chars=50)
    try:
        assert v.check(["1", "1", "1"], ["", "  ", "1" + " " * 60]) == [INCORRECT] * 3
        assert v.worker_pids == []
    finally:
        v.close()


def test_length_mismatch_is_an_error(verifier):
    with pytest.raises(ValueError, match="gold answers"):
        verifier.check(["1", "2"], ["1"])


def test_duplicates_are_checked_once_and_counted_each(verifier):
    before = verifier.counts[CORRECT]
    assert verifier.check(["\\sqrt{2}"] * 5, ["2^{1/2}"] * 5) == [CORRECT] * 5
    assert verifier.counts[CORRECT] - before == 5


@pytest.mark.parametrize(
    "payload", ["9^{9^{9^{9}}}", "(10^{100})!", "100000000000!", "10^{10^{10^{10}}}", "{" * 300 + "1" + "}" * 300]
)
def test_pathological_answer_returns_within_timeout(verifier, payload):
    start = time.monotonic()
    assert verifier.check(["5"], [payload]) in ([TIMEOUT], [INCORRECT], [ERROR])
    assert time.monotonic() - start < TIMEOUT_S + SLACK_S


def test_timeout_works_off_the_main_thread(verifier):
    result: list = []
    thread = threading.Thread(
        target=lambda: result.append(verifier.check(["5", "2"], ["9^{9^{9^{9}}}", "\\frac{4}{2}"]))
    )
    start = time.monotonic()
    thread.start()
    thread.join(TIMEOUT_S + 2 * SLACK_S)
    assert not thread.is_alive()
    assert result[0][0] in (TIMEOUT, INCORRECT, ERROR) and result[0][1] == CORRECT
    assert time.monotonic() - start < TIMEOUT_S + SLACK_S


def test_a_hung_worker_is_killed_and_replaced():
    v = Verifier(workers=1, timeout=1.0)
    try:
        assert v.check(["3"], ["\\frac{6}{2}"]) == [CORRECT]
        (pid,) = v.worker_pids
        os.kill(pid, signal.SIGSTOP)  # a hang no in-worker timer can interrupt
        start = time.monotonic()
        assert v.check(["3"], ["\\frac{6}{2}"]) == [TIMEOUT]
        assert time.monotonic() - start < 1.0 + SLACK_S
        assert v.worker_pids != [pid]
        assert v.check(["3"], ["\\frac{6}{2}"]) == [CORRECT]
    finally:
        v.close()


def test_a_crash_mid_check_is_an_error_and_a_dead_idle_worker_is_replaced():
    v = Verifier(workers=1, timeout=10.0)
    try:
        v.check(["3"], ["\\frac{6}{2}"])
        (pid,) = v.worker_pids
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        assert v.check(["5"], ["{" * 300 + "1" + "}" * 300]) == [ERROR]
        assert v.check(["3"], ["\\frac{6}{2}"]) == [CORRECT]  # served by the replacement
        (pid,) = v.worker_pids
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert v.check(["3"], ["\\frac{6}{2}"]) == [CORRECT]
    finally:
        v.close()


def test_hostile_answers_run_no_code(verifier, tmp_path: Path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f'__import__("os").system("touch {marker}")',
        f"\\text{{__import__('os').system('touch {marker}')}}",
        f"eval(\"__import__('os').system('touch {marker}')\")",
    ]
    assert verifier.check(["0"] * len(payloads), payloads) == [INCORRECT] * len(payloads)
    assert not marker.exists()


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs Linux /proc to read process limits")
def test_workers_have_a_memory_cap(verifier):
    verifier.check(["2"], ["\\frac{4}{2}"])
    for pid in verifier.worker_pids:
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
        assert line.split()[3] == str(1536 * 1024 * 1024)


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("os.system", (b"id",)),
        ("subprocess.Popen", ("sh", ["sh"], None, None)),
        ("open", ("/tmp/x", "w", 0)),
        ("open", ("/tmp/x", None, os.O_WRONLY | os.O_CREAT)),
        ("compile", (b"__import__('os')", "<string>")),
        ("compile", ("eval('1')", "<string>")),
        ("exec", (compile("getattr(x, 'y')", "<string>", "eval"),)),
    ],
)
def test_audit_hook_denies_side_effects(event, args):
    with pytest.raises(PermissionError):
        _audit(event, args)


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("compile", (b"Integer (14 )", "<string>")),
        ("exec", (compile("Integer (14 )", "<string>", "eval"),)),
        ("open", ("/tmp/x", "r", 0)),
        ("compile", (b"__name__", "/site-packages/sympy/core/numbers.py")),
    ],
)
def test_audit_hook_allows_what_sympy_needs(event, args):
    _audit(event, args)


def test_start_waits_for_every_worker():
    v = Verifier(workers=2, timeout=TIMEOUT_S)
    try:
        v.start()
        assert len(v.worker_pids) == 2
        assert v.check(["\\pi"], ["\\pi"]) == [CORRECT]
    finally:
        v.close()


def test_one_pathological_answer_does_not_stall_a_batch():
    v = Verifier(workers=1, timeout=1.0)
    try:
        v.start()
        answers = ["{" * 300 + "1" + "}" * 300] + [f"\\frac{{{2 * k}}}{{2}}" for k in range(1, 9)]
        start = time.monotonic()
        statuses = v.check(["1"] + [str(k) for k in range(1, 9)], answers)
        assert statuses[0] in (TIMEOUT, ERROR) and statuses[1:] == [CORRECT] * 8
        assert time.monotonic() - start < 1.0 + SLACK_S + 1.0
    finally:
        v.close()


def test_concurrent_checks_from_several_threads(verifier):
    results: dict[int, list] = {}

    def work(k: int) -> None:
        results[k] = verifier.check(
            [f"\\frac{{{k}}}{{7}}", "\\sqrt{8}"], [f"\\dfrac{{{2 * k}}}{{14}}", f"{k}\\sqrt{{2}}"]
        )

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {k: [CORRECT, CORRECT if k == 2 else INCORRECT] for k in range(1, 5)}
