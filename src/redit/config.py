"""Run configuration: one YAML with sections ``output_dir``, ``model``, ``data``, ``rewards``, ``training``,
``dither``, ``eval``; ``--section.key=value`` (or ``--section.key value``) overrides, parsed as YAML, on top.

``parse_config`` validates everything before anything is written: the sections (``redit.config_schema``), the
task's ``data.params``, every ``training`` key against TRL's ``GRPOConfig`` field types, then builds the full
``GRPOConfig`` and the wrapped rewards. All problems are reported at once, one line per dotted field.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import typing
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from redit.config_schema import (
    STRICT,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    RewardSpec,
    did_you_mean,
    error_lines,
)
from redit.dither import DitherConfig

# TRL defaults that changed since the paper's TRL 0.15.2 and change what the noise does: always written out.
NOISE_RELEVANT_TRAINING_KEYS = ("scale_rewards", "loss_type", "beta", "num_generations", "max_grad_norm")
CPU_TRAINING_DEFAULTS = {"bf16": False, "gradient_checkpointing": False, "use_cpu": True}


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``5e-6`` is a float (as in YAML 1.2), not the string '5e-6'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>", lines: bool = True) -> Any:
    """Parse YAML safely (exponent floats such as ``5e-6`` are numbers); errors name ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark and lines else source
        problem = error.problem or error.context or "syntax error"
        hint = " (indent YAML with spaces, not tabs)" if "\\t" in problem or "tab" in problem else ""
        raise ValueError(f"{where}: invalid YAML: {problem}{hint}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: invalid YAML: {error}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping of sections {tuple(RunConfig.model_fields)}")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--section.key=value`` / ``--section.key value`` (or ``section.key=value``) overrides, parsed as YAML."""
    raw = copy.deepcopy(raw)
    for item in _joined(overrides):
        text = item.removeprefix("--")
        if "=" not in text:
            raise ValueError(f"override '{item}' must look like --section.key=value or --section.key VALUE")
        dotted, value = text.split("=", 1)
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override '{item}': '{part}' is not a section")
            node = child
        node[leaf] = parse_yaml(value, f"override '{item}'", lines=False)
    return raw


def _joined(items: list[str]) -> list[str]:
    """``["--a.b", "1"]`` -> ``["--a.b=1"]``: a key without ``=`` takes the next word as its value."""
    out: list[str] = []
    for item in items:
        if out and out[-1].startswith("--") and "=" not in out[-1] and not item.startswith("--"):
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
    return out


class RunConfig(BaseModel):
    """A validated run: the sections, ``training`` as given (``GRPOConfig`` keyword arguments), the noise."""

    model_config = STRICT

    output_dir: typing.Annotated[str, Field(min_length=1)]
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    rewards: typing.Annotated[list[RewardSpec], Field(min_length=1)]
    training: dict[str, Any] = {}
    dither: InstanceOf[DitherConfig] | None = None
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="before")
    @classmethod
    def _dither_run_length(cls, raw: Any) -> Any:
        """``dither.max_steps`` follows ``training.max_steps`` unless given."""
        dither, training = (raw.get("dither"), raw.get("training")) if isinstance(raw, dict) else (None, None)
        steps = training.get("max_steps") if isinstance(training, dict) else None
        if isinstance(dither, dict) and isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
            raw = raw | {"dither": {"max_steps": steps} | dither}
        return raw

    @field_validator("rewards", mode="before")
    @classmethod
    def _reward_names(cls, rewards: Any) -> Any:
        return [{"name": r} if isinstance(r, str) else r for r in rewards] if isinstance(rewards, list) else rewards

    @field_validator("training", mode="before")
    @classmethod
    def _training_given(cls, training: Any) -> Any:
        return {} if training is None else training

    @field_validator("dither", mode="before")
    @classmethod
    def _dither(cls, values: Any) -> DitherConfig | None:
        if values in (None, False, "off", "none"):
            return None
        if not isinstance(values, dict):
            raise ValueError(f"expected 'off' or a mapping, got {values!r}")
        try:
            return DitherConfig.from_dict(values)
        except TypeError as error:
            raise ValueError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML-ready) of the configuration."""
        out = self.model_dump()
        if self.dither is not None:
            out["dither"] = dataclasses.asdict(self.dither)
            if callable(self.dither.distribution):
                out["dither"]["distribution"] = getattr(self.dither.distribution, "__name__", "callable")
        return out


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw config mapping (file + overrides) into a ``RunConfig``; raise ``ConfigError`` listing all."""
    if not isinstance(raw, dict):
        raise ConfigError([f"config: expected a mapping of sections {tuple(RunConfig.model_fields)}, got {raw!r}"])
    errors: list[str] = []
    config = None
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        errors += error_lines(error, RunConfig)
    errors += _training_errors(raw.get("training")) + _params_errors(raw.get("data"))
    if config is not None and not errors:
        errors += _run_errors(config)
    if errors:
        raise ConfigError(errors)
    return config


def load_config(path: str | Path | None, overrides: list[str], default: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` (or ``default``), apply overrides, validate."""
    raw = load_yaml(path) if path is not None else copy.deepcopy(default or {})
    return parse_config(apply_overrides(raw, overrides))


