"""Rule-based rewards: TRL-compatible callables that declare their maximum (``max_reward``).

``REWARDS`` maps the names used in ``redit train`` configs to the functions; ``get_reward`` looks one up.
"""

from collections.abc import Callable

from redit.rewards.authors import (
    cosine_scaled_authors,
    gsm8k_correctness_authors,
    gsm8k_correctness_vanilla_authors,
    gsm8k_int_authors,
    gsm8k_soft_format_authors,
    gsm8k_strict_format_authors,
    gsm8k_xml_count_authors,
    len_reward_authors,
    reasoning_steps_authors,
    repetition_penalty_authors,
    tag_count_authors,
)
from redit.rewards.authors_math import math_correctness_authors
from redit.rewards.base import completion_text, max_reward_of, reward, reward_name
from redit.rewards.code import code_format, code_pass_all, code_pass_fraction
from redit.rewards.general import accuracy, exact_answer, last_number, r1_format
from redit.rewards.gsm8k import gsm8k_correctness, gsm8k_int, gsm8k_soft_format, gsm8k_strict_format, gsm8k_xml_count
from redit.rewards.math import math_correctness, math_reasoning_steps

REWARDS: dict[str, Callable[..., list[float]]] = {
    fn.__name__: fn
    for fn in (
        gsm8k_correctness,
        gsm8k_int,
        gsm8k_strict_format,
        gsm8k_soft_format,
        gsm8k_xml_count,
        math_correctness,
        math_reasoning_steps,
        accuracy,
        r1_format,
        exact_answer,
        last_number,
        code_pass_all,
        code_pass_fraction,
        code_format,
        # the authors' code exactly, quirks included (see redit.rewards.authors and docs/paper.md)
        gsm8k_correctness_authors,
        gsm8k_correctness_vanilla_authors,
        gsm8k_int_authors,
        gsm8k_strict_format_authors,
        gsm8k_soft_format_authors,
        gsm8k_xml_count_authors,
        math_correctness_authors,
        reasoning_steps_authors,
        tag_count_authors,
        len_reward_authors,
        cosine_scaled_authors,
        repetition_penalty_authors,
    )
}


def get_reward(name: str) -> Callable[..., list[float]]:
    """The reward function registered as ``name``."""
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; valid names: {', '.join(sorted(REWARDS))}") from None


__all__ = ["REWARDS", "completion_text", "get_reward", "max_reward_of", "reward", "reward_name"]
