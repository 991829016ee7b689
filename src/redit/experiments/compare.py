"""``redit compare``: GRPO vs ReDit arms over paired seeds, then statistics and a report.

Without a spec it runs the embedded default (``configs/compare-tiny.yaml``): a tiny offline model warm-started on
2-digit addition, vanilla GRPO against the paper's two ReDit settings, on a 2-core CPU in minutes.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from redit.presets import load_preset, read_config
from redit.rundir import ExperimentDir

DEFAULT_SPEC = "compare-tiny"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare GRPO with ReDit arms over paired seeds and write a report",
        description="Run every arm of SPEC.yaml at every seed (in parallel processes, or Ray tasks with --launcher ray), then write summary.json, "
        "report.md, report.html and plots to the output directory. Rerunning skips finished runs and resumes "
        "interrupted ones; one compare at a time per output directory.",
    )
    parser.add_argument(
        "spec",
        nargs="?",
        help=f"experiment spec YAML or preset name, e.g. compare-paper (default: the embedded {DEFAULT_SPEC})",
    )
    parser.add_argument("--output-dir", help="where runs and the report go (overrides spec.output_dir)")
    parser.add_argument("--seeds", type=int, help="number of paired seeds 0..N-1 (overrides spec.seeds)")
    parser.add_argument("--max-steps", type=int, help="training steps per run (overrides base.training.max_steps)")
    parser.add_argument("--workers", type=int, help="runs at once on the local launcher (default: one per core)")
    parser.add_argument(
        "--launcher",
        choices=["local", "ray"],
        help="local: processes on this machine (default); ray: one Ray task per run, each with its arm's "
        "resources (overrides spec.launcher; docs/ray.md)",
    )
    parser.add_argument(
        "--address", help="Ray cluster to run on: host:port, ray://host:port or auto (default: RAY_ADDRESS, else local)"
    )
    parser.add_argument("--baseline", help="arm the others are compared with (overrides spec.baseline)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any spec key, e.g. --set base.training.learning_rate=1e-3 (repeatable)",
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from redit.experiments.report import headline_table, report_dir
    from redit.experiments.runner import run_matrix
    from redit.experiments.spec import load_spec

    start = time.perf_counter()
    spec = load_spec(
        None,
        read_config(args.spec) if args.spec else load_preset(DEFAULT_SPEC),
        overrides=args.set,
        output_dir=args.output_dir,
        seeds=args.seeds,
        max_steps=args.max_steps,
        workers=args.workers,
        baseline=args.baseline,
        launcher=args.launcher,
    )
    if args.address and spec.launcher != "ray":
        raise ValueError("--address is the Ray cluster's: add --launcher ray (or set launcher: ray in the spec)")
    at_once = f"{spec.workers} at once" if spec.launcher == "local" else "on Ray, as many at once as fit"
    print(
        f"redit compare: {len(spec.arms)} arms x {len(spec.seeds)} seeds -> {spec.output_dir} ({at_once})", flush=True
    )
    experiment = ExperimentDir(spec.output_dir)
    with experiment.locked():
        outcomes = run_matrix(spec, address=args.address)
        for outcome in outcomes:
            if outcome.status == "failed":
                run = experiment.run(outcome.request.arm, outcome.request.seed)
                print(
                    f"  FAILED: {outcome.request.arm} seed {outcome.request.seed}: {run.error_line()} (see {run.error})"
                )
        summary, report = report_dir(spec.output_dir, baseline=spec.baseline)
    print(headline_table(summary))
    print(f"report: {report}")
    print(f"wall time: {time.perf_counter() - start:.0f} s (model build, {len(outcomes)} runs, report)")
    return 1 if any(o.status == "failed" for o in outcomes) else 0
