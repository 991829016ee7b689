"""The ``*_authors`` rewards equal the authors' own functions on the completions of ``data/authors_rewards.json``.

The expected values were produced by running the reward functions of the authors' ``grpo_gsm8k.py`` and
``grpo_math.py`` (see ``data/README.md``); every quirk listed in ``docs/paper.md`` has completions there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redit.rewards import REWARDS, get_reward, max_reward_of

FIXTURE = json.loads((Path(__file__).resolve().parent / "data" / "authors_rewards.json").read_text())
CASES = FIXTURE["cases"]
NAMES = sorted({name for case in CASES for name in case["expected"]})


def test_fixture_is_large_enough() -> None:
    assert sum(len(case["completions"]) for case in CASES) >= 150
    assert set(NAMES) == {name for name in REWARDS if name.endswith("_authors")}


@pytest.mark.parametrize("name", NAMES)
def test_equals_the_authors_code(name: str) -> None:
    fn, checked = get_reward(name), 0
    for index, case in enumerate(CASES):
        if name not in case["expected"]:
            continue
        completions = [[{"role": "assistant", "content": text}] for text in case["completions"]]
        got = fn([""] * len(completions), completions, answer=[case["answer"]] * len(completions))
        for text, value, expected in zip(case["completions"], got, case["expected"][name], strict=True):
            assert value == pytest.approx(expected, abs=1e-12), f"{name}, case {index}: {text!r}"
        checked += len(completions)
    assert checked >= 50


@pytest.mark.parametrize("name", NAMES)
def test_declares_its_maximum(name: str) -> None:
    observed = [v for case in CASES for v in case["expected"].get(name, [])]
    declared = max_reward_of(get_reward(name))
    assert declared is not None and declared > 0
    assert max(observed) <= declared + 0.0011  # xml_count reaches 0.501; its noise scale is the authors' 0.5


STRICT, SOFT = "gsm8k_strict_format", "gsm8k_soft_format"


@pytest.mark.parametrize(
    ("ours", "authors", "text"),
    [
        (STRICT, f"{STRICT}_authors", "  <reasoning>\nwork\n</reasoning>\n<answer>\n18\n</answer>"),
        (STRICT, f"{STRICT}_authors", "<reasoning>\nwork\n</reasoning>\n<answer>\n18</answer>"),
        (STRICT, f"{STRICT}_authors", "<reasoning>\nwork\n</reasoning>\n<answer>\n18\n</answer>\nmore"),
        (SOFT, f"{SOFT}_authors", "<reasoning>work</reasoning> so <answer>18</answer>"),
        ("gsm8k_int", "gsm8k_int_authors", "18"),
        ("math_reasoning_steps", "reasoning_steps_authors", "We do:\n- add\n- multiply\n* done"),
    ],
)
def test_quirks_differ_from_redit_defaults(ours: str, authors: str, text: str) -> None:
    """The authors' checks accept what redit's defaults reject (the table in docs/paper.md)."""
    assert get_reward(authors)([""], [text])[0] > 0
    assert get_reward(ours)([""], [text])[0] == 0
