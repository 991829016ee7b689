"""Files from an analysis summary — ``summary.json``, ``report.md``, a self-contained ``report.html`` and PNG plots —
and ``redit report RUN_DIR``, which regenerates them from the runs of an existing ``redit compare`` output directory.

Only formatting here; every number comes from :func:`redit.experiments.analysis.analyze`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from redit.atomic import write_atomic
from redit.experiments.render import Block, render_html, render_markdown

HEADLINE = (
    "arm",
    "seeds",
    "step-0 acc",
    "final acc [95% CI]",
    "AUC [95% CI]",
    "Δ AUC vs base [95% CI]",
    "p",
    "steps to base final: ratio [95% CI]",
    "verdict",
)


# ------------------------------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ci(stat: Mapping[str, Any] | None, sign: bool = False, digits: int = 3) -> str:
    """``mean [lo, hi]``; ``[n=1]`` where no interval exists."""
    if not stat or stat.get("mean") is None:
        return "—"
    mean = _num(stat["mean"], digits, sign)
    if stat.get("lo") is None:
        return f"{mean} [n={stat.get('n', 0)}]"
    return f"{mean} [{_num(stat['lo'], digits, sign)}, {_num(stat['hi'], digits, sign)}]"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _ratio_cell(summary: Mapping[str, Any], arm: str) -> str:
    """The paired steps-to-the-baseline's-final-level ratio, and in how many seeds the arm reached that level."""
    speed = summary["to_baseline_final"]
    if speed["withheld"]:
        return "withheld"
    a = speed["arms"][arm]
    return f"{_ci(a['ratio'], digits=2)} ({a['n_reached']} of {a['n_pairs']} reached)"


