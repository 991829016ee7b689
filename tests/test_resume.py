"""Real tiny runs whose checkpoint save is cut short (disk full, a kill) resume to the uninterrupted run's rows."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import Trainer, TrainerState

from redit.atomic import read_jsonl
from redit.cli import main

ARGS = [
    "--model.warm_start.steps=5",
    "--training.per_device_train_batch_size=16",
    "--training.num_generations=4",
    "--dither.sigma=0.1",
    "--training.max_steps=4",
    "--training.save_steps=1",
    "--eval.every=2",
    "--eval.limit=8",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list, list]]:
    """The uninterrupted run's metrics and eval rows (and one model cache for the module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        out = tmp_path_factory.mktemp("reference") / "run"
        assert main(["train", f"--output_dir={out}", *ARGS]) == 0
        yield read_jsonl(out / "metrics.jsonl"), read_jsonl(out / "eval.jsonl")


def _on_checkpoint_4(original: Any, step_of: Any, error: BaseException) -> Any:
    def patched(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, path, *args, **kwargs)
        if step_of(self) == 4 and "checkpoint" in str(path):
            raise error
        return result

    return patched


@pytest.mark.slow
@pytest.mark.parametrize("where", ["disk full after the weights", "killed after the trainer state"])
def test_a_cut_save_resumes_from_the_previous_checkpoint_with_identical_rows(
    reference: tuple[list, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, where: str
) -> None:
    """Checkpoint 4's save fails at one point: checkpoint-3 (not an eval step) stays whole and --resume takes it;
    the rows equal the uninterrupted run's (no extra eval row at step 3, no duplicates)."""
    out = tmp_path / "run"
    if where.startswith("disk full"):
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(Trainer, "_save", _on_checkpoint_4(Trainer._save, lambda t: t.state.global_step, full))
        expected_code, message = 1, f"{out}: saving checkpoint-4 failed: no space left on the device; checkpoint-3 is"
    else:
        save = _on_checkpoint_4(TrainerState.save_to_json, lambda s: s.global_step, KeyboardInterrupt())
        monkeypatch.setattr(TrainerState, "save_to_json", save)
        expected_code, message = 130, "redit train: interrupted"
    assert main(["train", f"--output_dir={out}", *ARGS]) == expected_code
    err = capsys.readouterr().err
    assert message in err, err
    assert not (out / "checkpoint-4").exists() and (out / "checkpoint-3" / "trainer_state.json").exists()
    monkeypatch.undo()

    assert main(["train", f"--output_dir={out}", *ARGS, "--resume"]) == 0
    assert f"resuming from {out / 'checkpoint-3'}" in capsys.readouterr().out
    metrics, evals = reference
    resumed = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert resumed[:3] == metrics[:3]
    assert resumed[3]["loss"] == pytest.approx(metrics[3]["loss"], abs=1e-6)
    assert resumed[3]["reward"] == pytest.approx(metrics[3]["reward"], abs=1e-6)
    assert read_jsonl(out / "eval.jsonl") == evals and [r["step"] for r in evals] == [0, 2, 4]
    assert (out / "DONE").exists() and not (out / "checkpoint.partial").exists()
