"""The ReDit authors' GSM8K-format rewards exactly as their scripts compute them, quirks included (``*_authors``).

Reproduced from the behaviour of ``grpo_gsm8k.py`` / ``grpo_math.py`` (TRL 0.15.2), checked against their outputs
on the completions of ``tests/data/authors_rewards.json``. redit's own rewards (:mod:`redit.rewards.gsm8k`,
:mod:`redit.rewards.math`) stay the defaults; ``docs/paper.md`` lists every difference and why. What the authors'
code does that ours does not:

* the answer is the text after the *last* ``<answer>`` up to the next ``</answer>`` (else the whole text), stripped;
  their ReDit runs compare its first integer (``\\d+``) with the gold's, so ``18.5`` and ``-18`` match ``18``; their
  vanilla run compared the strings exactly;
* the format checks run on the stripped text and accept ``…18</answer>`` and any text after ``</answer>`` that
  starts a new line (their ``$`` under ``re.MULTILINE``); the soft check accepts anything between the blocks;
* ``gsm8k_xml_count_authors`` gives 0.501 when nothing follows ``\\n</answer>`` and can go below 0;
* ``gsm8k_int_authors`` uses ``str.isdigit`` (``²`` counts) and scores untagged completions by their whole text;
* ``reasoning_steps_authors`` counts ``Step N:``, a leading ``N.`` (start of the text only), ``\\n-``, ``\\n*``
  and ``First,``/``Second,``/``Next,``/``Finally,`` anywhere, case-sensitive.

Every scan is linear in the completion length (``str.find`` loops instead of the authors' backtracking regexes).
"""

from __future__ import annotations

import math
import re
from typing import Any

from redit.rewards.base import completion_text, reward
from redit.rewards.general import gold_answers

_INTEGER = re.compile(r"\d+")
_STEP_MARKERS = re.compile(r"Step \d+:|\n[-*]|(?:First|Second|Next|Finally),")
_LEADING_NUMBER = re.compile(r"\d+\.")
_GSM8K_TAGS = ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>")
# cosine_scaled_authors: the authors' defaults (lengths in characters)
COSINE_MAX_LEN = 1000
COSINE_CORRECT = (1.0, 0.5)  # value at length 0, value at COSINE_MAX_LEN
COSINE_WRONG = (-0.5, 0.0)
REPETITION_NGRAM = 3


def answer_text(text: str) -> str:
    """The authors' ``extract_xml_answer``: after the last ``<answer>``, before the next ``</answer>``, stripped."""
    return text.rpartition("<answer>")[2].partition("</answer>")[0].strip()


def first_integer(text: str) -> str:
    """The first run of digits in ``text`` (``""`` if none)."""
    match = _INTEGER.search(text)
    return match.group() if match else ""


def first_integer_correct(text: str, gold: str) -> bool:
    """The authors' ReDit-run check: the first integers of the answer and of the gold are equal (``""`` = none)."""
    return first_integer(answer_text(text)) == first_integer(gold)


def _tag_ends_line(text: str, tag: str, start: int) -> bool:
    """``tag`` occurs at or after ``start`` followed by a newline or the end (the authors' ``tag$``, MULTILINE)."""
    at = text.find(tag, start)
    while at >= 0:
        end = at + len(tag)
        if end == len(text) or text[end] == "\n":
            return True
        at = text.find(tag, at + 1)
    return False


def is_strict_format_authors(text: str) -> bool:
    """Stripped text starts ``<reasoning>\\n``, later has ``\\n</reasoning>\\n<answer>\\n``, then ``</answer>``
    at a line end."""
    text, head, middle = text.strip(), "<reasoning>\n", "\n</reasoning>\n<answer>\n"
    if not text.startswith(head):
        return False
    at = text.find(middle, len(head))
    return at >= 0 and _tag_ends_line(text, "</answer>", at + len(middle))


def is_soft_format_authors(text: str) -> bool:
    """Stripped text starts ``<reasoning>``, then ``</reasoning>``, ``<answer>`` and ``</answer>`` at a line end."""
    text = text.strip()
    if not text.startswith("<reasoning>"):
        return False
    closing = text.find("</reasoning>", len("<reasoning>"))
    if closing < 0:
        return False
    opening = text.find("<answer>", closing + len("</reasoning>"))
    return opening >= 0 and _tag_ends_line(text, "</answer>", opening + len("<answer>"))


def xml_count_authors(text: str) -> float:
    """0.125 per GSM8K tag present exactly once; with ``\\n</answer>`` once, minus 0.001 × (characters after it − 1)."""
    score = 0.0
    for tag in _GSM8K_TAGS:
        if text.count(tag) == 1:
            score += 0.125
    if text.count(_GSM8K_TAGS[-1]) == 1:
        score -= (len(text.rpartition(_GSM8K_TAGS[-1])[2]) - 1) * 0.001
    return score