def headline_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per arm: seeds, step-0, final accuracy, AUC, paired Δ AUC, p, steps ratio, verdict."""
    metric, rows = summary["metric"], []
    for arm in summary["arms"]:
        acc = summary["accuracy"][metric][arm]
        failed = summary["runs"]["per_arm"][arm]["failed"]
        seeds = str(len(summary["runs"]["per_arm"][arm]["seeds"])) + (f" ({failed} failed)" if failed else "")
        row = [arm, seeds, _num(acc["start"]["mean"]), _ci(acc["final"]), _ci(acc["auc"])]
        if arm == summary["baseline"]:
            rows.append([*row, "(baseline)", "", "(baseline)", ""])
            continue
        diff = summary["paired"][arm][metric]["auc"]
        rows.append(
            [*row, _ci(diff, sign=True), _p(diff["p"]), _ratio_cell(summary, arm), summary["verdicts"][arm]["label"]]
        )
    return rows


def headline_table(summary: Mapping[str, Any]) -> str:
    """The console table: what the baseline learned, then one aligned row per arm (see :data:`HEADLINE`)."""
    rows = [list(HEADLINE), *headline_rows(summary)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADLINE))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"{summary['metric']}, baseline {summary['baseline']!r}\n{summary['baseline_learned']['text']}\n"
    return head + "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- content


def _blocks(summary: Mapping[str, Any], plots: Mapping[str, str]) -> list[Block]:
    """The report as renderer-neutral blocks."""
    s, metric, base = summary, summary["metric"], summary["baseline"]
    cfg, learned = s["settings"], s["baseline_learned"]
    return [
        ("h1", f"ReDit comparison: {Path(s['out_dir']).name}"),
        ("note", (learned["learned"], learned["text"])),
        (
            "img",
            (
                (
                    f"Left: each arm minus {base}, paired by seed (Δ AUC, Δ final {metric}; mean and 95% CI; "
                    f"right of 0 = better). Right: held-out {metric} per step, mean and 95% CI over seeds."
                ),
                plots["headline"],
            ),
        ),
        ("h2", "Verdict"),
        ("ul", [f"{arm}: {s['verdicts'][arm]['text']}" for arm in s["arms"][1:]] or ["only the baseline arm ran"]),
        (
            "p",
            (
                f"A verdict says faster or slower only when {base} learned ({learned['rule']}), the paired 95% CI "
                f"of Δ AUC excludes 0 and the exact sign-flip p ≤ {cfg['alpha']}; at least "
                f"{cfg['min_seeds_for_alpha']} paired seeds are needed for that. Percentile-bootstrap CIs over few "
                "seeds are too narrow, which is why both are required."
            ),
        ),
        ("table", (list(HEADLINE), headline_rows(s))),
        *_runs_blocks(s),
        *_learned_blocks(s),
        ("h2", "Held-out accuracy"),
        (
            "p",
            (
                "AUC is the trapezoid area under a run's accuracy-vs-step curve over all its evals (step 0 included) "
                "divided by the step span: the run's mean accuracy over training, in [0, 1]. Step 0 is the first "
                "eval, final the last."
            ),
        ),
        (
            "table",
            (
                ["metric", "arm", "seeds", "step 0 [95% CI]", "final [95% CI]", "AUC [95% CI]"],
                [
                    [m, arm, str(a["auc"]["n"]), _ci(a["start"]), _ci(a["final"]), _ci(a["auc"])]
                    for m in s["metrics"]
                    for arm, a in s["accuracy"][m].items()
                ],
            ),
        ),
        *_step_table(s["curves"][metric], s["arms"], metric),
        *[("img", (f"held-out {m} vs step", plots[m])) for m in s["metrics"] if m in plots],
        ("h2", f"Paired differences vs {base}"),
        (
            "p",
            (
                "Arm minus baseline, per seed (same seed: same data order and warm start); mean [95% bootstrap CI], "
                "two-sided sign-flip permutation p (exact when all 2^n sign flips are enumerated)."
            ),
        ),
        (
            "table",
            (
                ["arm", "metric", "pairs", "Δ AUC [95% CI]", "p", "Δ final [95% CI]", "p", "exact"],
                [
                    [
                        arm,
                        m,
                        str(s["paired"][arm][m]["auc"]["n"]),
                        _ci(s["paired"][arm][m]["auc"], True),
                        _p(s["paired"][arm][m]["auc"]["p"]),
                        _ci(s["paired"][arm][m]["final"], True),
                        _p(s["paired"][arm][m]["final"]["p"]),
                        str(s["paired"][arm][m]["auc"]["exact"]).lower(),
                    ]
                    for arm in s["arms"][1:]
                    for m in s["metrics"]
                ],
            ),
        ),
        *_speed_blocks(s),
        *_target_blocks(s),
        *_gradient_blocks(s, plots),
        ("h2", "Methods"),
        (
            "ul",
            [
                (
                    f"Confidence intervals: {cfg['ci_method']} (scipy.stats.bootstrap), level {cfg['confidence']}, "
                    f"{cfg['n_resamples']} resamples, seed {cfg['seed']}; none with fewer than 2 runs."
                ),
                f"p-values: {cfg['permutation']} (scipy.stats.permutation_test, permutation_type='samples').",
                f"Did the baseline learn: {learned['rule']}.",
                "Runs with error.txt are failed and those without DONE incomplete; both are excluded from statistics.",
                "Curves: mean over seeds at each step with a 95% bootstrap band; training curves are per-run trailing "
                "running means before averaging, window in steps: "
                + ", ".join(f"{key} {w}" for key, w in s["curves"]["smoothing"].items())
                + " (1 = unsmoothed).",
            ],
        ),
    ]


def _learned_blocks(s: Mapping[str, Any]) -> list[Block]:
    r = s["baseline_learned"]
    gain = {"mean": r["gain"], "lo": r["ci"][0], "hi": r["ci"][1], "n": r["n"]}
    row = [
        r["metric"],
        str(r["n"]),
        _ci(r["start"]),
        _ci(r["final"]),
        _ci(gain, sign=True),
        _p(r["p"]),
        f"{_num(r['dip'], sign=True)} (step {r['dip_step']})",
        "yes" if r["learned"] else "no",
    ]
    headers = [
        "metric",
        "seeds",
        "step 0 [95% CI]",
        "final [95% CI]",
        "gain [95% CI]",
        "p",
        "lowest vs step 0",
        "learned",
    ]
    return [
        ("h2", f"Did {s['baseline']} learn?"),
        (
            "p",
            (
                f"Rule: {r['rule']}. The gain is final minus step-0 accuracy per {s['baseline']} seed; 'lowest vs "
                "step 0' is the minimum of the mean curve minus its step-0 value (the dip). Without a baseline that "
                "learned, 'steps to reach its final accuracy' measures nothing, so verdicts and steps ratios are "
                "withheld."
            ),
        ),
        ("table", (headers, [row])),
    ]


def _runs_blocks(s: Mapping[str, Any]) -> list[Block]:
    runs = s["runs"]
    items = [f"{runs['ok']} of {runs['total']} runs finished and are analysed."]
    items += [f"failed, excluded: {r['arm']} seed {r['seed']}: {r.get('error', '')}" for r in runs["failed"]]
    items += [f"incomplete (no DONE), excluded: {r['arm']} seed {r['seed']}" for r in runs["incomplete"]]
    for arm, pairing in s["paired"].items():
        if pairing["missing_in_arm"] or pairing["missing_in_baseline"]:
            items.append(
                f"{arm}: unpaired seeds dropped from the comparison — without a {arm} run: "
                f"{pairing['missing_in_arm']}, without a {s['baseline']} run: "
                f"{pairing['missing_in_baseline']}"
            )
    return [("h2", "Runs"), ("ul", items)]


def _step_table(curves: Mapping[str, Any], arms: Sequence[str], metric: str) -> list[Block]:
    steps = sorted({step for arm in arms for step in curves[arm]["step"]})
    rows = []
    for step in steps:
        row = [str(step)]
        for arm in arms:
            c = curves[arm]
            i = c["step"].index(step) if step in c["step"] else None
            row.append(
                "—" if i is None else _ci({"mean": c["mean"][i], "lo": c["lo"][i], "hi": c["hi"][i], "n": c["n"][i]})
            )
        rows.append(row)
    return [("p", f"{metric} per eval step, mean [95% CI] over seeds:"), ("table", (["step", *arms], rows))]


def _speed_blocks(s: Mapping[str, Any]) -> list[Block]:
    t, metric = s["to_baseline_final"], s["metric"]
    rows = []
    for arm in s["arms"][1:]:
        a, final = t["arms"][arm], s["paired"][arm][metric]["final"]
        ratio = t["withheld"] or _ci(a["ratio"], digits=2)
        rows.append(
            [arm, ratio, str(a["ratio"]["n"]), f"{a['n_reached']} of {a['n_pairs']}", _ci(final, True), _p(final["p"])]
        )
    return [
        ("h2", f"Steps to {s['baseline']}'s final level, and the equal-step difference"),
        (
            "p",
            (
                f"Per paired seed, the level is that {s['baseline']} seed's final {metric} ({t['smoothing']}); the "
                f"ratio is the steps the arm's smoothed curve needs to stay at or above it divided by the steps "
                f"{s['baseline']} needs (< 1: faster), mean [95% CI] over the seeds where both are defined. The "
                "equal-step difference is arm minus baseline final accuracy after the same number of steps."
            ),
        ),
        *([("note", (False, t["withheld"]))] if t["withheld"] else []),
        (
            "table",
            (
                ["arm", "steps ratio [95% CI]", "seeds with a ratio", "seeds reached", "Δ final [95% CI]", "p"],
                rows,
            ),
        ),
    ]


def _target_blocks(s: Mapping[str, Any]) -> list[Block]:
    t, base = s["steps_to_target"], s["baseline"]
    rows = [
        [
            arm,
            f"{a['n_reached']} of {a['n_seeds']} seeds",
            _num(a["mean_steps"], 1),
            _num(a["median_steps"], 1),
            f"{_num(a['ratio_median_paired'], 2)} (n={a['n_pairs']})",
            _num(a["mean_curve_steps"], 0),
            _num(a["ratio_mean_curve"], 2),
        ]
        for arm, a in t["arms"].items()
    ]
    return [
        ("h2", "Steps to target"),
        (
            "p",
            (
                f"Target: {base}'s final {t['metric']} level, {_num(t['target'])} (mean over {base} seeds of "
                f"the last point of each smoothed curve), reached by {t['baseline_reached']} of "
                f"{t['baseline_seeds']} {base} seeds. Smoothing: {t['smoothing']}. A run's steps-to-target is the "
                "first eval step from which its smoothed curve stays at or above the target; the mean curve's is the "
                "same for the mean over seeds. Ratios are arm steps / baseline steps (< 1: faster), reported only "
                f"when {base} learned and most of its seeds reach the target."
            ),
        ),
        *([("note", (False, t["withheld"]))] if t["withheld"] else []),
        (
            "table",
            (
                [
                    "arm",
                    "reached",
                    "mean steps",
                    "median steps",
                    "median paired ratio",
                    "mean-curve steps",
                    "mean-curve ratio",
                ],
                rows,
            ),
        ),
    ]


def _gradient_blocks(s: Mapping[str, Any], plots: Mapping[str, str]) -> list[Block]:
    g = s["gradients"]
    rows = [
        [
            arm,
            _ci(a["median_grad_norm"]),
            _ci(a["frac_vanishing"]),
            _ci(a["frac_exploding"]),
            _ci(a["mean_frac_zero_std"]),
        ]
        for arm, a in g["arms"].items()
    ]
    return [
        ("h2", "Gradient diagnostics"),
        (
            "p",
            (
                f"Thresholds relative to each run's median grad norm (before clipping, {g['median']}): "
                f"vanishing step = grad_norm < {g['vanish_ratio']} × median, "
                f"exploding step = grad_norm > {g['explode_ratio']} × median. "
                "Per arm: mean [95% CI] over seeds of the per-run value."
            ),
        ),
        ("table", (["arm", "median grad norm", "frac vanishing", "frac exploding", "mean zero-std fraction"], rows)),
        *[
            ("img", (alt, plots[key]))
            for key, alt in (
                ("reward_clean", "clean training reward vs step"),
                ("grad_norm", "grad norm vs step"),
                ("frac_zero_std_clean", "zero-std group fraction vs step"),
            )
            if key in plots
        ],
    ]


# ----------------------------------------------------------------------------------------------------- writing


def write_report(out_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """Write summary.json, report.md, report.html and plots/*.png into ``out_dir``; return report.html's path."""
    from redit.experiments.plots import write_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    blocks = _blocks(summary, write_plots(out_dir, summary))
    write_atomic(out_dir / "report.md", render_markdown(blocks))
    path = out_dir / "report.html"
    write_atomic(path, render_html(blocks, out_dir, f"ReDit comparison: {out_dir.name}"))
    return path


def report_dir(
    out_dir: str | Path, baseline: str | None = None, metric: str | None = None
) -> tuple[dict[str, Any], Path]:
    """Analyse ``out_dir/runs`` and write its report; the baseline, metric and settings of an existing summary.json
    are kept unless given. Returns the summary and report.html's path."""
    from redit.experiments.analysis import analyze, load_runs
    from redit.experiments.stats import Settings

    previous = Path(out_dir) / "summary.json"
    old = json.loads(previous.read_text()) if previous.exists() else {}
    names = set(Settings.__dataclass_fields__) - {"baseline", "metric"}
    summary = analyze(
        load_runs(out_dir),
        baseline=baseline or old.get("baseline", "vanilla"),
        metric=metric or old.get("metric", "accuracy_greedy"),
        **{k: v for k, v in old.get("settings", {}).items() if k in names},
    )
    return summary, write_report(out_dir, summary)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="regenerate the report of a redit compare output directory",
        description="Re-analyse RUN_DIR/runs and rewrite summary.json, report.md, report.html and plots/, with the "
        "baseline, metric and settings of the existing summary.json unless given.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a redit compare output directory")
    parser.add_argument("--baseline", help="baseline arm (default: summary.json's, else 'vanilla')")
    parser.add_argument("--metric", help="primary accuracy metric (default: summary.json's, else accuracy_greedy)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    summary, path = report_dir(args.run_dir, args.baseline, args.metric)
    print(headline_table(summary))
    print(f"report: {path}")
    return 0
