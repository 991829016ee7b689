"""The reward-function protocol shared by TRL, ``redit train`` and dithering.

A reward function is any TRL-style callable ``fn(prompts, completions, **columns) -> list[float | None]`` (one value
per completion). To be ratio-scaled by ReDit it declares its maximum with a ``max_reward`` attribute; the
``reward`` decorator sets it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def reward(max_reward: float) -> Callable[[F], F]:
    """Mark a function as a reward with maximum value ``max_reward`` (its R_max)."""

    def mark(fn: F) -> F:
        fn.max_reward = float(max_reward)  # type: ignore[attr-defined]
        return fn

    return mark


def max_reward_of(fn: Callable[..., Any]) -> float | None:
    """The declared maximum of a reward function, or ``None``."""
    value = getattr(fn, "max_reward", None)
    return None if value is None else float(value)


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine (an ``async def`` function, or an object with an async ``__call__``)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def reward_name(fn: Callable[..., Any]) -> str:
    """The name TRL logs a reward function under."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def completion_text(completion: Any) -> str:
    """Plain text of a completion, conversational (list of messages) or standard (string)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)
