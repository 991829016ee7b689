"""Shipped configuration presets (``configs/*.yaml``, installed inside the package)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from redit.config import load_yaml, parse_yaml


def preset_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files("redit.configs").iterdir() if p.name.endswith(".yaml")
    )


def load_preset(name: str) -> dict[str, Any]:
    """The raw mapping of preset ``name`` (e.g. ``tiny-cpu``)."""
    if name not in preset_names():
        raise ValueError(f"unknown preset '{name}'; shipped presets: {', '.join(preset_names())}")
    return parse_yaml(resources.files("redit.configs").joinpath(f"{name}.yaml").read_text())


def read_config(path_or_name: str) -> dict[str, Any]:
    """A YAML file, or the shipped preset of that name (``paper-gsm8k``: no folder, no ``.yaml``)."""
    if "/" in path_or_name or path_or_name.endswith((".yaml", ".yml")) or Path(path_or_name).is_file():
        return load_yaml(path_or_name)
    return load_preset(path_or_name)


TINY_TRAIN = load_preset("tiny-cpu")
