"""A synthetic arithmetic task (``12+34=`` → ``46``), scored by the strict ``exact_answer`` reward.

Seeded and offline, with a disjoint held-out set.

Every problem of the chosen size is assigned to the held-out split by a seeded hash (``heldout_fraction``), so the
two splits never share a problem and are the same for every run with the same ``seed``.
"""

from __future__ import annotations

import itertools
import operator
import random
from typing import Annotated, Any

from datasets import Dataset
from pydantic import BaseModel, ConfigDict, Field, field_validator

from redit.rng import derive_seed

OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
SYSTEM_PROMPT = "Answer with the number only."


class ArithmeticSpec(BaseModel):
    """Difficulty (``data.params``): operand width in ``digits`` and the operators used."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    digits: Annotated[int, Field(ge=1, le=4)] = 2
    operators: Annotated[str, Field(min_length=1)] = "+"
    heldout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    seed: int = 0

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, operators: str) -> str:
        if set(operators) - set(OPERATORS):
            raise ValueError(f"use only {''.join(OPERATORS)}, got {operators!r}")
        return operators


PARAMS = ArithmeticSpec


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
