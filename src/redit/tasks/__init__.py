"""Training tasks: each loads its data into a ``datasets.Dataset`` with ``prompt`` and gold ``answer`` columns.

``TASKS`` maps a task name to the module that implements it; the module exposes
``load(path_or_id, split, limit, prompt_style, conversational, **params) -> Dataset`` and may declare
``DEFAULT_REWARDS`` (reward names, see :data:`redit.rewards.REWARDS`), ``PROMPT_STYLE`` and ``PARAMS`` (the pydantic
model of its ``data.params``; a task without one takes none). Modules are imported on first use, and
other code may register more tasks by adding to ``TASKS``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from datasets import Dataset

TASKS: dict[str, str] = {
    "gsm8k": "redit.tasks.gsm8k",
    "math": "redit.tasks.math",
    "arithmetic": "redit.tasks.arithmetic",
    "mbpp": "redit.tasks.mbpp",
    "humaneval": "redit.tasks.humaneval",
}


def task_module(name: str) -> ModuleType:
    """The module implementing task ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return importlib.import_module(TASKS[name])


def load_task(
    name: str,
    path_or_id: str,
    split: str = "train",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = True,
    **params: Any,
) -> Dataset:
    """Load task ``name`` from a local file/folder or Hub id: a dataset with ``prompt`` and ``answer`` columns.

    ``prompt_style`` defaults to the task's (see :mod:`redit.tasks.prompts`); ``conversational=False`` gives plain
    string prompts instead of chat messages; ``limit`` keeps the first rows; ``params`` go to tasks that take them
    (e.g. the synthetic ``arithmetic`` task's difficulty).
    """
    return task_module(name).load(path_or_id, split, limit, prompt_style, conversational, **params)


def default_rewards(name: str) -> tuple[str, ...]:
    """The reward names task ``name`` trains with by default (``("accuracy",)`` if it declares none)."""
    return tuple(getattr(task_module(name), "DEFAULT_REWARDS", ("accuracy",)))


def default_prompt_style(name: str) -> str | None:
    """The prompt style task ``name`` uses by default, if it declares one."""
    return getattr(task_module(name), "PROMPT_STYLE", None)


__all__ = ["TASKS", "default_prompt_style", "default_rewards", "load_task", "task_module"]
