"""MATH / MATH-500: competition problems; the gold is the ``answer`` field or the solution's last ``\\boxed{}``."""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from redit.rewards.general import last_boxed
from redit.tasks.data import first, read_rows, require_columns
from redit.tasks.prompts import build_prompt

PROMPT_STYLE = "math"
DEFAULT_REWARDS = ("math_correctness", "math_reasoning_steps")
REFERENCE_FIELD = "solution"


def gold_answer(row: dict[str, Any]) -> str | None:
    """The row's ``answer`` if present and non-empty, else the last ``\\boxed{}`` of its ``solution``."""
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    return last_boxed(str(row.get(REFERENCE_FIELD) or ""))


def _with_gold(row: dict[str, Any], index: int, source: str) -> dict[str, str]:
    gold = gold_answer(row)
    if gold is None:
        raise ValueError(f"{source}: row {index} has no 'answer' and its 'solution' has no \\boxed{{}} final answer")
    return {"answer": gold}


def load(
    path_or_id: str,
    split: str = "train",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = True,
) -> Dataset:
    """MATH rows with ``prompt``, ``answer`` (gold final answer), ``problem`` and ``solution``."""
    rows = first(read_rows(path_or_id, split), limit)
    require_columns(rows, ("problem", "solution"), path_or_id)
    style = prompt_style or PROMPT_STYLE
    if "answer" not in rows.column_names:
        rows = rows.add_column("answer", [None] * len(rows))
    return rows.map(
        lambda row, index: {
            "prompt": build_prompt(row["problem"], style, conversational),
            **_with_gold(row, index, path_or_id),
        },
        with_indices=True,
    )
