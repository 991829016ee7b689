"""The committed map (results/map) is what its summary.json says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redit.experiments.report import headline_rows

MAP = Path(__file__).resolve().parents[1] / "results" / "map"
REGIMES = sorted(p.name for p in MAP.iterdir() if (p / "summary.json").exists())


def test_all_three_regimes_are_committed() -> None:
    assert REGIMES == ["hard", "mid", "sparse"]


@pytest.mark.parametrize("regime", REGIMES)
def test_report_tables_match_summary(regime: str) -> None:
    summary = json.loads((MAP / regime / "summary.json").read_text())
    report = (MAP / regime / "report.md").read_text()
    assert f"> **{summary['baseline_learned']['text']}**" in report
    rows = headline_rows(summary)
    assert len(rows) == 7 and summary["runs"]["ok"] == 84
    for row in rows:
        assert "| " + " | ".join(row) + " |" in report, row
    for plot in ("accuracy_greedy", "reward_clean", "grad_norm", "frac_zero_std_clean"):
        assert (MAP / regime / "plots" / f"{plot}.png").stat().st_size > 0


@pytest.mark.parametrize("regime", REGIMES)
def test_readme_table_matches_summary(regime: str) -> None:
    """Each paired Δ AUC quoted in results/map/README.md is the one in that regime's summary.json."""
    summary = json.loads((MAP / regime / "summary.json").read_text())
    readme = (MAP / "README.md").read_text()
    for arm, paired in summary["paired"].items():
        d = paired["accuracy_greedy"]["auc"]
        assert f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}], p={d['p']:.3g}" in readme, (regime, arm)


@pytest.mark.parametrize("regime", REGIMES)
def test_vanilla_learned_as_the_readme_says(regime: str) -> None:
    """Each regime's baseline learned, with the step-0, final and gain numbers results/map/README.md quotes."""
    learned = json.loads((MAP / regime / "summary.json").read_text())["baseline_learned"]
    assert learned["learned"] and learned["dip"] <= 0.03
    start, final, (lo, hi) = learned["start"]["mean"], learned["final"]["mean"], learned["ci"]
    row = f"| {start:.3f} → {final:.3f} | {learned['gain']:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
    assert row in (MAP / "README.md").read_text(), row
