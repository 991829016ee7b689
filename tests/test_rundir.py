"""The run directory: layout and status, overwrite safety, whole checkpoints, atomic files, one-line OS errors."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from redit import atomic
from redit.atomic import append_line, check_output_file, describe_os_error, read_jsonl, truncate_jsonl, write_atomic
from redit.cli import main
from redit.rundir import CrashSafeCheckpoints, ExperimentDir, RunDir, exception_line


def make_run(path: Path, *checkpoints: int, done: bool = False) -> RunDir:
    run = RunDir(path)
    path.mkdir(parents=True)
    run.config.write_text("output_dir: x\n")
    run.metrics.write_text('{"step": 1}\n')
    for step in checkpoints:
        (run.checkpoint(step)).mkdir()
        (run.checkpoint(step) / "trainer_state.json").write_text("{}")
    if done:
        run.mark_done()
    return run


# --- layout and status -------------------------------------------------------------------------------------------


def test_status_follows_done_and_error_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.status() == "absent" and run.error_line() is None
    make_run(run.path)
    assert run.status() == "incomplete"
    run.mark_done()
    assert run.status() == "done"
    run.mark_failed("ValueError: bad\n\nexit code 1; last lines of x.log:\n...\n")
    assert run.status() == "failed" and run.error_line() == "ValueError: bad"
    run.clear_failure()
    assert run.status() == "done"


def test_error_line_is_the_traceback_line_not_a_progress_bar(tmp_path: Path) -> None:
    log = (
        "loading\n 20%|##        | 1/5 [00:01<00:04]\r 40%|####      | 2/5 [00:02<00:03]\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    boom()\n'
        "    ^^^^^^\nRuntimeError: CUDA out of memory\n 60%|######    | 3/5\r"
    )
    assert exception_line(log) == "RuntimeError: CUDA out of memory"
    assert exception_line(" 40%|####      | 2/5 [00:02<00:03]\r") is None
    run = make_run(tmp_path / "run")
    run.error.write_text("Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    assert run.error_line() == "RuntimeError: CUDA out of memory"


def test_runner_writes_the_error_line_first(tmp_path: Path) -> None:
    """An arm crashing at runtime: error.txt (and so the report) starts with the exception, not a tqdm fragment."""
    from redit.experiments.analysis import load_runs
    from redit.experiments.runner import exit_reason, finish_run

    experiment = ExperimentDir(tmp_path)
    experiment.prepare()
    run = make_run(experiment.run("vanilla", 0).path)
    log = experiment.log("vanilla", 0)
    log.write_text("Traceback (most recent call last):\nOldError: from the previous attempt\n")
    offset = log.stat().st_size
    log.write_text(
        log.read_text() + " 10%|#   | 1/10\rTraceback (most recent call last):\n  File 'a'\nKeyError: 'x'\n 10%|#"
    )
    request = SimpleNamespace(arm="vanilla", seed=0, raw={"output_dir": str(run.path)})
    assert finish_run(experiment, request, offset, exit_reason(1)) == "failed"  # type: ignore[arg-type]
    assert run.error.read_text().startswith("KeyError: 'x'\n")
    assert load_runs(tmp_path).runs[0].error == "KeyError: 'x'"
    finish_run(experiment, request, log.stat().st_size, exit_reason(-9))  # type: ignore[arg-type]
    assert run.error_line() == "killed by SIGKILL"


def test_checkpoints_are_only_complete_ones(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", 2, 4)
    (run.checkpoint(6)).mkdir()  # written directly by an old redit and cut short: no trainer_state.json
    (run.path / "checkpoint.partial" / "checkpoint-8").mkdir(parents=True)
    assert [step for step, _ in run.checkpoints()] == [2, 4]
    assert run.latest_checkpoint() == run.checkpoint(4)
    assert RunDir(tmp_path / "none").latest_checkpoint() is None


# --- overwrite safety -----------------------------------------------------------------------------------------


def test_overwrite_refuses_a_directory_with_unrelated_files(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "data").mkdir()
    with pytest.raises(FileExistsError, match=r"holds files redit did not write \(data, thesis.tex\)"):
        RunDir(out).check_target(resume=False, overwrite=True)
    run = make_run(tmp_path / "run", 2)
    (run.path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"\(notes.txt\)"):
        run.check_target(resume=False, overwrite=True)
    with pytest.raises(FileExistsError, match=r"\(notes.txt\)"):
        run.clear()
    assert (run.path / "notes.txt").exists() and run.config.exists()


def test_a_run_needs_overwrite_or_resume(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", 2, done=True)
    with pytest.raises(FileExistsError, match="already holds a run: pass --resume .* --overwrite"):
        run.check_target(resume=False, overwrite=False)
    run.check_target(resume=True, overwrite=False)
    run.check_target(resume=False, overwrite=True)
    run.clear()
    assert run.path.is_dir() and run.is_empty()
    with pytest.raises(FileNotFoundError, match="--resume: no run to resume"):
        run.check_target(resume=True, overwrite=False)
    RunDir(tmp_path / "new" / "deeper").check_target(resume=False, overwrite=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        RunDir(tmp_path / "file").check_target(resume=False, overwrite=True)


@pytest.mark.parametrize(
    "bad",
    [
        ["--training.per_device_train_batch_size=6", "--training.num_generations=4"],  # batch not divisible
        ["--dither.sigma=-1"],
    ],
)
def test_invalid_config_with_overwrite_deletes_nothing(tmp_path: Path, bad: list[str], capsys: Any) -> None:
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("keep")
    run = make_run(tmp_path / "run", 2, done=True)
    before = sorted(p.name for p in run.path.iterdir())
    for out in (unrelated, run.path):
        assert main(["train", f"--output_dir={out}", "--overwrite", *bad]) == 2
        assert "error:" in capsys.readouterr().err
    assert (unrelated / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in run.path.iterdir()) == before and run.metrics.read_text() == '{"step": 1}\n'


def test_valid_config_over_unrelated_files_is_refused_before_any_model_is_built(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "keep.txt").write_text("keep")
    assert main(["train", f"--output_dir={tmp_path}", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds files redit did not write (keep.txt)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# --- whole checkpoints --------------------------------------------------------------------------------------------


class FakeTrainer:
    """What transformers' ``Trainer._save_checkpoint`` does to the disk, step by step, failing where told."""

    def __init__(
        self, out: Path, fail_at: str | None = None, exc: BaseException | None = None, limit: int | None = None
    ):
        self.args = SimpleNamespace(output_dir=str(out), should_save=True, save_total_limit=limit)
        self.state = SimpleNamespace(global_step=0)
        self.accelerator = SimpleNamespace(wait_for_everyone=lambda: None)  # one process
        self.fail_at, self.exc = fail_at, exc

    def _get_output_dir(self, trial: Any) -> str:
        return self.args.output_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True)
        for name in ("model.safetensors", "optimizer.pt", "rng_state.pth", "trainer_state.json"):
            if name == self.fail_at:
                (folder / name).write_text("half")
                raise self.exc  # type: ignore[misc]
            (folder / name).write_text(f"step {self.state.global_step}")


