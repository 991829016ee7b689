"""The ReDit authors' MATH correctness: Hendrycks et al.'s string normalisation of the last ``\\boxed{}``.

``math_correctness_authors`` reproduces ``compute_score`` of the authors' ``grpo_math.py`` (the normalisation of
lm-evaluation-harness' ``hendrycks_math``), including its failure modes: a ``\\fbox{}`` answer or an unbalanced box
scores 0, and where the normalisation fails (two ``\\text{ `` units, ``a/b`` with a non-integer part, a bare
``\\sqrt`` or ``\\frac``) the raw strings are compared. redit's :func:`redit.rewards.math.math_correctness`
(math-verify) is the default: it accepts equivalent answers this string match rejects (``0.5`` vs ``1/2`` is
the only numeric equivalence the normalisation knows).
"""

from __future__ import annotations

from typing import Any

from redit.rewards.base import completion_text, reward
from redit.rewards.general import gold_answers


class _Unnormalisable(Exception):
    """Where the authors' normalisation raises (their ``is_equiv`` then compares the raw strings)."""


def last_boxed_authors(text: str) -> str | None:
    """The authors' ``last_boxed_only_string``: ``\\boxed `` (with a space) up to the next ``$``; else the last
    ``\\boxed`` (or ``\\fbox``) up to where its braces first close; ``None`` if there is none or it never closes."""
    if "\\boxed " in text:
        return "\\boxed " + text.rpartition("\\boxed ")[2].partition("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def unbox_authors(boxed: str) -> str | None:
    """The content of ``\\boxed{…}`` or ``\\boxed …``; ``None`` where the authors' ``remove_boxed`` fails."""
    if "\\boxed " in boxed:
        return boxed[len("\\boxed ") :] if boxed.startswith("\\boxed ") else None
    if boxed.startswith("\\boxed{") and boxed.endswith("}"):
        return boxed[len("\\boxed{") : -1]
    return None


def _drop_units(text: str) -> str:
    parts = text.split("\\text{ ")
    if len(parts) > 2:
        raise _Unnormalisable
    return parts[0]


def _brace_sqrt(text: str) -> str:
    head, *rest = text.split("\\sqrt")
    for part in rest:
        if not part:
            raise _Unnormalisable
        head += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return head


def _brace_fracs(text: str) -> str:
    head, *rest = text.split("\\frac")
    for part in rest:
        if not part:
            raise _Unnormalisable
        if part[0] == "{":
            head += "\\frac" + part
        elif len(part) < 2:
            return text
        elif part[1] == "{":
            head += "\\frac{" + part[0] + "}" + part[1:]
        else:
            head += "\\frac{" + part[0] + "}{" + part[1] + "}" + part[2:]
    return head


def _slash_to_frac(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        top, bottom = int(parts[0]), int(parts[1])
    except ValueError:
        raise _Unnormalisable from None
    return f"\\frac{{{top}}}{{{bottom}}}" if text == f"{top}/{bottom}" else text


def normalise_authors(text: str) -> str:
    """Hendrycks et al.'s ``strip_string`` (raises :class:`_Unnormalisable` where theirs raises)."""
    for old, new in (
        ("\n", ""),
        ("\\!", ""),
        ("\\\\", "\\"),
        ("tfrac", "frac"),
        ("dfrac", "frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("^{\\circ}", ""),
        ("^\\circ", ""),
        ("\\$", ""),
    ):
        text = text.replace(old, new)
    text = _drop_units(text).replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _brace_fracs(_brace_sqrt(text).replace(" ", ""))
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_to_frac(text)


def equivalent_authors(answer: str, gold: str) -> bool:
    """The authors' ``is_equiv``: normalised strings equal, or raw strings equal where normalising fails."""
    try:
        return normalise_authors(answer) == normalise_authors(gold)
    except _Unnormalisable:
        return answer == gold


def score_authors(text: str, gold: str) -> float:
    """The authors' ``compute_score``: 2.0 if the last box's content is equivalent to the gold, else 0."""
    boxed = last_boxed_authors(text)
    answer = None if boxed is None else unbox_authors(boxed)
    return 2.0 if answer is not None and equivalent_authors(answer, gold) else 0.0


@reward(max_reward=2.0)
def math_correctness_authors(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """2 if the last ``\\boxed{}`` matches the gold after Hendrycks et al.'s normalisation (the authors' MATH
    check, see :func:`score_authors`), else 0."""
    golds = gold_answers(kwargs, len(completions), "math_correctness_authors")
    return [score_authors(completion_text(c), g) for c, g in zip(completions, golds, strict=True)]
