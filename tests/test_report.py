"""redit.experiments.report: the files it writes carry the numbers of summary.json, and the HTML stands alone."""

from __future__ import annotations

import html
import json
import re

import pytest
from synthetic_runs import write_experiment, write_run

from redit.experiments.analysis import analyze, load_runs
from redit.experiments.report import headline_table, main, write_report

PLOTS = ("accuracy_greedy", "accuracy_sampled", "reward_clean", "grad_norm", "frac_zero_std_clean")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    write_experiment(out, {"vanilla": 0.0, "redit": 1.0, "gauss": 0.0}, range(6))
    write_run(out, "redit", 9, [{"step": 0, "accuracy_greedy": 0.9}], status="failed")
    runs = load_runs(out)
    summary = analyze(runs, vanish_ratio=0.2)
    return out, summary, write_report(out, summary, runs)


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
    assert "baseline 'vanilla'" in lines[0] and lines[1].split()[:2] == ["arm", "seeds"]
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == {"vanilla", "redit", "gauss"}
    assert "(baseline)" in rows["vanilla"] and "6 (1 failed)" in rows["redit"]
    diff = summary["paired"]["redit"]["accuracy_greedy"]["auc"]
    assert f"{diff['mean']:+.3f}" in rows["redit"] and rows["redit"].rstrip().endswith("faster")
    ratio = summary["steps_to_target"]["arms"]["redit"]["ratio_mean_curve"]
    assert f"{ratio:.2f} (0 never)" in rows["redit"]
    assert rows["gauss"].rstrip().endswith("no detectable difference")


def test_main_regenerates_with_the_previous_settings(experiment, capsys):
    out, summary, _ = experiment
    (out / "report.md").unlink()
    assert main([str(out)]) == 0
    printed = capsys.readouterr().out.rstrip().splitlines()
    assert printed[-1] == f"report: {out / 'report.html'}"
    assert json.loads((out / "summary.json").read_text()) == summary  # same settings (vanish_ratio 0.2), same numbers
    assert (out / "report.md").exists()


def test_main_reports_a_missing_directory(tmp_path, capsys):
    assert main([str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_one_seed_per_arm_still_reports(tmp_path):
    write_experiment(tmp_path, {"vanilla": 0.0, "redit": 1.0}, [0])
    summary = analyze(load_runs(tmp_path))
    verdict = summary["verdicts"]["redit"]
    assert verdict["label"] == "no detectable difference"
    assert verdict["text"].startswith("no detectable difference at 1 seed:")
    assert summary["paired"]["redit"]["accuracy_greedy"]["auc"]["p"] == 1.0
    path = write_report(tmp_path, summary, load_runs(tmp_path))
    assert "[n=1]" in (tmp_path / "report.md").read_text() and path.exists()
