"""Rewards: the authors' GSM8K set, MATH correctness and steps, accuracy and R1 format; real data and hostile input."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import pytest

from redit.rewards import REWARDS, get_reward, max_reward_of
from redit.rewards.general import final_answer, last_boxed, tag_content
from redit.rewards.gsm8k import gsm8k_answer, is_soft_format, is_strict_format, xml_count
from redit.rewards.math import count_steps
from redit.tasks import default_rewards
from redit.tasks.gsm8k import gold_answer as gsm8k_gold
from redit.verify import configure_verifier

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TIMEOUT_S = 2.0

GOOD_GSM8K = "<reasoning>\n16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n</reasoning>\n<answer>\n18\n</answer>\n"


@pytest.fixture(scope="module", autouse=True)
def fast_verifier():
    verifier = configure_verifier(workers=2, timeout=TIMEOUT_S)
    yield verifier
    verifier.close()


def call(name: str, completions: list, answers: list | None = None, **kwargs) -> list[float]:
    extra = {} if answers is None else {"answer": answers}
    return get_reward(name)([""] * len(completions), completions, **extra, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_registry_names_and_maxima():
    expected = {
        "gsm8k_correctness": 2.0, "gsm8k_int": 0.5, "gsm8k_strict_format": 1.0, "gsm8k_soft_format": 1.0,
        "gsm8k_xml_count": 0.5, "math_correctness": 2.0, "math_reasoning_steps": 1.0, "accuracy": 1.0, "r1_format": 1.0,
        "exact_answer": 1.0, "last_number": 1.0, "code_pass_all": 1.0, "code_pass_fraction": 1.0, "code_format": 0.5,
    }  # fmt: skip
    ours = {name: fn for name, fn in REWARDS.items() if not name.endswith("_authors")}  # see test_authors_rewards
    assert {name: max_reward_of(fn) for name, fn in ours.items()} == expected
    assert all(fn.__name__ == name for name, fn in REWARDS.items())
    for task in ("gsm8k", "math", "mbpp", "humaneval"):
        assert set(default_rewards(task)) <= set(REWARDS)


def test_last_number_reads_the_final_integer():
    completions = ["The answer is 7.", "7 - 2 = 5", "no number", "-3", [{"role": "assistant", "content": "so 12"}]]
    assert call("last_number", completions, ["7", "7", "7", "-3", "12"]) == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_unknown_reward_lists_valid_names():
    with pytest.raises(ValueError, match="gsm8k_correctness.*r1_format|accuracy.*math_correctness"):
        get_reward("nope")


def test_gsm8k_full_marks_on_the_recipe_format():
    completions = [GOOD_GSM8K, [{"role": "assistant", "content": GOOD_GSM8K}]]
    totals = [sum(v) for v in zip(*(call(n, completions, ["18", "18"]) for n in default_rewards("gsm8k")), strict=True)]
    assert totals == [5.0, 5.0]


def test_gsm8k_correctness_and_int():
    completions = [
        GOOD_GSM8K,
        GOOD_GSM8K.replace("18", "19"),
        "<answer>18.0</answer>",
        "<answer> $1,080 </answer>",
        "no tags 18",
    ]
    assert call("gsm8k_correctness", completions, ["18", "18", "18", "1080", "18"]) == [2.0, 0.0, 2.0, 2.0, 0.0]
    assert call("gsm8k_int", completions) == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_gsm8k_answer_extraction():
    assert gsm8k_answer("<answer>\n 42 \n</answer> trailing") == "42"
    assert gsm8k_answer("so she has 5 left.\n#### 5\n") == "5"
    assert gsm8k_answer("  7 ") == "7"
    assert gsm8k_gold("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 2,125") == "2125"


def test_gsm8k_format_rewards():
    multi_line = "<reasoning>\nline one\nline two\n</reasoning>\n<answer>\n3\n</answer>"
    spaced = "<reasoning>think</reasoning> <answer>3</answer>"
    doubled = "<reasoning>\na\n</reasoning>\n<answer>\n1\n</answer>\n<answer>\n2\n</answer>\n"
    assert [is_strict_format(t) for t in (GOOD_GSM8K, multi_line, spaced, doubled)] == [True, True, False, False]
    assert [is_soft_format(t) for t in (GOOD_GSM8K, spaced, " " + spaced, "<reasoning>x</reasoning><answer>3")] == [
        True, True, False, False,
    ]  # fmt: skip
    assert xml_count(GOOD_GSM8K) == 0.5
    assert xml_count(GOOD_GSM8K + "extra") == pytest.approx(0.5 - 0.005)
    assert xml_count("<reasoning>\nx\n</reasoning>\n") == 0.25
    assert xml_count(GOOD_GSM8K + "x" * 10_000) == 0.0


def test_math_correctness_uses_the_last_box():
    completions = [
        "First \\boxed{3}, then \\boxed{\\frac{14}{3}}",
        "\\boxed{3}",
        "no box: 14/3",
        "\\boxed{\\frac{14}{3}",
    ]
    assert call("math_correctness", completions, ["\\frac{14}{3}"] * 4) == [2.0, 0.0, 0.0, 0.0]


def test_last_boxed_and_tags():
    assert last_boxed("\\boxed{a} and \\boxed{\\frac{1}{\\sqrt{2}}}.") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("\\boxed{unclosed") is None and last_boxed("none") is None
    assert tag_content("<answer> 5 </answer><answer>6</answer>", "answer") == "6"
    assert final_answer("<think>\\boxed{1}</think><answer>so \\boxed{2}</answer>") == "2"
    assert final_answer("<answer>x = 3</answer>") == "x = 3"
    assert final_answer("reasoning \\boxed{4}") == "4"


def test_reasoning_steps():
    text = "Step 1: add.\nStep 2: subtract.\n1. one\n2) two\n**First**, x\n- Next, y\nFinally, z\n3.5 is not a step"
    assert count_steps(text) == 7
    assert call("math_reasoning_steps", ["Step 1: a", "First, a\nThen b", text, "no steps"]) == [
        pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0, 0.0,
    ]  # fmt: skip


def test_accuracy_and_r1_format():
    r1 = "<think>\n2 + 2\n</think>\n<answer>4</answer>"
    completions = [r1, "<answer>\\boxed{4}</answer>", "\\boxed{5}", "4"]
    assert call("accuracy", completions, ["4"] * 4) == [1.0, 1.0, 0.0, 0.0]
    formats = [r1, " " + r1 + "\n", "<think>a</think>x<answer>4</answer>", r1 + r1, "<answer>4</answer>"]
    assert call("r1_format", formats) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_correctness_rewards_need_the_answer_column():
    for name in ("gsm8k_correctness", "math_correctness", "accuracy"):
        with pytest.raises(ValueError, match="'answer' column"):
            call(name, ["x"])


def test_verify_metrics_are_logged():
    logged: dict[str, float] = {}
    call("math_correctness", ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{2}"], ["1", "2"], log_metric=logged.__setitem__)
    assert logged["verify/errors"] == 0.0
    assert logged["verify/timeouts"] in (0.0, 1.0)
    assert set(logged) == {"verify/timeouts", "verify/errors"}


def test_fixture_references_score_full_correctness():
    gsm8k = read_jsonl(DATA / "gsm8k_sample.jsonl")
    assert (
        call("gsm8k_correctness", [r["answer"] for r in gsm8k], [gsm8k_gold(r["answer"]) for r in gsm8k]) == [2.0] * 5
    )
    math = read_jsonl(DATA / "math_sample.jsonl")
    assert call("math_correctness", [r["solution"] for r in math], [r["answer"] for r in math]) == [2.0] * len(math)


def hostile_completions(marker: Path) -> list[str]:
    return [
        f"\\boxed{{__import__('os').system('touch {marker}')}}",
        f'The answer is __import__("os").system("touch {marker}")',
        f"<answer>__import__('os').system('touch {marker}')</answer>",
        "\\boxed{9^{9^{9^{9}}}}",
        "\\boxed{(10^{100})!} \\boxed{100000000000!}",
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "x" * 1_000_000,
        "\\boxed{" * 200_000,
        "<reasoning>\n" + "\n</reasoning>\n<answer>\n" * 40_000 + "\n</answer>\n",
    ]


@pytest.mark.parametrize("name", ["math_correctness", "accuracy", "gsm8k_correctness"])
def test_hostile_completions_score_zero_quickly_and_safely(name, tmp_path: Path):
    marker = tmp_path / "pwned"
    completions = hostile_completions(marker)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    assert call(name, completions, ["1"] * len(completions)) == [0.0] * len(completions)
    assert time.monotonic() - start < 2 * TIMEOUT_S + 5  # two rounds of timeouts on two workers, plus slack
    assert not marker.exists()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200_000  # KiB


def test_format_rewards_are_linear_on_hostile_input(tmp_path: Path):
    completions = hostile_completions(tmp_path / "pwned")
    start = time.monotonic()
    for name in (
        "gsm8k_strict_format",
        "gsm8k_soft_format",
        "gsm8k_xml_count",
        "gsm8k_int",
        "math_reasoning_steps",
        "r1_format",
    ):
        assert all(0.0 <= v <= max_reward_of(get_reward(name)) for v in call(name, completions))
    assert time.monotonic() - start < 10


@pytest.mark.skipif(
    not (SHARED / "math500" / "test.jsonl").exists(), reason="needs ../shared/data/math500 (not in a fresh clone)"
)
def test_math500_reference_solutions_self_check():
    rows = read_jsonl(SHARED / "math500" / "test.jsonl")
    known = json.loads((DATA / "math500_known_mismatches.json").read_text())
    scores = call("math_correctness", [r["solution"] for r in rows], [r["answer"] for r in rows])
    failed = {r["unique_id"] for r, s in zip(rows, scores, strict=True) if s != 2.0}
    assert failed <= {k["unique_id"] for k in known["self"]}
    assert len(failed) <= 0.01 * len(rows)

    pairs = [
        (i, (i + 1) % len(rows)) for i in range(len(rows)) if rows[i]["answer"] != rows[(i + 1) % len(rows)]["answer"]
    ]
    crossed = call("math_correctness", [rows[i]["solution"] for i, _ in pairs], [rows[j]["answer"] for _, j in pairs])
    accepted = {rows[i]["unique_id"] for (i, _), s in zip(pairs, crossed, strict=True) if s != 0.0}
    assert accepted <= {k["unique_id"] for k in known["cross"]}
    assert len(accepted) <= 0.005 * len(pairs)


@pytest.mark.skipif(
    not (SHARED / "gsm8k" / "test.jsonl").exists(), reason="needs ../shared/data/gsm8k (not in a fresh clone)"
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_gsm8k_reference_solutions_all_correct(split):
    rows = read_jsonl(SHARED / "gsm8k" / f"{split}.jsonl")
    scores = call("gsm8k_correctness", [r["answer"] for r in rows], [gsm8k_gold(r["answer"]) for r in rows])
    assert scores == [2.0] * len(rows)
