"""redit's GSM8K rewards, after the ReDit authors' code (the "GRPO GSM8K" recipe), total maximum 5.0.

Completions are expected as ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>``. Differences from the
recipe, on purpose (its exact behaviour is :mod:`redit.rewards.authors`; ``docs/paper.md`` compares them): the strict
layout rejects leading whitespace and text after ``</answer>`` (its final newline is optional), the soft layout
allows only whitespace between the blocks, correctness is checked by math-verify, ``gsm8k_int`` needs the tag, and
``gsm8k_xml_count`` stays in [0, 0.5]. The checks are linear-time string scans (so hostile input cannot cause regex
backtracking).
"""

from __future__ import annotations

import re
from typing import Any

from redit.rewards.base import completion_text, reward
from redit.rewards.general import gold_answers, score_answers, tag_content

_SOFT_MIDDLE = re.compile(r"</reasoning>\s*<answer>")
_DIGITS = re.compile(r"[0-9]+")


def gsm8k_answer(text: str) -> str:
    """The answer of a completion: the ``<answer>`` tag's content, else the text after the last ``####`` (GSM8K's
    reference format, up to the line end), else the whole text; stripped."""
    tagged = tag_content(text, "answer")
    if tagged is not None:
        return tagged
    marker = text.rfind("####")
    if marker >= 0:
        return text[marker + 4 :].strip().split("\n", 1)[0].strip()
    return text.strip()


@reward(max_reward=2.0)
def gsm8k_correctness(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """2 if the completion's answer (see :func:`gsm8k_answer`) equals the gold ``answer`` (math-verify), else 0."""
    golds = gold_answers(kwargs, len(completions), "gsm8k_correctness")
    answers = [gsm8k_answer(completion_text(c)) for c in completions]
    return score_answers(golds, answers, 2.0, kwargs.get("log_metric"))


@reward(max_reward=0.5)
def gsm8k_int(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """0.5 if the ``<answer>`` tag holds a non-negative integer written in digits, else 0."""
    answers = [tag_content(completion_text(c), "answer") for c in completions]
    return [0.5 if a is not None and _DIGITS.fullmatch(a) else 0.0 for a in answers]


def is_strict_format(text: str) -> bool:
    """Exactly ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>`` (final newline optional), tags once."""
    body = text.removesuffix("\n")
    head, tail, separator = "<reasoning>\n", "\n</answer>", "\n</reasoning>\n<answer>\n"
    if not (body.startswith(head) and body.endswith(tail)) or len(body) < len(head) + len(tail):
        return False
    middle = body[len(head) : len(body) - len(tail)]
    return (
        middle.count(separator) == 1
        and all(middle.count(tag) == 1 for tag in ("</reasoning>", "<answer>"))
        and "<reasoning>" not in middle
        and "</answer>" not in middle
    )


@reward(max_reward=1.0)
def gsm8k_strict_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 if the completion has exactly the strict layout (see :func:`is_strict_format`), else 0."""
    return [1.0 if is_strict_format(completion_text(c)) else 0.0 for c in completions]


def is_soft_format(text: str) -> bool:
    """Starts with ``<reasoning>``, then ``</reasoning>``, whitespace, ``<answer>``, and later ``</answer>``."""
    if not text.startswith("<reasoning>"):
        return False
    middle = _SOFT_MIDDLE.search(text, len("<reasoning>"))
    return middle is not None and text.find("</answer>", middle.end()) >= 0


@reward(max_reward=1.0)
def gsm8k_soft_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 if the completion has the loose ``<reasoning>…</reasoning> <answer>…</answer>`` layout, else 0."""
    return [1.0 if is_soft_format(completion_text(c)) else 0.0 for c in completions]


def xml_count(text: str) -> float:
    """0.125 for each of ``<reasoning>\\n``, ``\\n</reasoning>\\n``, ``\\n<answer>\\n``, ``\\n</answer>`` present
    exactly once, minus 0.001 per character after the last ``</answer>`` (one final newline is free); at least 0."""
    tags = ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>")
    score = 0.125 * sum(text.count(tag) == 1 for tag in tags)
    end = text.rfind("</answer>")
    if end >= 0:
        score -= 0.001 * len(text[end + len("</answer>") :].removeprefix("\n"))
    return max(0.0, score)


@reward(max_reward=0.5)
def gsm8k_xml_count(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """Partial credit up to 0.5 for the GSM8K tags (see :func:`xml_count`)."""
    return [xml_count(completion_text(c)) for c in completions]
