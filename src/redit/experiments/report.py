"""Files from an analysis summary: ``summary.json``, ``report.md``, a self-contained ``report.html`` and PNG plots.

Only formatting and plotting here; every number comes from :func:`redit.experiments.analysis.analyze`.
Regenerate a report from an existing output directory with ``python -m redit.experiments.report OUT_DIR``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from redit.atomic import atomic_file, write_atomic
from redit.experiments.analysis import Runs, Settings, analyze, load_runs

PLOT_DIR = "plots"
SETTING_NAMES = set(Settings.__dataclass_fields__)
Block = tuple[str, Any]  # ("h1"|"h2"|"p", text) | ("ul", [text]) | ("table", (headers, rows)) | ("img", (alt, file))
HEADLINE = (
    "arm",
    "seeds",
    "final acc [95% CI]",
    "AUC [95% CI]",
    "Δ AUC vs base [95% CI]",
    "p",
    "steps ratio",
    "verdict",
)


# ------------------------------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ci(stat: Mapping[str, Any] | None, sign: bool = False) -> str:
    """``mean [lo, hi]``; ``[n=1]``/``[no CI]`` where no interval exists."""
    if not stat or stat.get("mean") is None:
        return "—"
    if stat.get("lo") is None:
        return f"{_num(stat['mean'], sign=sign)} [n={stat.get('n', 0)}]"
    return f"{_num(stat['mean'], sign=sign)} [{_num(stat['lo'], sign=sign)}, {_num(stat['hi'], sign=sign)}]"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def headline_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """One row per arm: seeds, final accuracy, AUC, paired Δ AUC, p, steps-to-target ratio, verdict."""
    metric, rows = summary["metric"], []
    for arm in summary["arms"]:
        acc = summary["accuracy"][metric][arm]
        reach = summary["steps_to_target"]["arms"][arm]
        failed = summary["runs"]["per_arm"][arm]["failed"]
        seeds = str(len(summary["runs"]["per_arm"][arm]["seeds"])) + (f" ({failed} failed)" if failed else "")
        ratio = f"{_num(reach['ratio_mean_curve'], 2)} ({reach['n_never']} never)"
        if arm == summary["baseline"]:
            rows.append([arm, seeds, _ci(acc["final"]), _ci(acc["auc"]), "(baseline)", "", ratio, ""])
            continue
        diff = summary["paired"][arm][metric]["auc"]
        rows.append(
            [
                arm,
                seeds,
                _ci(acc["final"]),
                _ci(acc["auc"]),
                _ci(diff, sign=True),
                _p(diff["p"]),
                ratio,
                summary["verdicts"][arm]["label"],
            ]
        )
    return rows


def headline_table(summary: Mapping[str, Any]) -> str:
    """The console table: one aligned row per arm (see :data:`HEADLINE`)."""
    rows = [list(HEADLINE), *headline_rows(summary)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADLINE))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"{summary['metric']}, baseline {summary['baseline']!r}\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- content


def _blocks(summary: Mapping[str, Any], plots: Mapping[str, str]) -> list[Block]:
    """The report as renderer-neutral blocks."""
    s, metric, base = summary, summary["metric"], summary["baseline"]
    cfg = s["settings"]
    blocks: list[Block] = [
        ("h1", f"ReDit comparison: {Path(s['out_dir']).name}"),
        ("h2", "Verdict"),
        ("ul", [f"{arm}: {s['verdicts'][arm]['text']}" for arm in s["arms"][1:]] or ["only the baseline arm ran"]),
        (
            "p",
            (
                f"A verdict says faster or slower only when the paired 95% CI of Δ AUC excludes 0 and the exact "
                f"sign-flip p ≤ {cfg['alpha']}; at least {cfg['min_seeds_for_alpha']} paired seeds are needed for "
                "that. Percentile-bootstrap CIs over few seeds are too narrow, which is why both are required."
            ),
        ),
        ("table", (list(HEADLINE), headline_rows(s))),
        *_runs_blocks(s),
        ("h2", "Held-out accuracy"),
        (
            "p",
            (
                "AUC is the trapezoid area under a run's accuracy-vs-step curve over all its evals (step 0 included) "
                "divided by the step span: the run's mean accuracy over training, in [0, 1]. Final is the last eval."
            ),
        ),
        (
            "table",
            (
                ["metric", "arm", "seeds", "final [95% CI]", "AUC [95% CI]"],
                [
                    [
                        m,
                        arm,
                        str(s["accuracy"][m][arm]["auc"]["n"]),
                        _ci(s["accuracy"][m][arm]["final"]),
                        _ci(s["accuracy"][m][arm]["auc"]),
                    ]
                    for m in s["metrics"]
                    for arm in s["arms"]
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
                "Runs with error.txt are failed and those without DONE incomplete; both are excluded from statistics.",
                "Curves: mean over seeds at each step with a 95% bootstrap band; training curves are per-run trailing "
                "running means before averaging, window in steps: "
                + ", ".join(f"{key} {w}" for key, w in s["curves"]["smoothing"].items())
                + " (1 = unsmoothed).",
            ],
        ),
    ]
    return blocks


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


def _target_blocks(s: Mapping[str, Any]) -> list[Block]:
    t = s["steps_to_target"]
    rows = [
        [
            arm,
            f"{a['n_reached']}/{a['n_reached'] + a['n_never']}",
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
                f"Target: the baseline's final {t['metric']} level, {_num(t['target'])} (mean over baseline seeds of "
                f"the last point of each smoothed curve). Smoothing: {t['smoothing']}. A run's steps-to-target is the "
                "first eval step from which its smoothed curve stays at or above the target; the mean curve's is the "
                "same for the mean over seeds. Ratios are arm steps / baseline steps (< 1: faster)."
            ),
        ),
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


# --------------------------------------------------------------------------------------------------- rendering


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown with relative image links."""
    out = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' * int(kind[1])} {content}")
        elif kind == "p":
            out.append(content)
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            headers, rows = content
            cells = [headers, ["---"] * len(headers), *rows]
            out.append("\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells))
        elif kind == "img":
            out.append(f"![{content[0]}]({content[1]})")
    return "\n\n".join(out) + "\n"


def render_html(blocks: Sequence[Block], root: Path) -> str:
    """One HTML file with the PNGs embedded as base64 data URIs."""
    esc, body = html.escape, []
    for kind, content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{esc(content)}</{kind}>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in content) + "</ul>")
        elif kind == "table":
            headers, rows = content
            head = "".join(f"<th>{esc(h)}</th>" for h in headers)
            body.append(
                f"<table><tr>{head}</tr>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
                + "</table>"
            )
        elif kind == "img":
            data = base64.b64encode((root / content[1]).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(content[0])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(content[0])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>ReDit comparison</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def plot_curves(curves: Mapping[str, Mapping[str, list]], ylabel: str, path: Path, log: bool = False) -> bool:
    """Mean line and CI band per arm; False (and no file) when no arm has data."""
    if not any(c["step"] for c in curves.values()):
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, c in curves.items():
        if not c["step"]:
            continue
        nan = float("nan")
        (line,) = ax.plot(c["step"], [nan if v is None else v for v in c["mean"]], label=arm)
        lo = [nan if v is None else v for v in c["lo"]]
        hi = [nan if v is None else v for v in c["hi"]]
        ax.fill_between(c["step"], lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel="step", ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return True


def _write_plots(out_dir: Path, summary: Mapping[str, Any]) -> dict[str, str]:
    """PNG per curve under ``plots/``; returns key → path relative to ``out_dir`` for the plots written."""
    labels = {m: f"held-out {m} (mean, 95% CI)" for m in summary["metrics"]}
    labels |= {
        "reward_clean": "clean training reward",
        "grad_norm": "grad norm (before clipping)",
        "frac_zero_std_clean": "fraction of zero-std groups",
    }
    (out_dir / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    written = {}
    for key, ylabel in labels.items():
        rel = f"{PLOT_DIR}/{key}.png"
        if plot_curves(summary["curves"][key], ylabel, out_dir / rel, log=key == "grad_norm"):
            written[key] = rel
    return written


def write_report(out_dir: str | Path, summary: Mapping[str, Any], runs: Runs | None = None) -> Path:
    """Write summary.json, report.md, report.html and plots/*.png into ``out_dir``; return report.html's path.

    ``runs`` is accepted for the runner's convenience; everything reported is already in ``summary``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    blocks = _blocks(summary, _write_plots(out_dir, summary))
    write_atomic(out_dir / "report.md", render_markdown(blocks))
    path = out_dir / "report.html"
    write_atomic(path, render_html(blocks, out_dir))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Re-analyse ``OUT_DIR/runs`` and rewrite its report with the settings of an existing summary.json."""
    parser = argparse.ArgumentParser(prog="python -m redit.experiments.report", description=main.__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--baseline", help="baseline arm (default: summary.json's, else 'vanilla')")
    parser.add_argument("--metric", help="primary accuracy metric (default: summary.json's, else accuracy_greedy)")
    args = parser.parse_args(argv)
    previous = args.out_dir / "summary.json"
    old = json.loads(previous.read_text()) if previous.exists() else {}
    settings = {k: v for k, v in old.get("settings", {}).items() if k in SETTING_NAMES - {"baseline", "metric"}}
    try:
        summary = analyze(
            load_runs(args.out_dir),
            baseline=args.baseline or old.get("baseline", "vanilla"),
            metric=args.metric or old.get("metric", "accuracy_greedy"),
            **settings,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write_report(args.out_dir, summary)
    print(headline_table(summary))
    print(f"\nreport: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
