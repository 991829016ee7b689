"""``redit compare --launcher ray`` on a local Ray instance: the same numbers as the local launcher, a killed worker
resumed on rerun, a failing arm reported, the output directory's lock, bad input refused before any task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tiny_matrix import ARMS, BROKEN, tiny_spec

from redit.cli import main
from redit.experiments.runner import run_matrix
from redit.experiments.spec import parse_spec
from redit.rundir import ExperimentDir, RunDir

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")


@pytest.fixture(scope="module", autouse=True)
def local_ray(model_cache: Path) -> Iterator[None]:
    """One 2-CPU Ray instance for the module, its workers sharing the session's model cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIT_CACHE", str(model_cache))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()


def write_spec(path: Path, spec: dict) -> str:
    path.write_text(yaml.safe_dump(spec | {"launcher": "ray"}))
    return str(path)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_same_numbers_as_the_local_launcher_and_a_failing_arm(local_matrix: tuple[int, Path], tmp_path: Path) -> None:
    local_code, local = local_matrix
    out = tmp_path / "exp"
    arms = {**ARMS, "broken": BROKEN}
    assert main(["compare", write_spec(tmp_path / "spec.yaml", tiny_spec(out, arms))]) == local_code == 1

    for arm in ARMS:
        for seed in (0, 1):
            run = RunDir(out / "runs" / arm / f"seed{seed}")
            assert run.status() == "done"
            assert rows(run.metrics) == rows(RunDir(local / "runs" / arm / f"seed{seed}").metrics)
    assert any(row["grad_norm"] > 0 for row in rows(out / "runs/redit/seed0/metrics.jsonl"))  # numbers, not zeros
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, local))
    assert summary.pop("out_dir") != expected.pop("out_dir")
    assert summary == expected
    assert summary["runs"]["ok"] == 4 and len(summary["runs"]["failed"]) == 2
    error = RunDir(out / "runs/broken/seed1").error.read_text()
    assert "no-such-model" in error.splitlines()[0] and "exit code 1; last lines of" in error
    assert (out / "logs/broken-seed1.log").read_text().startswith("redit: Ray task on ")

    # Rerunning skips the finished runs: no task, logs untouched (test_compare retries a failed arm).
    logs = {p.name: p.stat().st_size for p in (out / "logs").iterdir()}
    spec = parse_spec(tiny_spec(out, ARMS) | {"launcher": "ray"})
    status = {(o.request.arm, o.request.seed): o.status for o in run_matrix(spec, show_progress=False)}
    assert status == {(arm, seed): "skipped" for arm in ARMS for seed in (0, 1)}
    assert {p.name: p.stat().st_size for p in (out / "logs").iterdir()} == logs


def _runner_processes(request: Path) -> list[int]:
    """Pids of the run processes of ``request`` (``python -m redit.experiments.runner REQUEST``)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and b"redit.experiments.runner" in command and str(request).encode() in command:
            found.append(int(proc.name))
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux (/proc)")
def test_a_killed_worker_fails_the_run_and_a_rerun_resumes_it(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    raw = tiny_spec(out, {"vanilla": ARMS["vanilla"]}, seeds=1) | {"launcher": "ray"}
    raw["base"]["training"]["max_steps"] = 4
    run, request = RunDir(out / "runs/vanilla/seed0"), ExperimentDir(out).request("vanilla", 0)
    killed: list[int] = []

    def kill_the_worker_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 300
        while not run.checkpoints() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = _runner_processes(request)
        if pids and not (run.path / "DONE").exists():
            killed.append(_parent(pids[0]))
            os.kill(killed[0], signal.SIGKILL)  # the Ray worker running the task; its run dies with it

    watcher = threading.Thread(target=kill_the_worker_after_a_checkpoint)
    watcher.start()
    outcomes = run_matrix(parse_spec(raw), show_progress=False)
    watcher.join()
    assert killed, "the run finished before its worker could be killed"
    assert [o.status for o in outcomes] == ["failed"]
    assert run.error_line().startswith("Ray task failed: "), run.error_line()
    assert run.checkpoints() and not (run.path / "DONE").exists()
    assert not _runner_processes(request)  # the run died with its worker

    outcomes = run_matrix(parse_spec(raw), show_progress=False)
    assert [o.status for o in outcomes] == ["done"]
    assert "redit train: resuming from " + str(run.path / "checkpoint-") in (out / "logs/vanilla-seed0.log").read_text()
    assert [row["step"] for row in rows(run.metrics)] == [1, 2, 3, 4]
    assert [row["step"] for row in rows(run.evals)] == [0, 1, 2, 3, 4]


HOLD_LOCK = """
import sys, time
from pathlib import Path
from redit.rundir import ExperimentDir
with ExperimentDir(Path(sys.argv[1])).locked():
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_driver_on_the_same_output_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["compare", write_spec(tmp_path / "spec.yaml", tiny_spec(out))]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert f"{out} is in use by another redit compare (pid {holder.pid})" in capsys.readouterr().err
    assert not (out / "logs").exists()


