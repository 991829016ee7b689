"""MBPP: short Python programming problems, each with three ``assert`` tests (Austin et al. 2021).

Rows in MBPP's schema (``task_id``, ``text``, ``code``, ``test_list``, ``test_setup_code``, ``challenge_test_list``;
the Hub's ``sanitized`` config: ``prompt``, read as ``text``, and ``test_imports``) from a local file, folder or the Hub
(``google-research-datasets/mbpp``, config ``full`` unless given as ``id:config``; splits ``train``, ``validation``,
``test`` and ``prompt`` are MBPP's task ids 601-974, 511-600, 11-510 and 1-10). The gold ``answer`` is the JSON test
spec of :mod:`redit.rewards.code`: ``test_list`` (not the challenge tests) after ``test_setup_code``.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from redit.rewards.code import spec_json
from redit.tasks.data import first, read_rows, require_columns
from redit.tasks.prompts import build_prompt

PROMPT_STYLE = "code"
DEFAULT_REWARDS = ("code_pass_all", "code_format")
CORRECTNESS_REWARD = "code_pass_all"
REFERENCE_FIELD = "code"
HUB_ID = "google-research-datasets/mbpp"


def question(row: dict[str, Any]) -> str:
    """The problem statement and its tests, as in the MBPP paper's prompt."""
    tests = "\n".join(row["test_list"])
    return f"{row['text']}\nYour code should pass these tests:\n\n{tests}"


def gold_answer(row: dict[str, Any]) -> str:
    """The JSON test spec of a row: its ``test_list`` after its setup code (``test_setup_code``/``test_imports``)."""
    setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
    return spec_json([str(t) for t in row["test_list"]], setup=str(setup))


def load(
    path_or_id: str | None,
    split: str = "train",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = True,
) -> Dataset:
    """MBPP rows with ``prompt``, ``answer`` (the JSON test spec) and MBPP's own columns."""
    if not path_or_id:
        raise ValueError(f"data.path: give an MBPP file, folder or Hub id (e.g. {HUB_ID})")
    rows = read_rows(path_or_id, split, hub_config="full" if path_or_id == HUB_ID else None)
    if "prompt" in rows.column_names and "text" not in rows.column_names:  # the Hub's sanitized config
        rows = rows.rename_column("prompt", "text")
    require_columns(rows, ("text", "test_list"), path_or_id)
    rows = first(rows, limit)
    style = prompt_style or PROMPT_STYLE
    return rows.map(
        lambda row: {"prompt": build_prompt(question(row), style, conversational), "answer": gold_answer(row)}
    )
