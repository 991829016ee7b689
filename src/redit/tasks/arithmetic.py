"""A synthetic arithmetic task (``12+34=`` → ``46``), scored by the strict ``exact_answer`` reward.

Seeded and offline, with a disjoint held-out set.

Every problem of the chosen size is assigned to the held-out split by a seeded hash (``heldout_fraction``), so the
two splits never share a problem and are the same for every run with the same ``seed``.
"""

from __future__ import annotations

import itertools
import operator
import random
from dataclasses import dataclass
from typing import Any

from datasets import Dataset

from redit.rng import derive_seed

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
SYSTEM_PROMPT = "Answer with the number only."


@dataclass(frozen=True)
class ArithmeticSpec:
    """Difficulty: operand width in ``digits`` and the operators used."""

    digits: int = 2
    operators: str = "+"
    heldout_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= 4:
            raise ValueError(f"data.params.digits must be 1..4, got {self.digits}")
        if not self.operators or set(self.operators) - set(OPERATORS):
            raise ValueError(f"data.params.operators must use only {''.join(OPERATORS)}, got {self.operators!r}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"data.params.heldout_fraction must be in (0, 1), got {self.heldout_fraction}")


def problems(spec: ArithmeticSpec, split: str) -> list[dict[str, str]]:
    """All problems of ``split`` ("train" or "test"), shuffled by the spec's seed."""
    if split not in ("train", "test"):
        raise ValueError(f"data.split must be 'train' or 'test' for the arithmetic task, got {split!r}")
    low, high = 10 ** (spec.digits - 1) if spec.digits > 1 else 0, 10**spec.digits
    rows = []
    for symbol, (a, b) in itertools.product(spec.operators, itertools.product(range(low, high), repeat=2)):
        if symbol == "-" and a < b:
            continue
        key = derive_seed(spec.seed, ord(symbol), a, b) % 10_000
        if (key < spec.heldout_fraction * 10_000) == (split == "test"):
            rows.append({"question": f"{a}{symbol}{b}=", "answer": str(OPERATORS[symbol](a, b))})
    random.Random(spec.seed).shuffle(rows)
    return rows


def load(
    path_or_id: str | None = None,
    split: str = "train",
    limit: int | None = None,
    prompt_style: str | None = None,
    conversational: bool = False,
    **params: Any,
) -> Dataset:
    """The task as a dataset with ``prompt`` and ``answer`` columns (``path_or_id`` is unused: data are generated)."""
    del path_or_id, prompt_style
    rows = problems(ArithmeticSpec(**params), split)[:limit]
    for row in rows:
        question = row["question"]
        row["prompt"] = (
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
            if conversational
            else question
        )
    return Dataset.from_list(rows)
