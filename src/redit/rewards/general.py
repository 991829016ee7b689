"""General math rewards (binary ``accuracy``, R1 ``<think>``/``<answer>`` format) and helpers the task rewards share.

Every text scan here is linear in the completion length (no backtracking regular expressions), so a 1 MB
completion costs milliseconds; answers are checked by :mod:`redit.verify` in worker processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from redit.rewards.base import completion_text, reward
from redit.verify import CORRECT, ERROR, TIMEOUT, check_answers

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_BRACE = re.compile(r"[{}]")
_INTEGER = re.compile(r"-?\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces; ``None`` if there is none."""
    start = None
    for match in _BOXED.finditer(text):
        if text.startswith("{", match.end()):
            start = match.end()
    if start is None:
        return None
    depth = 0
    for brace in _BRACE.finditer(text, start):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[start + 1 : brace.start()]
    return None


def tag_content(text: str, tag: str) -> str | None:
    """Text after the last ``<tag>`` up to the next ``</tag>`` (or the end), stripped; ``None`` without the tag."""
    start = text.rfind(f"<{tag}>")
    if start < 0:
        return None
    content = text[start + len(tag) + 2 :]
    end = content.find(f"</{tag}>")
    return (content if end < 0 else content[:end]).strip()


def gold_answers(kwargs: dict[str, Any], count: int, reward_name: str) -> list[str]:
    """The ``answer`` column TRL passes to a reward, checked for presence and length."""
    golds = kwargs.get("answer")
    if golds is None:
        raise ValueError(
            f"reward {reward_name!r} needs an 'answer' column with the gold final answer; "
            "load the data with redit.tasks.load_task or add that column"
        )
    if len(golds) != count:
        raise ValueError(f"reward {reward_name!r} got {len(golds)} gold answers for {count} completions")
    return [str(g) for g in golds]


def score_answers(
    golds: Sequence[str], answers: Sequence[str | None], value: float, log_metric: Callable[[str, float], Any] | None
) -> list[float]:
    """``value`` for each answer that math-verify finds equal to its gold, else 0; logs timeouts and errors."""
    todo = [i for i, answer in enumerate(answers) if answer is not None]
    statuses = check_answers([golds[i] for i in todo], [answers[i] for i in todo]) if todo else []  # type: ignore[misc]
    rewards = [0.0] * len(answers)
    for i, status in zip(todo, statuses, strict=True):
        rewards[i] = value if status == CORRECT else 0.0
    if log_metric is not None:
        log_metric("verify/timeouts", float(statuses.count(TIMEOUT)))
        log_metric("verify/errors", float(statuses.count(ERROR)))
    return rewards


def final_answer(text: str) -> str | None:
    """The answer of a completion: the ``<answer>`` tag's content (its last ``\\boxed{}`` if it has one), else the
    last ``\\boxed{}`` of the text."""
    tagged = tag_content(text, "answer")
    if tagged is None:
        return last_boxed(text)
    boxed = last_boxed(tagged)
    return tagged if boxed is None else boxed


@reward(max_reward=1.0)
def accuracy(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 if the completion's final answer (see :func:`final_answer`) equals the gold ``answer``, else 0."""
    golds = gold_answers(kwargs, len(completions), "accuracy")
    answers = [final_answer(completion_text(c)) for c in completions]
    return score_answers(golds, answers, 1.0, kwargs.get("log_metric"))


def is_r1_format(text: str) -> bool:
    """``<think>…</think>`` then ``<answer>…</answer>``, each tag exactly once, nothing but whitespace around."""
    text = text.strip()
    tags = ("<think>", "</think>", "<answer>", "</answer>")
    if any(text.count(tag) != 1 for tag in tags) or not (text.startswith(tags[0]) and text.endswith(tags[3])):
        return False
    between = text[text.index(tags[1]) + len(tags[1]) : text.index(tags[2])]
    return not between.strip()


@reward(max_reward=1.0)
def r1_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 if the completion has the R1 layout ``<think>…</think><answer>…</answer>``, else 0."""
    return [1.0 if is_r1_format(completion_text(c)) else 0.0 for c in completions]


@reward(max_reward=1.0)
def exact_answer(prompts: list, completions: list, answer: list[str], **_: Any) -> list[float]:
    """1.0 when the completion, stripped of surrounding whitespace, is exactly the gold answer; else 0.0."""
    return [float(completion_text(c).strip() == str(a)) for c, a in zip(completions, answer, strict=True)]


@reward(max_reward=1.0)
def last_number(prompts: list, completions: list, answer: list[str], **_: Any) -> list[float]:
    """1.0 when the last integer in the completion is the gold answer (``The answer is 7.`` for ``7``); else 0.0."""
    found = [_INTEGER.findall(completion_text(c)) for c in completions]
    return [float(bool(f) and f[-1] == str(a).strip()) for f, a in zip(found, answer, strict=True)]
