"""The matrix's progress: runs done / running / failed, and each running run's step from its metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

from redit.experiments.progress import MatrixProgress, last_step
from redit.experiments.spec import RunRequest


def test_last_step_reads_the_last_complete_row(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    assert last_step(metrics) == 0
    metrics.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')  # row 3 half-written
    assert last_step(metrics) == 2
    metrics.write_text("".join(f'{{"step": {step}, "pad": "{"x" * 1000}"}}\n' for step in range(1, 201)))
    assert last_step(metrics) == 200  # a long file: its tail


def test_counts_and_per_run_steps(tmp_path: Path) -> None:
    requests = [
        RunRequest(arm, 0, {"output_dir": str(tmp_path / arm), "training": {"max_steps": 4}}) for arm in ("a", "b")
    ]
    progress = MatrixProgress(total=3, skipped=1, show=False)
    assert progress.counts() == {"done": 1, "running": 0, "failed": 0}
    for request in requests:
        progress.started(request)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    progress.refresh()
    assert {arm: bar.n for arm, (_, bar) in zip("ab", progress.running.values())} == {"a": 2, "b": 0}
    assert [bar.total for _, bar in progress.running.values()] == [4, 4]
    assert list(progress.lines.values()) == [1, 2]  # one line each under the matrix bar
    assert progress.counts() == {"done": 1, "running": 2, "failed": 0}
    progress.finished(requests[0], "failed")
    progress.started(RunRequest("c", 0, {"output_dir": str(tmp_path / "c")}))
    assert list(progress.lines.values()) == [2, 1]  # the freed line is reused
    progress.finished(requests[1], "done")
    assert progress.counts() == {"done": 2, "running": 1, "failed": 1}
    progress.close()
