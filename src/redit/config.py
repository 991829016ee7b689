"""Run configuration: one YAML with sections ``model``, ``data``, ``rewards``, ``training``, ``dither``, ``eval``.

Everything is validated here, before any model is loaded; errors name the offending ``section.key``.
``--section.key=value`` overrides (values parsed as YAML) are applied on top of the file.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from redit.dither import DitherConfig

SECTIONS = ("output_dir", "model", "data", "rewards", "training", "dither", "eval")
# TRL defaults that changed since the paper's TRL 0.15.2 and change what the noise does: always written out.
NOISE_RELEVANT_TRAINING_KEYS = ("scale_rewards", "loss_type", "beta", "num_generations", "max_grad_norm")


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``5e-6`` is a float (as in YAML 1.2), not the string '5e-6'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML safely, reading exponent floats such as ``5e-6`` as numbers."""
    return yaml.load(text, Loader=_Loader)


@dataclass
class ModelConfig:
    """``name_or_path``: a local folder or hub id; else ``tiny`` builds an offline tiny Qwen2 (see ``redit.tiny``)."""

    name_or_path: str | None = None
    tiny: dict[str, Any] = field(default_factory=dict)
    dtype: str = "auto"
    lora: dict[str, Any] | None = None
    warm_start: dict[str, Any] | None = None


@dataclass
class DataConfig:
    """``eval_path``: the held-out data when not ``path`` (e.g. MATH-500 for a MATH-train run).
    ``max_prompt_length``: render prompts and keep their last N tokens (TRL 0.15.2's left truncation)."""

    task: str = "arithmetic"
    path: str | None = None
    split: str = "train"
    limit: int | None = None
    eval_split: str = "test"
    eval_path: str | None = None
    conversational: bool = False
    prompt_style: str | None = None
    max_prompt_length: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        length = self.max_prompt_length
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length <= 0):
            raise ValueError(f"data.max_prompt_length must be a positive number of tokens, got {length!r}")

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


@dataclass
class RewardSpec:
    """A reward by registry name or ``module:function``, with its weight and (optionally) its maximum R_max."""

    name: str
    weight: float = 1.0
    max_reward: float | None = None


@dataclass
class EvalConfig:
    """Held-out accuracy every ``every`` steps (0: never) on ``limit`` problems, greedy and sampled pass@1 over k."""

    every: int = 0
    limit: int = 200
    k: int = 4
    reward: str | None = None
    max_new_tokens: int | None = None
    batch_size: int = 64


@dataclass
class RunConfig:
    output_dir: str
    model: ModelConfig
    data: DataConfig
    rewards: list[RewardSpec]
    training: dict[str, Any]
    dither: DitherConfig | None
    eval: EvalConfig

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML-ready) of the configuration."""
        out = dataclasses.asdict(self)
        if self.dither is not None and callable(self.dither.distribution):
            out["dither"]["distribution"] = getattr(self.dither.distribution, "__name__", "callable")
        return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = parse_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping of sections {SECTIONS}")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--section.key=value`` (or ``section.key=value``) overrides; values are parsed as YAML."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        text = item.removeprefix("--")
        if "=" not in text:
            raise ValueError(f"override '{item}' must look like --section.key=value")
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
        node[leaf] = parse_yaml(value)
    return raw


def _section(cls: type, values: Any, name: str) -> Any:
    values = values or {}
    if not isinstance(values, dict):
        raise ValueError(f"{name}: expected a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {sorted(unknown)}; known keys: {sorted(known)}")
    return cls(**values)


def _rewards(values: Any) -> list[RewardSpec]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValueError("rewards: expected a list of reward names or {name, weight, max_reward} mappings")
    specs = [
        _section(RewardSpec, {"name": v} if isinstance(v, str) else v, f"rewards[{i}]") for i, v in enumerate(values)
    ]
    for i, spec in enumerate(specs):
        if spec.max_reward is not None and spec.max_reward <= 0:
            raise ValueError(f"rewards[{i}].max_reward must be > 0, got {spec.max_reward}")
    return specs


def _dither(values: Any, max_steps: int | None) -> DitherConfig | None:
    if values in (None, False, "off", "none"):
        return None
    if not isinstance(values, dict):
        raise ValueError(f"dither: expected 'off' or a mapping, got {values!r}")
    values = dict(values)
    values.setdefault("max_steps", max_steps)
    return DitherConfig.from_dict(values)


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw config mapping (file + overrides) into a ``RunConfig``."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ValueError(f"config: unknown section(s) {sorted(unknown)}; sections are {list(SECTIONS)}")
    if not raw.get("output_dir"):
        raise ValueError("output_dir: set where the run is written (e.g. --output_dir=runs/my-run)")
    training = dict(raw.get("training") or {})
    validate_training(training)
    config = RunConfig(
        output_dir=str(raw["output_dir"]),
        model=_section(ModelConfig, raw.get("model"), "model"),
        data=_section(DataConfig, raw.get("data"), "data"),
        rewards=_rewards(raw.get("rewards")),
        training=training,
        dither=_dither(raw.get("dither"), training.get("max_steps")),
        eval=_section(EvalConfig, raw.get("eval"), "eval"),
    )
    if not config.rewards:
        raise ValueError("rewards: list at least one reward (e.g. rewards: [exact_answer])")
    dither = config.dither
    if dither is not None and dither.shapes_advantages and training.get("scale_rewards", "none") != "none":
        raise ValueError(
            f"dither.mode={dither.mode} normalises groups itself: set training.scale_rewards=none (or leave it out)"
        )
    return config


def validate_training(training: dict[str, Any]) -> None:
    """Check ``training`` keys against TRL's ``GRPOConfig`` fields."""
    from trl import GRPOConfig

    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = set(training) - known
    if unknown:
        raise ValueError(f"training: unknown GRPOConfig field(s) {sorted(unknown)} (see trl.GRPOConfig)")
    if "output_dir" in training:
        raise ValueError("training.output_dir: set the top-level output_dir instead")
    max_steps = training.get("max_steps")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps <= 0):
        raise ValueError(f"training.max_steps must be a positive integer, got {max_steps!r}")


def load_config(path: str | Path | None, overrides: list[str], default: dict[str, Any] | None = None) -> RunConfig:
    """Read ``path`` (or ``default``), apply overrides, validate."""
    raw = load_yaml(path) if path is not None else copy.deepcopy(default or {})
    return parse_config(apply_overrides(raw, overrides))