# --- the parts pydantic cannot see statically: TRL's fields, the task's params, the built objects ---------------


@functools.cache
def _training_fields() -> dict[str, TypeAdapter]:
    """A strict validator per ``GRPOConfig`` field (``max_steps`` required > 0: TRL's default is 3 epochs)."""
    from trl import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    strict = ConfigDict(strict=True)
    fields = {f.name: TypeAdapter(hints[f.name], config=strict) for f in dataclasses.fields(GRPOConfig) if f.init}
    return fields | {"max_steps": TypeAdapter(PositiveInt, config=strict)}


def _training_errors(training: Any) -> list[str]:
    if training is None:
        training = {}
    if not isinstance(training, dict):
        return []  # RunConfig reports the section itself
    fields = _training_fields()
    errors = []
    for key, value in training.items():
        if key == "max_steps" and value is None:
            continue
        if key == "output_dir":
            errors.append("training.output_dir: set the top-level output_dir instead")
        elif key not in fields:
            errors.append(f"training.{key}: unknown key (not a trl.GRPOConfig field){did_you_mean(key, fields)}")
        else:
            try:
                fields[key].validate_python(value)
            except ValidationError as error:
                errors += error_lines(error, None, ("training", key))
    if training.get("max_steps") is None:
        errors.append("training.max_steps: required: the run length in steps (TRL would otherwise train 3 epochs)")
    return errors


def _params_errors(data: Any) -> list[str]:
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
        return []
    task, params = data.get("task", "arithmetic"), data.get("params") or {}
    try:
        params_type = DataConfig(task=task).params_type()
    except (ValueError, ValidationError):
        return []  # RunConfig reports the task
    if params_type is None:
        return [f"data.params: task '{task}' takes no params, got {sorted(params)}"] if params else []
    try:
        params_type.model_validate(params)
    except ValidationError as error:
        return error_lines(error, params_type, ("data", "params"))
    return []


def _run_errors(config: RunConfig) -> list[str]:
    """Cross-field checks, then build what TRL and ReDit will be given, so their errors come before any file."""
    training, dither = config.training, config.dither
    weights = [spec.weight for spec in config.rewards]
    errors = []
    if "reward_weights" in training and list(training["reward_weights"]) != weights:
        errors.append("training.reward_weights conflicts with rewards[].weight: set weights in rewards only")
    if config.model.warm_start is not None and config.model.name_or_path is not None:
        errors.append("model.warm_start applies to tiny models only; drop it or model.name_or_path")
    if config.model.name_or_path is not None:
        from redit.models import check_model_name

        try:
            check_model_name(config.model.name_or_path)
        except ValueError as error:
            errors.append(str(error))
    if errors:
        return errors
    try:
        with warnings.catch_warnings():  # TRL's deprecation notices come once, when the trainer is built
            warnings.simplefilter("ignore")
            args = grpo_args(config)
    except (ValueError, TypeError, ImportError) as error:
        errors.append(f"training: {error}")
    else:
        from redit.integrations.trl_trainer import check_settings, check_trl_version

        try:
            check_trl_version()
            check_settings(args, dither)
        except ValueError as error:
            errors.append(str(error))
    try:
        build_rewards(config)
    except (ValueError, TypeError) as error:
        errors.append(str(error))
    return errors


def grpo_args(config: RunConfig) -> Any:
    """TRL ``GRPOConfig`` for the run: CPU-safe defaults, one log per step, TensorBoard, our reward weights."""
    import torch
    from trl import GRPOConfig

    training = dict(config.training)
    weights = [spec.weight for spec in config.rewards]
    defaults: dict[str, Any] = {"logging_steps": 1, "report_to": ["tensorboard"], "save_steps": 100}
    if not torch.cuda.is_available():
        defaults |= CPU_TRAINING_DEFAULTS
    return GRPOConfig(output_dir=config.output_dir, **(defaults | training | {"reward_weights": weights}))


def build_rewards(config: RunConfig) -> list[Any]:
    """The run's reward functions (checks their maxima against the dither settings)."""
    from redit.integrations.trl import check_maxima
    from redit.rewards.base import max_reward_of, reward_name

    rewards = [spec.function() for spec in config.rewards]
    check_maxima(config.dither, [reward_name(fn) for fn in rewards], [max_reward_of(fn) for fn in rewards])
    return rewards
