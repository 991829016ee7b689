"""redit.experiments.report: the files it writes carry the numbers of summary.json, and the HTML stands alone."""

from __future__ import annotations

import html
import json
import re

import pytest
from synthetic_runs import write_experiment, write_run

from redit.cli import main
from redit.experiments.analysis import analyze, load_runs
from redit.experiments.plots import FOREST_STATS, headline_figure
from redit.experiments.report import headline_table, write_report
from redit.experiments.verdicts import NOT_LEARNED

PLOTS = ("headline", "accuracy_greedy", "accuracy_sampled", "reward_clean", "grad_norm", "frac_zero_std_clean")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    write_experiment(out, {"vanilla": 0.0, "redit": 1.0, "gauss": 0.0}, range(6))
    write_run(out, "redit", 9, [{"step": 0, "accuracy_greedy": 0.9}], status="failed")
    runs = load_runs(out)
    summary = analyze(runs, vanish_ratio=0.2)
    return out, summary, write_report(out, summary)


def test_files_written_and_summary_round_trips(experiment):
    out, summary, path = experiment
    assert path == out / "report.html"
    assert json.loads((out / "summary.json").read_text()) == summary
    for name in PLOTS:
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_carries_the_summary_numbers(experiment):
    out, summary, _ = experiment
    md = (out / "report.md").read_text()
    for arm in summary["arms"]:
        acc = summary["accuracy"]["accuracy_greedy"][arm]
        assert f"{acc['auc']['mean']:.3f} [{acc['auc']['lo']:.3f}, {acc['auc']['hi']:.3f}]" in md
        assert f"{acc['final']['mean']:.3f} [{acc['final']['lo']:.3f}, {acc['final']['hi']:.3f}]" in md
    for arm in ("redit", "gauss"):
        diff = summary["paired"][arm]["accuracy_greedy"]["auc"]
        assert f"{diff['mean']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}]" in md
        assert summary["verdicts"][arm]["text"] in md
    assert summary["verdicts"]["redit"]["label"] == "faster"
    assert summary["verdicts"]["gauss"]["label"] == "no detectable difference"
    assert f"{summary['steps_to_target']['target']:.3f}" in md
    assert "grad_norm < 0.2 × median" in md and "grad_norm > 10.0 × median" in md
    assert "failed, excluded: redit seed 9: RuntimeError: CUDA out of memory" in md
    assert all(f"plots/{name}.png" in md for name in PLOTS)


def test_html_is_self_contained(experiment):
    _, summary, path = experiment
    page = path.read_text()
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    assert html.escape(summary["verdicts"]["redit"]["text"]) in page
    assert "<table>" in page


def test_headline_table_rows(experiment):
    _, summary, _ = experiment
    lines = headline_table(summary).splitlines()
    assert "baseline 'vanilla'" in lines[0] and lines[1] == summary["baseline_learned"]["text"]
    assert lines[1].startswith("vanilla learned:") and lines[2].split()[:2] == ["arm", "seeds"]
    rows = {line.split()[0]: line for line in lines[4:]}
    assert set(rows) == {"vanilla", "redit", "gauss"}
    assert "(baseline)" in rows["vanilla"] and "6 (1 failed)" in rows["redit"]
    diff = summary["paired"]["redit"]["accuracy_greedy"]["auc"]
    assert f"{diff['mean']:+.3f}" in rows["redit"] and rows["redit"].rstrip().endswith("faster")
    speed = summary["to_baseline_final"]["arms"]["redit"]
    assert f"{speed['ratio']['mean']:.2f} [" in rows["redit"]
    assert f"({speed['n_reached']} of {speed['n_pairs']} reached)" in rows["redit"]
    assert rows["gauss"].rstrip().endswith("no detectable difference")


def test_forest_plot_shows_the_numbers_of_summary_json(experiment):
    """The headline figure's error bars are summary.json's paired differences, arm by arm."""
    out, _, _ = experiment
    summary = json.loads((out / "summary.json").read_text())
    forest = headline_figure(summary).axes[0]
    assert [t.get_text() for t in forest.get_yticklabels()] == summary["arms"][1:]
    bars = [c for c in forest.containers if hasattr(c, "has_xerr") and c.has_xerr]
    assert len(bars) == len(FOREST_STATS)
    for bar, (stat, label, _) in zip(bars, FOREST_STATS, strict=True):
        assert bar.get_label() == label
        expected = [summary["paired"][arm]["accuracy_greedy"][stat] for arm in summary["arms"][1:]]
        means = list(bar.lines[0].get_xdata())
        ends = [x for seg in bar.lines[2][0].get_segments() for x in (seg[0][0], seg[1][0])]
        assert means == pytest.approx([d["mean"] for d in expected], abs=1e-12)
        assert ends == pytest.approx([x for d in expected for x in (d["lo"], d["hi"])], abs=1e-12)
    assert any(line.get_xdata()[0] == 0 for line in forest.lines)  # the zero line


