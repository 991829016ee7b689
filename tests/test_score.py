"""``redit score``: scores saved generations or dataset rows, writes them back, summarises, refuses bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from redit import score

DATA = Path(__file__).resolve().parent / "data"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="redit")
    score.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["score", "--workers", "2", "--timeout", "2", *argv])
    return args.func(args)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generations_are_scored_and_summarised(tmp_path: Path, capsys):
    good = "<reasoning>\n9 * 2 = 18\n</reasoning>\n<answer>\n18\n</answer>\n"
    rows = [
        {"completion": good, "answer": "18", "id": 1},
        {"completion": [{"role": "assistant", "content": good}], "answer": "#### 18"},
        {"completion": "<answer>17</answer>", "answer": "18"},
    ]
    out = tmp_path / "scored.jsonl"
    assert run("--task", "gsm8k", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--output", str(out)) == 0
    scored = read_jsonl(out)
    assert [r["reward"] for r in scored] == [5.0, 5.0, pytest.approx(0.5 + 0.0)]
    assert scored[0]["id"] == 1 and scored[0]["completion"] == good
    assert scored[2]["rewards"]["gsm8k_correctness"] == 0.0 and scored[2]["rewards"]["gsm8k_int"] == 0.5
    summary = capsys.readouterr().out
    assert "rows: 3" in summary and "accuracy: 0.6667" in summary
    assert "timeouts: 0" in summary and "errors: 0" in summary and "answers/s:" in summary
    assert "checker start-up:" in summary


def test_dataset_rows_score_their_reference_solutions(capsys):
    assert run("--task", "math", "--input", str(DATA / "math_sample.jsonl")) == 0
    captured = capsys.readouterr()
    scored = [json.loads(line) for line in captured.out.splitlines()]
    assert len(scored) == 7 and all(r["rewards"]["math_correctness"] == 2.0 for r in scored)
    assert "accuracy: 1.0000" in captured.err
    assert run("--task", "gsm8k", "--input", str(DATA / "gsm8k_sample.jsonl")) == 0
    assert "accuracy: 1.0000" in capsys.readouterr().err


def test_timeouts_are_counted(tmp_path: Path, capsys):
    rows = [
        {"completion": "\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}", "answer": "1"},
        {"completion": "\\boxed{1}", "answer": "1"},
    ]
    assert run("--task", "math", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows))) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["rewards"]["math_correctness"] for line in captured.out.splitlines()] == [0.0, 2.0]
    assert "timeouts: 1" in captured.err


def test_existing_output_needs_overwrite(tmp_path: Path):
    out = tmp_path / "scored.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run("--task", "math", "--input", str(DATA / "math_sample.jsonl"), "--output", str(out))
    assert out.read_text() == "keep me\n"
    assert run("--task", "math", "--input", str(DATA / "math_sample.jsonl"), "--output", str(out), "--overwrite") == 0
    assert len(read_jsonl(out)) == 7


def test_bad_input_errors_name_the_field_and_fix(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="input file not found"):
        run("--task", "math", "--input", str(tmp_path / "none.jsonl"))
    no_completion = write_jsonl(tmp_path / "a.jsonl", [{"answer": "1"}])
    with pytest.raises(ValueError, match="a.jsonl:1: no 'completion' field"):
        run("--task", "math", "--input", str(no_completion))
    no_answer = write_jsonl(
        tmp_path / "b.jsonl", [{"completion": "\\boxed{1}", "answer": "1"}, {"completion": "\\boxed{1}"}]
    )
    with pytest.raises(ValueError, match="b.jsonl:2: no gold 'answer' field"):
        run("--task", "gsm8k", "--input", str(no_answer))
    not_json = tmp_path / "c.jsonl"
    not_json.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="c.jsonl:1: expected a JSON object"):
        run("--task", "math", "--input", str(not_json))
    with pytest.raises(SystemExit):
        run("--task", "chess", "--input", str(not_json))


def test_cli_reports_bad_input_as_an_error(tmp_path: Path, capsys):
    from redit.cli import main

    assert main(["score", "--task", "math", "--input", str(tmp_path / "none.jsonl")]) == 2
    assert "redit score: error: input file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--workers", "-3", "argument --workers: expected an integer >= 1, got '-3'"),
        ("--workers", "0", "argument --workers: expected an integer >= 1, got '0'"),
        ("--workers", "two", "argument --workers: expected an integer >= 1, got 'two'"),
        ("--timeout", "nan", "argument --timeout: expected a finite number of seconds > 0, got 'nan'"),
        ("--timeout", "inf", "argument --timeout: expected a finite number of seconds > 0, got 'inf'"),
        ("--timeout", "0", "argument --timeout: expected a finite number of seconds > 0, got '0'"),
        ("--timeout", "soon", "argument --timeout: expected a number of seconds, got 'soon'"),
    ],
)
def test_bad_options_are_refused_before_scoring(option: str, value: str, message: str, capsys) -> None:
    from redit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["score", "--task", "math", "--input", str(DATA / "math_sample.jsonl"), option, value])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_numeric_gold_answers_count_as_their_text(tmp_path: Path, capsys) -> None:
    rows = [
        {"completion": "so \\boxed{5}", "answer": 5},
        {"completion": "so \\boxed{0.5}", "answer": 0.5},
        {"completion": "so \\boxed{4}", "answer": 5},
    ]
    assert run("--task", "math", "--input", str(write_jsonl(tmp_path / "in.jsonl", rows))) == 0
    scored = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rewards"]["math_correctness"] for r in scored] == [2.0, 2.0, 0.0]
    assert scored[0]["answer"] == 5  # the row is written back as given
    gsm8k = [{"completion": "<answer>\n18\n</answer>", "answer": 18}]
    assert run("--task", "gsm8k", "--input", str(write_jsonl(tmp_path / "g.jsonl", gsm8k))) == 0
    assert json.loads(capsys.readouterr().out)["rewards"]["gsm8k_correctness"] == 2.0


def test_non_text_completion_and_bad_bytes_name_the_line(tmp_path: Path) -> None:
    rows = [{"completion": "\\boxed{1}", "answer": "1"}, {"completion": {"text": "\\boxed{1}"}, "answer": "1"}]
    with pytest.raises(ValueError, match=r"d.jsonl:2: 'completion' must be text or a list of chat messages, got dict"):
        run("--task", "math", "--input", str(write_jsonl(tmp_path / "d.jsonl", rows)))
    bad_bytes = tmp_path / "e.jsonl"
    bad_bytes.write_bytes(b'{"completion": "\\\\boxed{1}", "answer": "1"}\n{"completion": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(ValueError, match=r"e.jsonl:2: not valid UTF-8 \(byte 20 of the line\)"):
        run("--task", "math", "--input", str(bad_bytes))
