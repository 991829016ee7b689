"""``redit score``: score saved generations with a task's rewards and print a summary.

Each input line is a JSON object with a ``completion`` (text or chat messages) and the gold ``answer``, or a raw
dataset row (GSM8K ``question``/``answer``, MATH ``problem``/``solution``[/``answer``], MBPP ``test_list``/``code``,
HumanEval ``prompt``/``test``/``entry_point``/``canonical_solution``), whose reference solution is scored as the
completion; a code row's gold is its tests (or a JSON test spec in ``answer``). Each line is written back with its
total ``reward`` and per-function ``rewards``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from redit.atomic import atomic_file, check_output_file

SCORE_TASKS = ("gsm8k", "math", "mbpp", "humaneval")
CODE_TASKS = ("mbpp", "humaneval")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``score`` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="score saved generations with a task's rewards",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--task", required=True, choices=SCORE_TASKS, help="which task's rewards to apply")
    parser.add_argument("--input", required=True, type=Path, help="JSONL file of generations or dataset rows")
    parser.add_argument("--output", type=Path, help="JSONL file to write scored lines to (default: stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=5.0, help="seconds allowed per answer check or program (default 5)"
    )
    parser.add_argument("--workers", type=positive_count, default=None, help="checking processes (default: all cores)")
    parser.set_defaults(func=run)


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def positive_count(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, with errors naming the line."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    rows = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid UTF-8 (byte {error.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def sample_of(task: str, row: dict[str, Any], where: str) -> tuple[Any, str]:
    """The ``(completion, gold answer)`` of an input row for ``task``; a numeric gold answer counts as its text."""
    from redit.tasks import gsm8k, task_module
    from redit.tasks import math as math_task

    if task in CODE_TASKS:
        return _code_sample(task_module(task), row, where)
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        row = row | {"answer": str(answer)}
    if task == "gsm8k":
        completion = row.get("completion", row.get("solution", row.get("answer")))
        gold = gsm8k.gold_answer(str(row["answer"])) if row.get("answer") is not None else None
    else:
        completion = row.get("completion", row.get("solution"))
        gold = math_task.gold_answer(row)
    if completion is None:
        raise ValueError(f"{where}: no 'completion' field (nor a dataset row's reference solution); add 'completion'")
    if not _is_completion(completion):
        raise ValueError(
            f"{where}: 'completion' must be text or a list of chat messages, got {type(completion).__name__}"
        )
    if gold is None:
        raise ValueError(f"{where}: no gold 'answer' field; add 'answer' with the final answer")
    return completion, gold


def _code_sample(module: Any, row: dict[str, Any], where: str) -> tuple[Any, str]:
    completion = row.get("completion", row.get(module.REFERENCE_FIELD))
    if completion is None:
        raise ValueError(f"{where}: no 'completion' field (nor a dataset row's {module.REFERENCE_FIELD!r}); add one")
    if not _is_completion(completion):
        raise ValueError(
            f"{where}: 'completion' must be text or a list of chat messages, got {type(completion).__name__}"
        )
    if isinstance(row.get("answer"), str):
        return completion, row["answer"]
    try:
        return completion, module.gold_answer(row)
    except (KeyError, TypeError):
        raise ValueError(
            f"{where}: no tests: give the dataset row's test fields or a JSON test spec in 'answer'"
        ) from None


def _is_completion(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value)
    )


def score_rows(task: str, rows: list[dict[str, Any]], source: str) -> tuple[dict[str, list[float]], Counter]:
    """Per-reward scores of ``rows`` and the logged answer-checking metrics."""
    from redit.rewards import get_reward
    from redit.tasks import default_rewards

    samples = [sample_of(task, row, f"{source}:{i + 1}") for i, row in enumerate(rows)]
    completions = [completion for completion, _ in samples]
    golds = [gold for _, gold in samples]
    metrics: Counter = Counter()

    def log_metric(name: str, value: float) -> None:
        metrics[name] += value

    scores = {}
    for name in default_rewards(task):
        scores[name] = get_reward(name)([""] * len(rows), completions, answer=golds, log_metric=log_metric)
    return scores, metrics


def write_rows(rows: list[dict[str, Any]], scores: dict[str, list[float]], out: TextIO) -> None:
    """Each row with its total ``reward`` and per-function ``rewards``, one JSON object per line."""
    for i, row in enumerate(rows):
        per_function = {name: values[i] for name, values in scores.items()}
        out.write(json.dumps({**row, "reward": sum(per_function.values()), "rewards": per_function}) + "\n")


def summary(task: str, scores: dict[str, list[float]], metrics: Counter, seconds: float, startup: float) -> str:
    """A short report: accuracy, mean reward, timeouts, errors, answers per second and the pool's start-up time."""
    from redit.rewards import get_reward
    from redit.tasks import task_module

    correctness = getattr(task_module(task), "CORRECTNESS_REWARD", f"{task}_correctness")
    best = get_reward(correctness).max_reward  # type: ignore[attr-defined]
    values = scores[correctness]
    n = len(values)
    totals = [sum(column) for column in zip(*scores.values(), strict=True)]
    lines = [
        f"rows: {n}",
        f"accuracy: {sum(v == best for v in values) / max(n, 1):.4f}",
        f"mean reward: {sum(totals) / max(n, 1):.4f}",
        f"timeouts: {int(metrics['verify/timeouts'] + metrics['code/timeouts'])}",
        f"errors: {int(metrics['verify/errors'] + metrics['code/errors'])}",
        f"answers/s: {n / max(seconds, 1e-9):.1f}",
        f"checker start-up: {startup:.1f} s",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Score ``args.input`` and write the scored lines and a summary."""
    from redit.sandbox import configure_sandbox
    from redit.verify import configure_verifier

    if args.output is not None:
        check_output_file(args.output, args.overwrite)  # before the scoring, which can take long
    rows = read_lines(args.input)
    start = time.perf_counter()
    if args.task in CODE_TASKS:
        configure_sandbox(workers=args.workers, timeout=args.timeout).start()
    else:
        configure_verifier(workers=args.workers, timeout=args.timeout).start()
    startup = time.perf_counter() - start
    start = time.perf_counter()
    scores, metrics = score_rows(args.task, rows, str(args.input))
    seconds = time.perf_counter() - start
    if args.output is None:
        write_rows(rows, scores, sys.stdout)
        print(summary(args.task, scores, metrics, seconds, startup), file=sys.stderr)
    else:
        with atomic_file(args.output) as out:  # all lines or none, never a truncated file
            write_rows(rows, scores, out)
        print(summary(args.task, scores, metrics, seconds, startup))
    return 0
