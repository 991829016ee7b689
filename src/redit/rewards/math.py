"""The MATH rewards: correctness of the final ``\\boxed{}`` answer (2.0) and reasoning steps (1.0)."""

from __future__ import annotations

import re
from typing import Any

from redit.rewards.base import completion_text, reward
from redit.rewards.general import gold_answers, last_boxed, score_answers

# A step is a line that starts (after spaces and markdown marks such as "#", "*", "-", ">") with "Step N",
# a number followed by "." or ")" and a space, or one of the ordinal words below.
_STEP = re.compile(
    r"^[ \t#*>-]*(?:step[ \t]*\d+|\d+[.)][ \t]|(?:first|second|third|next|then|finally)\b)",
    re.IGNORECASE | re.MULTILINE,
)


def count_steps(text: str) -> int:
    """Number of lines that start with a step marker (``Step 2:``, ``3.``, ``First,``, ``Next,``, ``Finally,``…)."""
    return len(_STEP.findall(text))


@reward(max_reward=2.0)
def math_correctness(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """2 if the last ``\\boxed{}`` of the completion equals the gold ``answer`` (math-verify), else 0."""
    golds = gold_answers(kwargs, len(completions), "math_correctness")
    answers = [last_boxed(completion_text(c)) for c in completions]
    return score_answers(golds, answers, 2.0, kwargs.get("log_metric"))


@reward(max_reward=1.0)
def math_reasoning_steps(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """``min(1, n / 3)`` where ``n`` is the number of step lines (see :func:`count_steps`)."""
    return [min(1.0, count_steps(completion_text(c)) / 3) for c in completions]
