"""Code rewards: run the completion's program against the row's tests in the sandbox (:mod:`redit.sandbox`).

The gold ``answer`` of a code row is a JSON test spec (see :func:`spec_of`): ``tests`` (snippets run one by one
after the program, in its namespace), optional ``setup`` (run before them) and ``prefix`` (code the program is
appended to: HumanEval's prompt, which the completion continues). The program is the completion's last fenced code
block, else the whole completion. Nothing model-written is ever parsed or run in this process except by ``ast``
(``code_format``); a bad completion scores 0 and never raises.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

from redit.rewards.base import completion_text, reward
from redit.rewards.general import gold_answers
from redit.sandbox import Job, Outcome, run_programs

FENCE = "```"
MAX_PROGRAM_CHARS = 100_000  # longer programs score 0 without running


def last_fenced_block(text: str) -> str | None:
    """The content of the last fenced block, without its info line (an unclosed final fence runs to the end);
    ``None`` without a fence."""
    parts = text.split(FENCE)
    if len(parts) == 1:
        return None
    block = parts[-2] if len(parts) % 2 else parts[-1]  # an odd number of fences leaves the last block open
    info, newline, body = block.partition("\n")
    return body if newline else info


def extract_code(text: str) -> str:
    """The program in a completion: its last fenced block, else the completion itself (HumanEval continuation)."""
    block = last_fenced_block(text)
    return text if block is None else block


def spec_json(tests: list[str], setup: str = "", prefix: str = "") -> str:
    """The gold ``answer`` of a code row: its tests, setup code and program prefix as one JSON string."""
    return json.dumps({"tests": list(tests), "setup": setup, "prefix": prefix})


def spec_of(answer: str) -> dict[str, Any]:
    """The parsed JSON test spec of a code row (``tests``, ``setup``, ``prefix``), checked for shape."""
    try:
        spec = json.loads(answer)
    except (TypeError, ValueError):
        spec = None
    if not isinstance(spec, dict) or not isinstance(spec.get("tests"), list):
        raise ValueError(
            'code rewards need \'answer\' to be a JSON test spec {"tests": [...], "setup": ..., "prefix": ...}; '
            "load the data with redit.tasks.load_task('mbpp'|'humaneval', ...)"
        )
    return spec


def job_of(completion: Any, spec: dict[str, Any]) -> Job | None:
    """The sandbox job for a completion (``None`` when its program is too long to run)."""
    code = extract_code(completion_text(completion))
    prefix = str(spec.get("prefix") or "")
    program = f"{prefix}\n{code}" if prefix and not prefix.endswith("\n") else prefix + code
    setup = str(spec.get("setup") or "")
    if len(program) + len(setup) > MAX_PROGRAM_CHARS:
        return None
    return Job(program=f"{program}\n{setup}\n", tests=tuple(str(t) for t in spec["tests"]))


def run_completions(completions: list, answers: list[str], log_metric: Callable | None) -> list[Outcome | None]:
    """Run every completion's program in the sandbox; logs ``code/timeouts`` and ``code/errors``."""
    jobs = [job_of(c, spec_of(a)) for c, a in zip(completions, answers, strict=True)]
    todo = [job for job in jobs if job is not None]
    outcomes = iter(run_programs(todo) if todo else [])
    results = [None if job is None else next(outcomes) for job in jobs]
    if log_metric is not None:
        log_metric("code/timeouts", float(sum(o is not None and o.status == "timeout" for o in results)))
        log_metric("code/errors", float(sum(o is not None and o.status == "error" for o in results)))
    return results


@reward(max_reward=1.0)
def code_pass_all(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 if the completion's program passes every test of its row, else 0."""
    answers = gold_answers(kwargs, len(completions), "code_pass_all")
    outcomes = run_completions(completions, answers, kwargs.get("log_metric"))
    return [1.0 if o is not None and o.all_passed else 0.0 for o in outcomes]


@reward(max_reward=1.0)
def code_pass_fraction(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """The fraction of its row's tests the completion's program passes (0 if it crashes or times out)."""
    answers = gold_answers(kwargs, len(completions), "code_pass_fraction")
    outcomes = run_completions(completions, answers, kwargs.get("log_metric"))
    return [0.0 if o is None else o.fraction for o in outcomes]


def is_code_format(text: str) -> bool:
    """A closed fenced block whose content is syntactically valid Python (``ast.parse``: parsed, never run)."""
    block = last_fenced_block(text)
    if block is None or not block.strip() or text.count(FENCE) % 2 or len(block) > MAX_PROGRAM_CHARS:
        return False
    try:
        ast.parse(block)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@reward(max_reward=0.5)
def code_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """0.5 if the completion has a closed fenced block of valid Python, else 0."""
    return [0.5 if is_code_format(completion_text(c)) else 0.0 for c in completions]