class Trainer(CrashSafeCheckpoints, FakeTrainer):
    pass


@pytest.mark.parametrize("point", ["model.safetensors", "optimizer.pt", "rng_state.pth", "trainer_state.json"])
def test_a_failed_save_keeps_the_previous_checkpoint_and_says_so(tmp_path: Path, point: str) -> None:
    trainer = Trainer(tmp_path, point, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    run = RunDir(tmp_path)
    for step in (1, 2):
        trainer.state.global_step = step
        trainer.fail_at = point if step == 2 else None
        if step == 2:
            with pytest.raises(OSError, match="saving checkpoint-2 failed: no space .* checkpoint-1 is intact") as err:
                trainer._save_checkpoint(None, None)
            assert describe_os_error(err.value).startswith(f"{tmp_path}: saving checkpoint-2 failed")
        else:
            trainer._save_checkpoint(None, None)
    assert run.latest_checkpoint() == run.checkpoint(1) and not run.checkpoint(2).exists()
    assert (run.checkpoint(1) / "trainer_state.json").read_text() == "step 1"
    assert not (tmp_path / "checkpoint.partial").exists()  # the failed save's space is freed


@pytest.mark.parametrize("point", ["model.safetensors", "trainer_state.json"])
def test_a_killed_save_is_never_taken_for_a_checkpoint(tmp_path: Path, point: str) -> None:
    """KeyboardInterrupt stands in for a kill: nothing of the save's runs after it, like after SIGKILL."""
    trainer = Trainer(tmp_path, None, KeyboardInterrupt())
    trainer.state.global_step = 1
    trainer._save_checkpoint(None, None)
    trainer.state.global_step, trainer.fail_at = 2, point
    with pytest.raises(KeyboardInterrupt):
        trainer._save_checkpoint(None, None)
    run = RunDir(tmp_path)
    assert run.latest_checkpoint() == run.checkpoint(1)
    assert run.foreign() == []  # the leftover checkpoint.partial/ is part of the layout
    trainer.fail_at = None  # the resumed run saves step 2 again
    trainer._save_checkpoint(None, None)
    assert run.latest_checkpoint() == run.checkpoint(2) and not (tmp_path / "checkpoint.partial").exists()


def test_rotation_happens_only_after_the_new_checkpoint_is_whole(tmp_path: Path) -> None:
    trainer = Trainer(tmp_path, limit=1)
    for step in (1, 2):
        trainer.state.global_step = step
        trainer._save_checkpoint(None, None)
    assert [s for s, _ in RunDir(tmp_path).checkpoints()] == [2]
    trainer.state.global_step, trainer.fail_at, trainer.exc = 3, "optimizer.pt", RuntimeError("file write failed")
    with pytest.raises(OSError, match=r"\(RuntimeError: file write failed\); checkpoint-2 is intact"):
        trainer._save_checkpoint(None, None)
    assert [s for s, _ in RunDir(tmp_path).checkpoints()] == [2]


# --- resumed rows -------------------------------------------------------------------------------------------------


def test_resume_adds_no_eval_row_at_a_step_that_is_not_an_eval_step(tmp_path: Path) -> None:
    from redit.callbacks import HeldoutEval

    path = tmp_path / "eval.jsonl"
    heldout = HeldoutEval(path, ["p"], ["a"], lambda **_: [1.0], tokenizer=None, every=2)
    heldout._evaluate = lambda model, step, seed: append_line(path, {"step": step})  # type: ignore[method-assign]
    args = SimpleNamespace(process_index=0, seed=0)
    heldout.on_train_begin(args, SimpleNamespace(global_step=0), None)
    assert read_jsonl(path) == [{"step": 0}]
    for step in (1, 2, 3, 4):
        heldout.on_step_end(args, SimpleNamespace(global_step=step, max_steps=6), None)
    assert [r["step"] for r in read_jsonl(path)] == [0, 2, 4]
    heldout.on_train_begin(args, SimpleNamespace(global_step=3), None)  # resumed from checkpoint-3
    assert [r["step"] for r in read_jsonl(path)] == [0, 2]
    heldout.on_train_begin(args, SimpleNamespace(global_step=0), None)  # no checkpoint: from scratch
    assert [r["step"] for r in read_jsonl(path)] == [0]


def test_a_torn_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    from redit.callbacks import MetricsJsonl

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3}]
    MetricsJsonl(path).on_train_begin(SimpleNamespace(process_index=0), SimpleNamespace(global_step=2), None)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    truncate_jsonl(tmp_path / "absent.jsonl", 3)
    assert not (tmp_path / "absent.jsonl").exists()


