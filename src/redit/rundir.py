"""The one owner of redit's folders: a training run's directory and a ``redit compare`` output directory.

A run directory (``redit train --output_dir``) holds ``config.yaml``, ``metrics.jsonl``, ``eval.jsonl``,
``tensorboard/``, ``checkpoint-N/`` (each complete: written under ``checkpoint.partial/`` and renamed into place),
``final/``, and ``DONE`` once finished or ``error.txt`` if the compare runner saw it fail. An experiment directory
(``redit compare --output-dir``) holds ``runs/<arm>/seed<k>/`` run directories, ``logs/``, ``requests/`` and a lock.
Training, the compare runner and the analysis find every file through this module.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redit.atomic import check_writable, fsync_dir, fsync_tree, write_atomic

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
EVALS = "eval.jsonl"
COMPLETIONS = "completions.jsonl"
TENSORBOARD = "tensorboard"
FINAL = "final"
DONE = "DONE"
ERROR = "error.txt"
STAGING = "checkpoint.partial"
MODEL_CARD = "README.md"  # TRL writes one next to the checkpoints
TRAINER_STATE = "trainer_state.json"  # transformers writes it last into a checkpoint
RUN_ENTRIES = frozenset({CONFIG, METRICS, EVALS, COMPLETIONS, TENSORBOARD, FINAL, DONE, ERROR, STAGING, MODEL_CARD})
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
_TEMP = re.compile(r"\..+\.tmp")  # redit.atomic's temp files, left only by a crash
_SEED = re.compile(r"seed(\d+)")
_TRACEBACK = "Traceback (most recent call last):"


@dataclass(frozen=True)
class RunDir:
    """One training run's directory and what is in it."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def evals(self) -> Path:
        return self.path / EVALS

    @property
    def completions(self) -> Path:
        return self.path / COMPLETIONS

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def final(self) -> Path:
        return self.path / FINAL

    @property
    def error(self) -> Path:
        return self.path / ERROR

    def status(self) -> str:
        """``absent``, ``failed`` (error.txt), ``done`` (DONE) or ``incomplete`` (started, not finished)."""
        if not self.path.is_dir():
            return "absent"
        if self.error.exists():
            return "failed"
        return "done" if (self.path / DONE).exists() else "incomplete"

    def mark_done(self) -> None:
        write_atomic(self.path / DONE, "")

    def mark_failed(self, text: str) -> None:
        """Record why the run failed: ``text``'s first line is the reason."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.error, text)

    def clear_failure(self) -> None:
        self.error.unlink(missing_ok=True)

    def error_line(self) -> str | None:
        """The reason the run failed (None unless failed)."""
        if not self.error.exists():
            return None
        text = self.error.read_text(errors="replace")
        first = next((line.strip() for line in text.splitlines() if line.strip()), "error.txt present")
        return (exception_line(text) or first) if first == _TRACEBACK else first[:300]

    def foreign(self) -> list[str]:
        """Entries redit did not write (sorted; [] if the directory is absent)."""
        if not self.path.is_dir():
            return []
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in RUN_ENTRIES and not _CHECKPOINT.fullmatch(p.name) and not _TEMP.fullmatch(p.name)
        )

    def is_empty(self) -> bool:
        return not self.path.is_dir() or not any(self.path.iterdir())

    def check_target(self, resume: bool, overwrite: bool) -> None:
        """Refuse what ``redit train`` must not do here; reads only, so it can run before anything is validated."""
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"output_dir {self.path} is a file, not a folder: choose another output_dir")
        check_writable(self.path)
        if resume:
            if not self.config.exists():
                raise FileNotFoundError(f"--resume: no run to resume in {self.path} (no {CONFIG})")
            return
        if self.is_empty():
            return
        foreign = self.foreign()
        if foreign:
            raise FileExistsError(
                f"output_dir {self.path} holds files redit did not write ({_listing(foreign)}); redit never deletes "
                "them, --overwrite included: move them or choose another output_dir"
            )
        if not overwrite:
            raise FileExistsError(
                f"output_dir {self.path} already holds a run: pass --resume to continue it, "
                "--overwrite to replace it, or choose another --output_dir"
            )

    def clear(self) -> None:
        """Delete the run (its entries only; DONE first, so a half-deleted run never looks finished)."""
        if self.foreign():
            raise FileExistsError(f"{self.path} holds files redit did not write ({_listing(self.foreign())})")
        (self.path / DONE).unlink(missing_ok=True)
        for entry in sorted(self.path.iterdir()):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    def checkpoint(self, step: int) -> Path:
        return self.path / f"checkpoint-{step}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints ``(step, path)``, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(_CHECKPOINT.fullmatch(p.name), p) for p in self.path.iterdir()]
        return sorted((int(m.group(1)), p) for m, p in found if m and (p / TRAINER_STATE).is_file())

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (an interrupted save's ``checkpoint.partial/`` is not one)."""
        found = self.checkpoints()
        return found[-1][1] if found else None