def count_steps_authors(text: str) -> int:
    """Step markers in the stripped text: ``Step N:``, ``\\n-``, ``\\n*``, ``First,``…, and a leading ``N.``."""
    text = text.strip()
    return len(_STEP_MARKERS.findall(text)) + (1 if _LEADING_NUMBER.match(text) else 0)


def _texts(completions: list) -> list[str]:
    return [completion_text(c) for c in completions]


@reward(max_reward=2.0)
def gsm8k_correctness_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """2 if the first integer of the answer equals the gold's (the authors' ReDit runs), else 0."""
    golds = gold_answers(kwargs, len(completions), "gsm8k_correctness_authors")
    return [2.0 if first_integer_correct(t, g) else 0.0 for t, g in zip(_texts(completions), golds, strict=True)]


@reward(max_reward=2.0)
def gsm8k_correctness_vanilla_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """2 if the answer is exactly the gold string (the authors' vanilla GRPO run), else 0."""
    golds = gold_answers(kwargs, len(completions), "gsm8k_correctness_vanilla_authors")
    return [2.0 if answer_text(t) == g else 0.0 for t, g in zip(_texts(completions), golds, strict=True)]


@reward(max_reward=0.5)
def gsm8k_int_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """0.5 if the answer (the whole text without tags) is all digits by ``str.isdigit``, else 0."""
    return [0.5 if answer_text(t).isdigit() else 0.0 for t in _texts(completions)]


@reward(max_reward=1.0)
def gsm8k_strict_format_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 for the authors' strict layout (see :func:`is_strict_format_authors`), else 0."""
    return [1.0 if is_strict_format_authors(t) else 0.0 for t in _texts(completions)]


@reward(max_reward=1.0)
def gsm8k_soft_format_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """1 for the authors' soft layout (see :func:`is_soft_format_authors`), else 0."""
    return [1.0 if is_soft_format_authors(t) else 0.0 for t in _texts(completions)]


@reward(max_reward=0.5)
def gsm8k_xml_count_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """The authors' tag count (see :func:`xml_count_authors`): up to 0.501, unbounded below; declares 0.5, the
    maximum the authors scaled its noise by."""
    return [xml_count_authors(t) for t in _texts(completions)]


@reward(max_reward=1.0)
def tag_count_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """0.25 for each of the four GSM8K tags present exactly once."""
    return [0.25 * sum(t.count(tag) == 1 for tag in _GSM8K_TAGS) for t in _texts(completions)]


@reward(max_reward=1.0)
def reasoning_steps_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """``min(1, n / 3)`` with ``n`` the authors' step markers (see :func:`count_steps_authors`)."""
    return [min(1.0, count_steps_authors(t) / 3) for t in _texts(completions)]


@reward(max_reward=0.5)
def len_reward_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """Kimi 1.5 length reward over the call's completions: ``λ = 0.5 - (len - min) / (max - min)`` (characters),
    ``λ`` if first-integer correct else ``min(0, λ)``; all 0 when every length is equal."""
    golds = gold_answers(kwargs, len(completions), "len_reward_authors")
    texts = _texts(completions)
    lengths = [len(t) for t in texts]
    shortest, longest = min(lengths), max(lengths)
    if shortest == longest:
        return [0.0] * len(texts)
    out = []
    for text, gold, length in zip(texts, golds, lengths, strict=True):
        value = 0.5 - (length - shortest) / (longest - shortest)
        out.append(float(value if first_integer_correct(text, gold) else min(0, value)))
    return out


def _cosine(length: int, at_zero: float, at_max: float) -> float:
    return at_zero - (at_zero - at_max) * (1 - math.cos(length * math.pi / COSINE_MAX_LEN)) / 2


@reward(max_reward=1.0)
def cosine_scaled_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """Length-scaled correctness (arXiv:2502.03373): a cosine in the length in characters from 1.0 to 0.5 if
    first-integer correct, from -0.5 to 0 if not, over 1000 characters (and periodic beyond, as in their code)."""
    golds = gold_answers(kwargs, len(completions), "cosine_scaled_authors")
    return [
        _cosine(len(t), *(COSINE_CORRECT if first_integer_correct(t, g) else COSINE_WRONG))
        for t, g in zip(_texts(completions), golds, strict=True)
    ]


def repetition_penalty(text: str, n: int = REPETITION_NGRAM) -> float:
    """``-(1 - distinct / total)`` over the lower-cased word ``n``-grams; 0 with fewer than ``n`` words."""
    words = text.lower().split()
    if len(text.split()) < n:
        return 0.0
    total = len(words) - n + 1
    distinct = len(set(zip(*(words[i:] for i in range(n)))))
    return (1 - distinct / total) * -1.0


@reward(max_reward=1.0)
def repetition_penalty_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """The authors' 3-gram repetition penalty in [-1, 0] (see :func:`repetition_penalty`). Its maximum is 0, so it
    declares the size of its range, 1.0, as the scale of ratio noise."""
    return [repetition_penalty(t) for t in _texts(completions)]
