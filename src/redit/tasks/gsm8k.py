"""GSM8K: grade-school word problems; the gold answer is the number after ``####`` in the reference solution."""

from __future__ import annotations

import re

from datasets import Dataset

from redit.tasks.data import first, read_rows, require_columns
from redit.tasks.prompts import build_prompt

PROMPT_STYLE = "gsm8k"
DEFAULT_REWARDS = ("gsm8k_xml_count", "gsm8k_soft_format", "gsm8k_strict_format", "gsm8k_int", "gsm8k_correctness")
REFERENCE_FIELD = "solution"  # the worked solution, renamed from GSM8K's ``answer`` at load time
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def gold_answer(text: str) -> str:
    """The final answer of a GSM8K solution (text after the last ``####``; the text itself without one), with
    thousands separators removed: ``"... #### 1,080"`` -> ``"1080"``."""
    marker = text.rfind("####")
    answer = text[marker + 4 :] if marker >= 0 else text
    return _THOUSANDS.sub("", answer.strip())


def load(
    path_or_id: str,
    split: str = "train",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = True,
) -> Dataset:
    """GSM8K rows with ``prompt``, ``answer`` (gold final answer), ``question`` and ``solution``."""
    rows = read_rows(path_or_id, split, hub_config="main" if path_or_id == "openai/gsm8k" else None)
    require_columns(rows, ("question", "answer"), path_or_id)
    rows = first(rows, limit).rename_column("answer", REFERENCE_FIELD)
    style = prompt_style or PROMPT_STYLE
    return rows.map(
        lambda row: {
            "prompt": build_prompt(row["question"], style, conversational),
            "answer": gold_answer(row[REFERENCE_FIELD]),
        }
    )
