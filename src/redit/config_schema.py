"""The sections of a ``redit train`` config as pydantic models (strict types, no unknown keys, bounds), and
pydantic's errors turned into one ``dotted.path: message`` line per field (``ConfigError``).

``redit.config`` assembles the sections into a ``RunConfig``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from redit.rewards.base import is_async

STRICT = ConfigDict(strict=True, extra="forbid")
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Section(BaseModel):
    model_config = STRICT


class TinyModelConfig(BaseModel):
    """Size of the tiny Qwen2 model (defaults: about 0.5M parameters)."""

    model_config = STRICT | ConfigDict(frozen=True)

    hidden_size: PositiveInt = 128
    intermediate_size: PositiveInt = 256
    num_hidden_layers: PositiveInt = 4
    num_attention_heads: PositiveInt = 4
    num_key_value_heads: PositiveInt = 2
    max_position_embeddings: PositiveInt = 256
    seed: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelConfig:
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}), and that of num_key_value_heads ({self.num_key_value_heads})"
            )
        return self


class WarmStart(Section):
    """A short supervised fine-tune of a tiny model on the task's answers before GRPO, at a constant learning rate
    (see ``redit.models``): the defaults reach about 30% greedy accuracy on 2-digit addition."""

    steps: PositiveInt = 225
    learning_rate: Annotated[FiniteFloat, Field(gt=0)] = 1e-3
    batch_size: PositiveInt = 64
    limit: PositiveInt | None = None
    seed: int = 0


class LoraSettings(Section):
    """PEFT LoRA settings (the authors': r 8, alpha 64, dropout 0.05 on every linear layer)."""

    r: PositiveInt = 8
    lora_alpha: Annotated[FiniteFloat, Field(gt=0)] = 64
    lora_dropout: Annotated[FiniteFloat, Field(ge=0, lt=1)] = 0.05
    target_modules: str | list[str] = "all-linear"
    task_type: Literal["CAUSAL_LM"] = "CAUSAL_LM"


class ModelConfig(Section):
    """``name_or_path``: a local folder or hub id; else ``tiny`` builds an offline tiny Qwen2 (see ``redit.tiny``)."""

    name_or_path: Annotated[str, Field(min_length=1)] | None = None
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    lora: LoraSettings | None = None
    warm_start: WarmStart | None = None

    @field_serializer("tiny", "lora", "warm_start")
    def _as_given(self, value: BaseModel | None) -> dict[str, Any] | None:
        """``config.yaml`` records these as the user wrote them (defaults live in code)."""
        return None if value is None else value.model_dump(exclude_unset=True)


class DataConfig(Section):
    """Which task's rows to train and evaluate on; ``params`` go to tasks that take them (checked per task).
    ``eval_path``: the held-out data when not ``path`` (e.g. MATH-500 for a MATH-train run).
    ``max_prompt_length``: render prompts and keep their last N tokens (TRL 0.15.2's left truncation)."""

    task: str = "arithmetic"
    path: Annotated[str, Field(min_length=1)] | None = None
    split: str = "train"
    limit: PositiveInt | None = None
    eval_split: str = "test"
    eval_path: Annotated[str, Field(min_length=1)] | None = None
    conversational: bool = False
    prompt_style: str | None = None
    max_prompt_length: PositiveInt | None = None
    params: dict[str, Any] = {}

    @field_validator("params", mode="before")
    @classmethod
    def _no_params(cls, params: Any) -> Any:
        return {} if params is None else params

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        from redit.tasks import task_module

        task_module(task)
        return task

    @field_validator("prompt_style")
    @classmethod
    def _known_style(cls, style: str | None) -> str | None:
        from redit.tasks.prompts import PROMPT_STYLES

        if style is not None and style not in PROMPT_STYLES:
            raise ValueError(f"unknown prompt style {style!r}; valid styles: {', '.join(PROMPT_STYLES)}")
        return style

    def params_type(self) -> type[BaseModel] | None:
        """The task's declared ``PARAMS`` model (``None``: the task takes no params)."""
        from redit.tasks import task_module

        return getattr(task_module(self.task), "PARAMS", None)

    def load(self, split: str, limit: int | None = None, heldout: bool = False) -> Any:
        """The task's ``split`` (of ``eval_path`` if ``heldout`` and set) with ``prompt`` and ``answer`` columns."""
        from redit.tasks import load_task

        return load_task(
            self.task,
            self.eval_path if heldout and self.eval_path else self.path,
            split=split,
            limit=limit,
            prompt_style=self.prompt_style,
            conversational=self.conversational,
            **self.params,
        )


def reward_function(name: str) -> Callable[..., Any]:
    """A reward function by registry name or ``module:function`` path."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import '{name}': {error}") from None
    else:
        from redit.rewards import get_reward

        fn = get_reward(name)
    if not callable(fn):
        raise ValueError(f"'{name}' is not callable (a {type(fn).__name__}); name a reward function")
    return fn


def _callable_reward(name: str) -> str:
    reward_function(name)
    return name


class RewardSpec(Section):
    """A reward by registry name or ``module:function``, with its weight and (optionally) its maximum R_max."""

    name: str
    weight: FiniteFloat = 1.0
    max_reward: Annotated[FiniteFloat, Field(gt=0)] | None = None

    _check_name = field_validator("name")(_callable_reward)

    def function(self) -> Callable[..., Any]:
        """The reward function, carrying ``max_reward`` if this spec overrides it."""
        fn = reward_function(self.name)
        if self.max_reward is None:
            return fn
        if is_async(fn):

            @functools.wraps(fn)
            async def with_max(*args: Any, **kwargs: Any) -> Any:
                return await fn(*args, **kwargs)

        else:

            @functools.wraps(fn)
            def with_max(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs)

        with_max.max_reward = float(self.max_reward)  # type: ignore[attr-defined]
        return with_max


class EvalConfig(Section):
    """Held-out accuracy every ``every`` steps (0: never) on ``limit`` problems, greedy and sampled pass@1 over k."""

    every: Annotated[int, Field(ge=0)] = 0
    limit: PositiveInt | None = 200
    k: PositiveInt = 4
    reward: str | None = None
    max_new_tokens: PositiveInt | None = None
    batch_size: PositiveInt = 64

    @field_validator("reward")
    @classmethod
    def _callable(cls, name: str | None) -> str | None:
        return None if name is None else _callable_reward(name)


class ConfigError(ValueError):
    """Every problem of a config, one ``path: message`` line each."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        header = [] if len(lines) == 1 else [f"{len(lines)} problems in the config:"]
        super().__init__("\n  ".join(header + lines))


# --- pydantic's errors as one line per dotted field -------------------------------------------------------------

EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
    "path_type": "a path",
}
BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
MISSING = {
    "output_dir": "required: where the run is written, e.g. --output_dir runs/my-run",
    "rewards": "required: list at least one reward, e.g. rewards: [exact_answer]",
}
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list|dict|constrained-\w+|function-\w+|[\w-]*\[.*\])$")


