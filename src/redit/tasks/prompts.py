"""Prompt styles of the ReDit authors' code: GSM8K ``<reasoning>``/``<answer>``, MATH ``\\boxed{}``, R1 ``<think>``;
and for code (the authors published no code prompt): ``code`` asks for a fenced Python block, ``raw`` is the question
as is (HumanEval's prompt, for plain continuation).

``build_prompt`` returns a conversational prompt (a list of chat messages, rendered by the model's chat template in
TRL) or, with ``conversational=False``, a plain string: the messages' contents separated by blank lines. The
``*_authors`` styles are the authors' strings character for character (blank lines, the one-shot example's typo and
trailing space); the others are tidied. ``truncate_prompts`` emulates TRL 0.15.2's ``max_prompt_length``.
"""

from __future__ import annotations

from typing import Any

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

GSM8K_AUTHORS_SYSTEM_PROMPT = "\n" + GSM8K_SYSTEM_PROMPT.replace(":\n", ":\n\n", 1) + "\n"
GSM8K_AUTHORS_ONE_SHOT = (
    GSM8K_ONE_SHOT[0],
    {
        "role": "assistant",
        "content": "<reasoning>\n9 is divisble by 3 and 8 is divisible by 2, but 7 is prime.\n</reasoning>\n"
        "<answer>\n7\n</answer> \n",
    },
)

MATH_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."

CODE_INSTRUCTION = "Write your solution in Python in a single ```python code block."

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


def _gsm8k_authors(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": GSM8K_AUTHORS_SYSTEM_PROMPT},
        *GSM8K_AUTHORS_ONE_SHOT,
        {"role": "user", "content": question},
    ]


def _math(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{question}\n{MATH_INSTRUCTION}"}]


def _math_authors(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{question} {MATH_INSTRUCTION}"}]


def _r1(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": R1_SYSTEM_PROMPT}, {"role": "user", "content": question}]


def _code(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{question}\n\n{CODE_INSTRUCTION}"}]


def _raw(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


PROMPT_STYLES = {
    "gsm8k": _gsm8k,
    "gsm8k_oneshot": _gsm8k_oneshot,
    "gsm8k_authors": _gsm8k_authors,
    "math": _math,
    "math_authors": _math_authors,
    "r1": _r1,
    "code": _code,
    "raw": _raw,
}


def build_prompt(question: str, style: str, conversational: bool = True) -> list[dict[str, str]] | str:
    """The prompt for ``question`` in ``style`` (one of ``PROMPT_STYLES``)."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; valid styles: {', '.join(PROMPT_STYLES)}")
    messages = PROMPT_STYLES[style](question)
    return messages if conversational else "\n\n".join(m["content"] for m in messages)


def truncate_prompt(prompt: list[dict[str, str]] | str, tokenizer: Any, max_tokens: int) -> str:
    """The prompt as the model sees it (chat template and generation prompt applied), cut to its last
    ``max_tokens`` tokens at a token boundary: TRL 0.15.2's left truncation, as text."""
    text = (
        tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        if isinstance(prompt, list)
        else prompt
    )
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= max_tokens else text[offsets[-max_tokens][0] :]


def truncate_prompts(rows: Any, tokenizer: Any, max_tokens: int | None) -> Any:
    """``rows`` (a dataset with a ``prompt`` column) with every prompt rendered and left-truncated to
    ``max_tokens`` tokens (see :func:`truncate_prompt`); unchanged when ``max_tokens`` is ``None``."""
    if max_tokens is None:
        return rows
    return rows.map(lambda row: {"prompt": truncate_prompt(row["prompt"], tokenizer, max_tokens)})
