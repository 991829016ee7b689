"""The core pins no training framework: TRL is the `trl` extra, and only `redit train` / `compare` need it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redit.cli import main

CORE = "redit, redit.advantages, redit.dither, redit.schedules, redit.rewards, redit.verify, redit.config, redit.cli"


def test_importing_the_core_never_imports_trl():
    code = f"import sys; import {CORE}; print(sorted(m for m in ('trl', 'peft') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["train", "compare"])
def test_training_without_trl_says_which_extra_to_install(command, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # as if not installed: find_spec("trl") is None
    assert main([command]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"redit {command}: error: trl not installed: pip install 'redit[trl]'"


def test_ray_is_an_extra_the_local_launcher_never_imports():
    import re
    from pathlib import Path

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    dependencies = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.DOTALL | re.MULTILINE).group(1)
    assert "ray" not in re.findall(r'"([a-z-]+)', dependencies)
    assert '\nray = ["ray>=2.41,<3"]\n' in pyproject
    modules = "redit.experiments.compare, redit.experiments.runner, redit.experiments.local, redit.experiments.spec"
    code = f"import sys; import {modules}; print('ray' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