# --- atomic files and environment errors ----------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "summary.json"
    write_atomic(path, "old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError) as err:
        write_atomic(path, "new")
    assert (
        describe_os_error(err.value) == f"{path}: no space left on the device: free some space or choose another "
        "location, then rerun"
    )
    with pytest.raises(OSError, match="metrics.jsonl"):
        append_line(tmp_path / "metrics.jsonl", {"step": 1})
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "summary.json"]


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "no space left"),
        (errno.EROFS, "read-only file system: choose a writable location"),
        (errno.EACCES, "permission denied"),
        (errno.ENOENT, "create the parent folder first"),
        (errno.EISDIR, "is a directory: give a file path"),
    ],
)
def test_os_errors_become_one_line_naming_the_path(code: int, advice: str) -> None:
    line = describe_os_error(OSError(code, os.strerror(code), "/data/out.jsonl"))
    assert line.startswith("/data/out.jsonl: ") and advice in line and "\n" not in line
    assert describe_os_error(FileExistsError("output file x exists; pass --overwrite")) == (
        "output file x exists; pass --overwrite"
    )


def test_output_file_is_checked_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as err:
        check_output_file(tmp_path, overwrite=True)
    assert describe_os_error(err.value) == f"{tmp_path}: is a directory: give a file path"
    with pytest.raises(FileNotFoundError) as err:
        check_output_file(tmp_path / "no" / "out.jsonl", overwrite=False)
    assert "create the parent folder first" in describe_os_error(err.value)
    (tmp_path / "out.jsonl").write_text("x")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        check_output_file(tmp_path / "out.jsonl", overwrite=False)
    check_output_file(tmp_path / "out.jsonl", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_train_into_a_path_under_a_file_is_one_line(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "file").write_text("")
    assert main(["train", f"--output_dir={tmp_path / 'file' / 'run'}"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "file") in err, err


def test_score_checks_its_output_before_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from redit import score

    monkeypatch.setattr(score, "score_rows", lambda *a: pytest.fail("scored before the output path was checked"))
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"completion": "<answer>18</answer>", "answer": "18"}) + "\n")
    for output, expected in [
        (tmp_path, f"{tmp_path}: is a directory"),
        (tmp_path / "missing" / "out.jsonl", f"{tmp_path / 'missing'}: no such file or folder"),
        (rows, "exists; pass --overwrite"),
    ]:
        assert main(["score", "--task", "gsm8k", "--input", str(rows), "--output", str(output)]) != 0
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err


