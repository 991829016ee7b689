"""Answer-checking throughput on the 500 MATH-500 reference solutions, and a stall check.

Compares ``redit``'s ``math_correctness`` reward (worker pool, quick numeral path) with a plain sequential loop of
math-verify ``parse`` + ``verify`` (what TRL's ``accuracy_reward`` does), in the same run on the same machine.
Both sides start cold: every baseline round runs in a fresh interpreter and every round of ours on a fresh pool,
each warmed up on the same unrelated answers before the clock starts (sympy caches what it has built, so a
repeated round in one process would be faster). Timings are medians of ``--rounds`` alternating rounds.

    python benchmarks/bench_verify.py [--data ../shared/data/math500/test.jsonl] [--rounds 3] [--timeout 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math500" / "test.jsonl"
PATHOLOGICAL = "\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}"  # seconds of ANTLR parsing


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sequential(path: Path) -> float:
    """Seconds for a plain loop of math-verify parse + verify over the rows, in this (fresh) process."""
    from math_verify import parse, verify

    from redit.verify import _WARMUP

    logging.disable(logging.WARNING)
    for gold, answer in _WARMUP:
        verify(parse(f"${gold}$"), parse(f"\\boxed{{{answer}}}"))
    rows = read_rows(path)
    start = time.perf_counter()
    correct = sum(bool(verify(parse(f"${r['answer']}$"), parse(r["solution"]))) for r in rows)
    seconds = time.perf_counter() - start
    assert correct >= 0.99 * len(rows), f"baseline found only {correct} correct"
    return seconds


def sequential_cold(path: Path) -> float:
    """``sequential`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--data", str(path), "--sequential"], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def ours(rows: list[dict], workers: int, timeout: float, completions: list[str] | None = None) -> float:
    """Seconds for the ``math_correctness`` reward over the rows on a fresh, started pool of ``workers``."""
    from redit.rewards.math import math_correctness
    from redit.verify import configure_verifier

    verifier = configure_verifier(workers=workers, timeout=timeout)
    verifier.start()
    completions = completions or [r["solution"] for r in rows]
    start = time.perf_counter()
    scores = math_correctness([""] * len(rows), completions, answer=[r["answer"] for r in rows])
    seconds = time.perf_counter() - start
    assert sum(s == 2.0 for s in scores) >= 0.99 * len(rows) - 1, "ours lost answers"
    verifier.close()
    return seconds


def quick_path_count(rows: list[dict]) -> int:
    """Rows decided by the exact numeral comparison, without a worker."""
    from redit.rewards.general import last_boxed
    from redit.verify import quick_check

    return sum(quick_check(r["answer"], last_boxed(r["solution"]) or "") is not None for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH-500 JSONL (problem, solution, answer)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=2.0, help="per-answer timeout of our pool, seconds")
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)  # one baseline round
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"MATH-500 data not found at {args.data}; pass --data", file=sys.stderr)
        return 2
    if args.sequential:
        print(sequential(args.data))
        return 0
    from redit.verify import available_cores

    rows = read_rows(args.data)
    cores, n = available_cores(), len(rows)
    base, mine, single = [], [], []
    for _ in range(args.rounds):
        base.append(sequential_cold(args.data))
        mine.append(ours(rows, cores, args.timeout))
        if cores > 1:
            single.append(ours(rows, 1, args.timeout))
    base_rate, our_rate = n / statistics.median(base), n / statistics.median(mine)
    print(f"MATH-500 reference solutions: {n} answers, {cores} cores, median of {args.rounds} rounds")
    print(f"sequential math-verify parse+verify: {base_rate:8.1f} answers/s")
    print(f"redit math_correctness, {cores} workers: {our_rate:8.1f} answers/s   ratio {our_rate / base_rate:.2f}x")
    if single:
        single_rate = n / statistics.median(single)
        print(
            f"redit math_correctness, 1 worker:  {single_rate:8.1f} answers/s   scaling {our_rate / single_rate:.2f}x"
        )
    print(f"decided by the exact numeral path (no worker): {quick_path_count(rows)}/{n}")
    clean = ours(rows, cores, args.timeout)
    stalled = ours(rows, cores, args.timeout, completions=[PATHOLOGICAL] + [r["solution"] for r in rows[1:]])
    print(
        f"stall check: batch with one pathological answer {stalled:.2f} s vs {clean:.2f} s without "
        f"(timeout {args.timeout:.1f} s; extra {stalled - clean:+.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