def test_resources_no_node_has_are_refused_before_any_task(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "exp"
    arms = {"vanilla": {"dither": "off"}, "redit": {"dither": {"sigma": 0.1}, "resources": {"num_gpus": 8}}}
    assert main(["compare", write_spec(tmp_path / "spec.yaml", tiny_spec(out, arms))]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "redit compare: error: arm 'redit' asks 1 CPU, 8 GPU per run, but no node of the Ray cluster has that much "
        "(the largest: 2 CPU, 0 GPU): lower arms.redit.resources (or spec.resources) or add nodes"
    )
    assert not (out / "logs").exists() and not (out / "requests").exists()


def test_a_changed_arm_config_is_refused_on_ray_too(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path) | {"launcher": "ray"})
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "vanilla-seed0.json").write_text(json.dumps({"key": "something-else"}))
    with pytest.raises(ValueError, match="was run with a different config for arm 'vanilla'"):
        run_matrix(spec, show_progress=False)
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_run_on_several_processes_is_one_task_under_torchrun(tmp_path: Path) -> None:
    """docs/ray.md's multi-GPU example on CPU: one task of 2 CPUs whose run trains as 2 gloo processes."""
    out = tmp_path / "exp"
    arms = {"redit": {"dither": {"sigma": 0.1}, "resources": {"num_cpus": 2, "num_gpus": 0, "processes": 2}}}
    spec = tiny_spec(out, arms, seeds=1) | {"baseline": "redit"}
    assert main(["compare", write_spec(tmp_path / "spec.yaml", spec)]) == 0
    run = RunDir(out / "runs/redit/seed0")
    assert run.status() == "done" and [row["step"] for row in rows(run.metrics)] == [1, 2]
    assert sorted(p.name for p in run.checkpoint(2).glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    assert json.loads(ExperimentDir(out).request("redit", 0).read_text())["resources"]["processes"] == 2


def test_ctrl_c_cancels_the_queued_tasks_and_stops_the_running_runs(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    spec = parse_spec(tiny_spec(out, {"vanilla": ARMS["vanilla"]}, seeds=3) | {"launcher": "ray"})
    experiment = ExperimentDir(out)
    logs = [experiment.log("vanilla", seed) for seed in (0, 1, 2)]

    def interrupt_once_two_runs_started() -> None:
        deadline = time.monotonic() + 120
        while sum(log.exists() and log.stat().st_size > 0 for log in logs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_two_runs_started).start()
    with pytest.raises(KeyboardInterrupt):
        run_matrix(spec, show_progress=False)
    started = [log for log in logs if log.exists() and log.stat().st_size > 0]
    assert len(started) == 2  # 2 CPUs: the third task was queued, and is cancelled without starting
    assert not any(_runner_processes(experiment.request("vanilla", seed)) for seed in (0, 1, 2))
    assert not any((experiment.run("vanilla", seed).path / "DONE").exists() for seed in (0, 1, 2))
