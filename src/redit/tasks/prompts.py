"""Prompt styles of the ReDit authors' code: GSM8K ``<reasoning>``/``<answer>``, MATH ``\\boxed{}``, R1 ``<think>``.

``build_prompt`` returns a conversational prompt (a list of chat messages, rendered by the model's chat template in
TRL) or, with ``conversational=False``, a plain string: the messages' contents separated by blank lines.
"""

from __future__ import annotations

GSM8K_SYSTEM_PROMPT = """Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>"""

GSM8K_ONE_SHOT = (
    {"role": "user", "content": "What is the largest single-digit prime number?"},
    {
        "role": "assistant",
        "content": "<reasoning>\n9 is divisible by 3 and 8 is divisible by 2, but 7 is prime.\n</reasoning>\n"
        "<answer>\n7\n</answer>",
    },
)

MATH_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."

R1_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>."
)


def _gsm8k(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": GSM8K_SYSTEM_PROMPT}, {"role": "user", "content": question}]


def _gsm8k_oneshot(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": GSM8K_SYSTEM_PROMPT}, *GSM8K_ONE_SHOT, {"role": "user", "content": question}]


def _math(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{question}\n{MATH_INSTRUCTION}"}]


def _r1(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": R1_SYSTEM_PROMPT}, {"role": "user", "content": question}]


PROMPT_STYLES = {"gsm8k": _gsm8k, "gsm8k_oneshot": _gsm8k_oneshot, "math": _math, "r1": _r1}


def build_prompt(question: str, style: str, conversational: bool = True) -> list[dict[str, str]] | str:
    """The prompt for ``question`` in ``style`` (one of ``PROMPT_STYLES``)."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; valid styles: {', '.join(PROMPT_STYLES)}")
    messages = PROMPT_STYLES[style](question)
    return messages if conversational else "\n\n".join(m["content"] for m in messages)
