"""Fixtures shared by test modules: the tiny matrix run once on the local launcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tiny_matrix import ARMS, BROKEN, tiny_spec

from redit.cli import main


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One REDIT_CACHE for the session's matrices, so the tiny starting model is built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def local_matrix(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[tuple[int, Path]]:
    """``redit compare`` of vanilla, redit and a broken arm x 2 seeds on the local launcher: (exit code, out)."""
    out = tmp_path_factory.mktemp("local") / "exp"
    spec_file = out.parent / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(out, {**ARMS, "broken": BROKEN})))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIT_CACHE", str(model_cache))
        code = main(["compare", str(spec_file)])
    yield code, out
