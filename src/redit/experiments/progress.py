"""Progress of a matrix: one bar for its runs (done / running / failed) and one bar per running run, its step as
read from the run's ``metrics.jsonl`` (so a run on another node shows too, through the shared output directory)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from redit.experiments.spec import RunRequest
from redit.rundir import RunDir

_TAIL_BYTES = 1 << 16  # rows are about 1 KiB


def last_step(metrics: Path) -> int:
    """The step of the last complete row of ``metrics.jsonl`` (0 if none yet); reads the file's tail."""
    try:
        with metrics.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return 0
    for line in reversed(tail.split(b"\n")[:-1]):  # the last piece has no newline yet: a row being written
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


class MatrixProgress:
    """The bars of one matrix; a launcher calls ``started``/``finished`` per run and ``refresh`` as it polls."""

    def __init__(self, total: int, skipped: int, show: bool = True) -> None:
        self.show, self.done, self.failed = show, skipped, 0
        self.bar = tqdm(total=total, initial=skipped, desc="runs", unit="run", disable=not show)
        self.running: dict[tuple[str, int], tuple[RunRequest, tqdm]] = {}
        self.lines: dict[tuple[str, int], int] = {}  # the terminal line of each running run's bar, under the matrix
        self._postfix()

    def close(self) -> None:
        for _, bar in self.running.values():
            bar.close()
        self.bar.close()

    def started(self, request: RunRequest) -> None:
        position = next(p for p in range(1, len(self.lines) + 2) if p not in self.lines.values())
        steps = (request.raw.get("training") or {}).get("max_steps")
        label = f"  {request.arm} seed{request.seed}"
        bar = tqdm(total=steps, desc=label, unit="step", position=position, leave=False, disable=not self.show)
        self.running[(request.arm, request.seed)] = (request, bar)
        self.lines[(request.arm, request.seed)] = position
        self._postfix()

    def finished(self, request: RunRequest, status: str) -> None:
        _, bar = self.running.pop((request.arm, request.seed))
        del self.lines[(request.arm, request.seed)]
        bar.close()
        self.failed += status == "failed"
        self.done += status != "failed"
        self.bar.update(1)
        self._postfix()

    def refresh(self) -> None:
        """Read each running run's step from its ``metrics.jsonl``."""
        for request, bar in self.running.values():
            step = last_step(RunDir(Path(request.raw["output_dir"])).metrics)
            if step != bar.n:
                bar.n = step
                bar.refresh()

    def counts(self) -> dict[str, int]:
        """Runs done (finished or skipped), running and failed."""
        return {"done": self.done, "running": len(self.running), "failed": self.failed}

    def _postfix(self) -> None:
        self.bar.set_postfix(self.counts(), refresh=True)
