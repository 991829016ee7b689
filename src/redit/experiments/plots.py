"""The report's PNGs, drawn from summary.json's fields only: the headline figure (a forest plot of each arm's paired
difference vs the baseline, beside the accuracy curves) and one plot per curve."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from redit.atomic import atomic_file

PLOT_DIR = "plots"
HEADLINE = "headline"
FOREST_STATS = (("auc", "Δ AUC", "o"), ("final", "Δ final accuracy", "s"))
NAN = float("nan")


def _values(values: list[float | None]) -> list[float]:
    return [NAN if v is None else v for v in values]


def _draw_curves(ax: Axes, curves: Mapping[str, Mapping[str, list]], ylabel: str, log: bool = False) -> None:
    for arm, c in curves.items():
        if not c["step"]:
            continue
        (line,) = ax.plot(c["step"], _values(c["mean"]), label=arm)
        ax.fill_between(c["step"], _values(c["lo"]), _values(c["hi"]), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel="step", ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def forest_rows(summary: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(arm, stat, paired difference)`` per non-baseline arm and stat of :data:`FOREST_STATS`, from summary.json."""
    metric = summary["metric"]
    return [
        (arm, stat, summary["paired"][arm][metric][stat]) for arm in summary["arms"][1:] for stat, _, _ in FOREST_STATS
    ]


def _draw_forest(ax: Axes, summary: Mapping[str, Any]) -> None:
    arms = summary["arms"][1:]
    rows = forest_rows(summary)
    for k, (stat, label, marker) in enumerate(FOREST_STATS):
        diffs = [d for _, s, d in rows if s == stat]
        y = [i + (k - 0.5) * 0.3 for i in range(len(arms))]
        mean = _values([d["mean"] for d in diffs])
        lo, hi = _values([d["lo"] for d in diffs]), _values([d["hi"] for d in diffs])
        err = [[m - low for m, low in zip(mean, lo, strict=True)], [high - m for m, high in zip(mean, hi, strict=True)]]
        ax.errorbar(mean, y, xerr=err, fmt=marker, capsize=3, label=label)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(max(len(arms), 1) - 0.5, -0.5)  # first arm on top
    ax.set(xlabel=f"arm − {summary['baseline']}, {summary['metric']} (mean, 95% CI over paired seeds)")
    ax.grid(axis="x", alpha=0.3)
    if arms:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "only the baseline ran", ha="center", va="center", transform=ax.transAxes)


def headline_figure(summary: Mapping[str, Any]) -> Figure:
    """Forest plot of paired Δ AUC and Δ final per arm (left) beside the accuracy curves with CI bands (right)."""
    metric, learned = summary["metric"], summary["baseline_learned"]
    fig, (forest, curves) = plt.subplots(
        1, 2, figsize=(13, 0.5 * len(summary["arms"]) + 3.5), gridspec_kw={"width_ratios": [1, 1.2]}
    )
    _draw_forest(forest, summary)
    forest.set_title(f"Paired difference vs {summary['baseline']}")
    _draw_curves(curves, summary["curves"][metric], f"held-out {metric}")
    curves.set_title(f"Held-out {metric}: mean and 95% CI over seeds")
    if not learned["learned"]:
        fig.suptitle(f"{summary['baseline']} did not learn in this regime: no speed verdict", color="#b03a2e")
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> None:
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def write_plots(out_dir: Path, summary: Mapping[str, Any]) -> dict[str, str]:
    """The headline figure and a PNG per curve under ``plots/``; returns key → path relative to ``out_dir``."""
    labels = {m: f"held-out {m} (mean, 95% CI)" for m in summary["metrics"]}
    labels |= {
        "reward_clean": "clean training reward",
        "grad_norm": "grad norm (before clipping)",
        "frac_zero_std_clean": "fraction of zero-std groups",
    }
    (out_dir / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    written = {HEADLINE: f"{PLOT_DIR}/{HEADLINE}.png"}
    _save(headline_figure(summary), out_dir / written[HEADLINE])
    for key, ylabel in labels.items():
        curves = summary["curves"][key]
        if any(c["step"] for c in curves.values()):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            _draw_curves(ax, curves, ylabel, log=key == "grad_norm")
            fig.tight_layout()
            written[key] = f"{PLOT_DIR}/{key}.png"
            _save(fig, out_dir / written[key])
    return written