def test_report_opens_with_the_headline_figure(experiment):
    out, summary, path = experiment
    md = (out / "report.md").read_text().splitlines()
    assert md[0].startswith("# ") and md[2] == f"> **{summary['baseline_learned']['text']}**"
    assert md[4].startswith("![") and md[4].endswith("(plots/headline.png)")
    page = path.read_text()
    assert "<style>" in page and "font-variant-numeric:tabular-nums" in page and "img{display:block;width:100%" in page
    assert page.index('class="note good"') < page.index("<img") < page.index("<h2>")


def test_redit_report_regenerates_with_the_previous_settings(experiment, capsys):
    out, summary, _ = experiment
    for name in ("report.md", "report.html", "plots/headline.png"):
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out.rstrip().splitlines()
    assert printed[-1] == f"report: {out / 'report.html'}"
    assert json.loads((out / "summary.json").read_text()) == summary  # same settings (vanish_ratio 0.2), same numbers
    assert all((out / name).stat().st_size > 0 for name in ("report.md", "report.html", "plots/headline.png"))


def test_redit_report_errors_name_the_problem(tmp_path, capsys):
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_experiment(tmp_path, {"vanilla": 0.0}, range(2))
    assert main(["report", str(tmp_path), "--baseline", "grpo"]) == 2
    assert "baseline arm 'grpo'" in capsys.readouterr().err


@pytest.mark.parametrize("rise", [0.0, -0.2])
def test_no_speed_claims_when_the_baseline_did_not_learn(tmp_path, rise):
    """A flat or degrading baseline: every verdict and steps ratio is replaced by the statement, in every output."""
    write_experiment(tmp_path, {"vanilla": 0.0, "redit": 1.0}, range(8), rise=rise)
    summary = analyze(load_runs(tmp_path))
    learned = summary["baseline_learned"]
    assert learned["learned"] is False and learned["text"].startswith("vanilla did not learn in this regime")
    assert summary["verdicts"]["redit"]["label"] == NOT_LEARNED
    assert summary["steps_to_target"]["withheld"] == summary["to_baseline_final"]["withheld"] == NOT_LEARNED
    assert summary["to_baseline_final"]["arms"]["redit"]["ratio"]["mean"] is None
    assert all(a["ratio_mean_curve"] is None for a in summary["steps_to_target"]["arms"].values())
    write_report(tmp_path, summary)
    table = headline_table(summary)
    assert learned["text"] in table and "faster" not in table
    row = next(line for line in table.splitlines() if line.startswith("redit "))
    assert row.rstrip().endswith(NOT_LEARNED) and "withheld" in row
    md = (tmp_path / "report.md").read_text()
    assert f"> **{learned['text']}**" in md and f"- redit: {NOT_LEARNED} (see above); Δ AUC" in md
    assert f"| {NOT_LEARNED} |" in md and "| faster |" not in md and "| slower |" not in md
    page = (tmp_path / "report.html").read_text()
    assert f'<div class="note">{html.escape(learned["text"])}</div>' in page
    assert json.loads((tmp_path / "summary.json").read_text())["baseline_learned"]["learned"] is False


def test_one_seed_per_arm_still_reports(tmp_path):
    write_experiment(tmp_path, {"vanilla": 0.0, "redit": 1.0}, [0])
    summary = analyze(load_runs(tmp_path))
    assert summary["paired"]["redit"]["accuracy_greedy"]["auc"]["p"] == 1.0
    learned = summary["baseline_learned"]
    assert learned["learned"] is False and learned["n"] == 1 and learned["ci"] == [None, None]
    assert "as far as can be shown (a CI needs 2 seeds)" in learned["text"]
    assert summary["verdicts"]["redit"]["label"] == NOT_LEARNED
    path = write_report(tmp_path, summary)
    assert "[n=1]" in (tmp_path / "report.md").read_text() and path.exists()
