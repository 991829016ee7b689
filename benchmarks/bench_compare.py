"""Wall time of `redit compare`'s embedded default on this machine, with the time per run.

    python benchmarks/bench_compare.py [--seeds N] [--max-steps N]

Runs in a fresh temporary output directory and model cache, so the warm start is included (and timed apart).
The issue's target: the whole default in <= 10 minutes on a 2-core CPU (aim: 5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--max-steps", type=int)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REDIT_CACHE"] = str(Path(tmp) / "cache")
        from redit.experiments.report import report_dir
        from redit.experiments.runner import prepare_models, run_matrix
        from redit.experiments.spec import parse_spec
        from redit.presets import load_preset

        spec = parse_spec(
            load_preset("compare-tiny"), output_dir=str(Path(tmp) / "out"), seeds=args.seeds, max_steps=args.max_steps
        )
        start = time.perf_counter()
        prepare_models(spec)
        warm = time.perf_counter() - start
        outcomes = run_matrix(spec, show_progress=False)
        report_start = time.perf_counter()
        report_dir(spec.output_dir)
        total = time.perf_counter() - start
        report = time.perf_counter() - report_start
    per_run = [o.seconds for o in outcomes if o.status == "done"]
    print(
        f"embedded default: {len(spec.arms)} arms x {len(spec.seeds)} seeds, {spec.workers} at once, "
        f"{spec.base['training']['max_steps']} steps"
    )
    print(f"  warm start (SFT, cached afterwards): {warm:7.1f} s")
    print(
        f"  runs: {len(per_run)} done, {len(outcomes) - len(per_run)} failed; per run median "
        f"{statistics.median(per_run):.1f} s (min {min(per_run):.1f}, max {max(per_run):.1f})"
    )
    print(f"  analysis and report:                 {report:7.1f} s")
    print(
        f"  total wall time:                     {total:7.1f} s  (target <= 600 s, aim 300 s; ratio to target "
        f"{total / 600:.2f})"
    )


if __name__ == "__main__":
    main()