class CrashSafeCheckpoints:
    """``Trainer`` mixin: each checkpoint is written under ``checkpoint.partial/``, fsynced and then renamed into place,
    so every ``checkpoint-N`` is whole; an interrupted or failed save leaves the previous checkpoints as they were.
    Under several processes the main one clears, fsyncs and renames, each after all have reached that point."""

    _staging = False

    def _get_output_dir(self, trial: Any) -> str:
        out = super()._get_output_dir(trial)  # type: ignore[misc]
        return os.path.join(out, STAGING) if self._staging else out

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        run = RunDir(Path(self._get_output_dir(trial)))
        step = self.state.global_step  # type: ignore[attr-defined]
        staging = run.path / STAGING
        main, accelerator = self.args.should_save, self.accelerator  # type: ignore[attr-defined]
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        accelerator.wait_for_everyone()  # staging is empty before any process writes
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
            accelerator.wait_for_everyone()  # every process's files (e.g. its RNG state) are in
            if main:
                fsync_tree(staging)
                shutil.rmtree(run.checkpoint(step), ignore_errors=True)  # an incomplete one an older redit wrote
                os.replace(staging / run.checkpoint(step).name, run.checkpoint(step))
                fsync_dir(run.path)
        except Exception as error:
            if main:
                shutil.rmtree(staging, ignore_errors=True)
            raise _save_error(run, step, error) from error
        finally:
            self._staging = False
        if main:
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(str(run.path), self.args.save_total_limit)  # type: ignore[attr-defined]


def _save_error(run: RunDir, step: int, error: Exception) -> OSError:
    kept = run.latest_checkpoint()
    first = (str(error).strip().splitlines() or [""])[0]
    reason = f"saving checkpoint-{step} failed ({type(error).__name__}: {first})"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        reason = f"saving checkpoint-{step} failed: no space left on the device"
    keep = f"{kept.name} is intact" if kept else "no earlier checkpoint exists"
    code = error.errno if isinstance(error, OSError) and error.errno else errno.EIO
    return OSError(code, f"{reason}; {keep}: free space or fix the cause, then rerun with --resume", str(run.path))


def exception_line(text: str) -> str | None:
    """The exception line of the last Python traceback in ``text`` (a log, where progress bars' ``\\r`` also
    break lines), or None."""
    lines = [line.rstrip() for line in re.split(r"[\r\n]", text)]
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    after = [line for line in lines[starts[-1] + 1 :] if line and not line[0].isspace()] if starts else []
    return after[0][:300] if after else None


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@dataclass(frozen=True)
class ExperimentDir:
    """A ``redit compare`` output directory: one run directory per (arm, seed), their logs and requests, a lock."""

    path: Path

    def run(self, arm: str, seed: int) -> RunDir:
        return RunDir(self.path / "runs" / arm / f"seed{seed}")

    def log(self, arm: str, seed: int) -> Path:
        return self.path / "logs" / f"{arm}-seed{seed}.log"

    def request(self, arm: str, seed: int) -> Path:
        return self.path / "requests" / f"{arm}-seed{seed}.json"

    def prepare(self) -> None:
        for folder in ("logs", "requests"):
            (self.path / folder).mkdir(parents=True, exist_ok=True)

    def runs(self) -> Iterator[tuple[str, int, RunDir]]:
        """Every ``(arm, seed, run)`` present, arms by name, seeds in order."""
        root = self.path / "runs"
        if not root.is_dir():
            raise FileNotFoundError(f"no run directories: {root} does not exist")
        for arm in sorted(p for p in root.iterdir() if p.is_dir()):
            seeds = [(int(m.group(1)), p) for p in arm.iterdir() if p.is_dir() and (m := _SEED.fullmatch(p.name))]
            for seed, path in sorted(seeds):
                yield arm.name, seed, RunDir(path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this directory for one ``redit compare``; another one is refused naming our pid. The lock is an
        ``flock`` on ``.lock``: the kernel releases it when its holder dies, so a stale one is simply taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise FileExistsError(
                    f"{self.path} is in use by another redit compare (pid {holder}): wait for it to finish, "
                    "stop it, or choose another --output-dir"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