def error_lines(error: ValidationError, model: type[BaseModel] | None, prefix: tuple = ()) -> list[str]:
    """One ``dotted.path: message`` line per field of a pydantic ``ValidationError`` (union alternatives merged)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        grouped.setdefault(_dotted(prefix + loc), []).append(item | {"loc": loc})
    lines = [(path, _message(items, model)) for path, items in grouped.items()]
    return [message if message.startswith(path) else f"{path}: {message}" for path, message in lines]


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _message(items: list[dict[str, Any]], model: type[BaseModel] | None) -> str:
    first = items[0]
    kind, value = first["type"], first.get("input")
    if kind == "missing" or (value is None and _dotted(first["loc"]) in MISSING):
        return MISSING.get(_dotted(first["loc"]), "required")
    if kind in BOUNDS:
        return f"expected a value {BOUNDS[kind]} {next(iter(first['ctx'].values()))}, got {value!r}"
    if kind == "string_too_short":
        return f"expected a non-empty string, got {value!r}"
    if kind == "too_short":
        return f"expected at least {first['ctx']['min_length']} item(s), got {value!r}"
    if kind == "extra_forbidden":
        known = _fields_at(model, first["loc"][:-1])
        return (
            "unknown key" + did_you_mean(str(first["loc"][-1]), known) + (f"; known: {', '.join(known)}" * bool(known))
        )
    if kind in ("value_error", "assertion_error"):
        return first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    expected = [EXPECTED.get(i["type"]) or i["msg"].removeprefix("Input should be ") for i in items]
    return f"expected {' or '.join(dict.fromkeys(expected))}, got {value!r}"


def did_you_mean(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fields_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    for part in loc:
        if model is not None and isinstance(part, str):
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, typing.get_args(annotation)) if m is not None), None)