def test_score_on_a_full_disk_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"completion": "<answer>18</answer>", "answer": "18"}) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    argv = ["score", "--task", "gsm8k", "--workers", "1", "--input", str(rows), "--output", str(out), "--overwrite"]
    assert main(argv) == 1
    assert f"{out}: no space left on the device" in capsys.readouterr().err
    assert out.read_text() == "previous\n" and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


# --- redit compare owns its directory and its children ---------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from redit.rundir import ExperimentDir
with ExperimentDir(Path(sys.argv[1])).locked():
    print("locked", flush=True)
    time.sleep(60)
"""


def _python(code: str, *args: str, **kwargs: Any) -> Any:
    import subprocess

    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env, **kwargs)


def test_one_compare_per_output_dir_and_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    holder = _python(HOLD, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = f"in use by another redit compare \\(pid {holder.pid}\\)"
        with pytest.raises(FileExistsError, match=busy), ExperimentDir(tmp_path).locked():
            pass
    finally:
        holder.kill()
        holder.wait()
    with ExperimentDir(tmp_path).locked():  # the kernel dropped the dead holder's flock
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


PARENT = """
import os, subprocess, sys, time
code = "import os, sys, time; from redit.experiments.runner import die_with_parent; "
code += "die_with_parent(int(sys.argv[1])); print(os.getpid(), flush=True); time.sleep(60)"
child = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux (PR_SET_PDEATHSIG, /proc)")
def test_children_die_with_a_killed_parent() -> None:
    import signal
    import time

    parent = _python(PARENT)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _sleep(*_: object) -> None:
    """A run that goes on (forked by the local launcher, so importable by name)."""
    import time

    time.sleep(60)


def test_sigterm_stops_the_running_children_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local launcher, SIGTERMed while its runs go on, stops them before the interruption propagates."""
    import signal
    import threading

    from redit.experiments import local
    from redit.experiments.progress import MatrixProgress
    from redit.experiments.runner import _sigterm_interrupts
    from redit.experiments.spec import RunRequest

    stopped: list = []
    stop = local.stop_processes
    monkeypatch.setattr(local, "stop_processes", lambda processes: (stopped.extend(processes), stop(processes)))
    experiment = ExperimentDir(tmp_path)
    experiment.prepare()
    requests = [RunRequest("a", seed, {"output_dir": str(experiment.run("a", seed).path)}) for seed in (0, 1)]
    launcher = local.LocalLauncher(SimpleNamespace(workers=2))  # type: ignore[arg-type]
    launcher.body = _sleep  # type: ignore[assignment]
    ready = launcher.context.Process(target=os.getpid)  # the fork server has done its imports once this returns
    ready.start()
    ready.join()
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or Ray's once a Ray test ran in this process
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(KeyboardInterrupt), _sigterm_interrupts():
        launcher.run(experiment, requests, MatrixProgress(2, 0, show=False))
        pytest.fail("SIGTERM did not interrupt")
    assert len(stopped) == 2 and all(process.returncode == -signal.SIGTERM for process in stopped)
    assert signal.getsignal(signal.SIGTERM) is before
