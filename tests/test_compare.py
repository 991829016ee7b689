"""`redit compare`: spec parsing, pairing, and a real 2-arm x 2-seed matrix on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tiny_matrix import ARMS, BROKEN, tiny_spec

from redit.cli import main
from redit.experiments.runner import run_matrix
from redit.experiments.spec import parse_spec


def test_arms_share_seeds_pairwise(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path))
    by_seed: dict[int, list] = {}
    for request in spec.requests():
        by_seed.setdefault(request.seed, []).append(request)
    assert sorted(by_seed) == [0, 1]
    for seed, requests in by_seed.items():
        assert {r.arm for r in requests} == {"vanilla", "redit"}
        assert all(r.raw["training"]["seed"] == seed for r in requests)
        assert {r.raw["output_dir"] for r in requests} == {
            str(tmp_path / "runs" / arm / f"seed{seed}") for arm in ("vanilla", "redit")
        }
    redit = next(r for r in spec.requests() if r.arm == "redit" and r.seed == 1)
    assert redit.raw["dither"] == {"sigma": 0.1, "seed": 1}
    assert redit.config().dither.sigma == 0.1


def test_flags_override_the_spec(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path), output_dir=str(tmp_path / "x"), seeds=3, max_steps=7, workers=1)
    assert spec.seeds == [0, 1, 2] and spec.workers == 1 and spec.output_dir == tmp_path / "x"
    assert all(r.config().training["max_steps"] == 7 for r in spec.requests())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baseline": "nope"}, r"^spec.baseline: 'nope' is not an arm; arms are \['vanilla', 'redit'\]$"),
        ({"arms": {}}, r"^spec.arms: expected at least 1 item"),
        ({"arms": {"vanilla": 5, "redit": {}}}, r"^spec.arms.vanilla: expected a mapping, got 5$"),
        ({"seeds": 0}, r"^spec.seeds: a positive count or a list of distinct integers, got 0$"),
        ({"seeds": [1, 1]}, r"^spec.seeds: expected distinct integers, got \[1, 1\]$"),
        ({"workers": 0}, r"^spec.workers: expected a value > 0, got 0$"),
        ({"output_dir": ["a"]}, r"^spec.output_dir: expected a path, got \['a'\]$"),
        (
            {"colour": 1},
            r"^spec.colour: unknown key; known: output_dir, arms, baseline, seeds, workers, launcher, resources, base$",
        ),
        ({"launcher": "slurm"}, r"^spec.launcher: expected 'local' or 'ray', got 'slurm'$"),
        ({"resources": {"num_gpus": -1}}, r"^spec.resources.num_gpus: expected a value >= 0.0, got -1$"),
        (
            {"arms": {"vanilla": {"resources": {"gpus": 8}}, "redit": {}}},
            r"^spec.arms.vanilla.resources.gpus: unknown key.*; known: num_cpus, num_gpus, processes$",
        ),
        ({"arms": {"vanilla": {"resources": {"processes": 0}}}}, r"^spec.arms.vanilla.resources.processes: expected"),
        ({"arms": {"vanilla": {"dither": {"sigma": -1}}}}, r"^arm 'vanilla': dither.sigma must be a finite number"),
        ({"arms": {"vanilla": {"rewards": ["no_such_reward"]}}}, r"^arm 'vanilla': rewards\[0\].name: unknown reward"),
    ],
)
def test_bad_specs_fail_before_running(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spec(tiny_spec(tmp_path) | change)


def test_every_arm_is_fully_validated_at_once(tmp_path: Path) -> None:
    """Problems TRL would find only when an arm starts (after other arms trained) are all reported up front."""
    arms = {
        "vanilla": {"dither": "off"},
        "batch": {"training": {"per_device_train_batch_size": 12}},
        "int8": {"model": {"dtype": "int8"}},
        "fast": {"training": {"learning_rate": "fast"}},
        "k0": {"eval": {"k": 0}},
    }
    with pytest.raises(ValueError) as error:
        parse_spec(tiny_spec(tmp_path, arms))
    assert str(error.value).splitlines() == [
        "4 problems in the config:",
        "  arm 'batch': training: generation_batch_size (12) must be divisible by num_generations (8).",
        "  arm 'int8': model.dtype: expected 'auto', 'float32', 'bfloat16' or 'float16', got 'int8'",
        "  arm 'fast': training.learning_rate: expected a number, got 'fast'",
        "  arm 'k0': eval.k: expected a value > 0, got 0",
    ]
    base_problem = tiny_spec(tmp_path)
    base_problem["base"]["training"]["num_generations"] = "8"
    with pytest.raises(ValueError, match=r"^every arm: training.num_generations: expected an integer, got '8'$"):
        parse_spec(base_problem)


def test_a_spec_with_one_bad_arm_creates_no_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "exp"
    arms = {"vanilla": {"dither": "off"}, "redit": {"dither": {"sigma": 0.1}, "training": {"learning_rate": "fast"}}}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(out, arms)))
    assert main(["compare", str(spec_file)]) == 2
    assert "redit compare: error: arm 'redit': training.learning_rate: expected a number" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "overrides", "flags", "message"),
    [
        (
            {},
            ["base.eval.every=7"],
            {},
            r"base.eval.every=7 does not divide base.training.max_steps=2 \(arm 'vanilla'\)",
        ),
        ({}, [], {"max_steps": 3}, r"base.eval.every=2 does not divide base.training.max_steps=3"),
        (
            {},
            ["arms.redit.training.max_steps=5"],
            {},
            r"does not divide arms.redit.training.max_steps=5 \(arm 'redit'\)",
        ),
        ({}, ["arms.redit.eval.every=4"], {"max_steps": 6}, r"arms.redit.eval.every=4 does not divide base"),
        ({}, ["base.eval.every=0"], {}, r"base.eval.every=0 \(arm 'vanilla'\): redit compare compares held-out"),
        ({"baseline": "grpo"}, [], {}, r"baseline: 'grpo' is not an arm"),
        ({}, [], {"baseline": "grpo"}, r"baseline: 'grpo' is not an arm"),
    ],
)
def test_specs_that_cannot_be_compared_fail_before_running(
    tmp_path: Path, change: dict, overrides: list, flags: dict, message: str
) -> None:
    """Every arm must evaluate at its last step (after overrides and flags) and the baseline must be an arm."""
    from redit.experiments.spec import load_spec

    spec = tiny_spec(tmp_path) | change
    spec["base"]["eval"]["every"] = 2
    with pytest.raises(ValueError, match=message):
        load_spec(None, spec, overrides=overrides, **flags)
    assert not (tmp_path / "runs").exists()


def test_compare_cli_rejects_a_bad_baseline_before_running(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import yaml

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(tmp_path / "out")))
    assert main(["compare", str(spec_file), "--baseline", "grpo"]) == 2
    assert "error: spec.baseline: 'grpo' is not an arm; arms are ['redit', 'vanilla']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_changed_arm_config_is_refused_not_mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from redit.experiments.runner import check_keys

    spec = parse_spec(tiny_spec(tmp_path))
    requests = tmp_path / "requests"
    requests.mkdir()
    first = spec.requests()[0]
    (requests / f"{first.arm}-seed{first.seed}.json").write_text(json.dumps({"key": "something-else"}))
    with pytest.raises(ValueError, match="different config"):
        check_keys(spec)


@pytest.mark.slow
def test_matrix_end_to_end_resume_and_failure(
    local_matrix: tuple[int, Path], model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIT_CACHE", str(model_cache))
    code, out = local_matrix
    arms = {**ARMS, "broken": BROKEN}
    assert code == 1  # the broken arm fails, the others complete

    for arm in ("vanilla", "redit"):
        for seed in (0, 1):
            run = out / "runs" / arm / f"seed{seed}"
            assert (run / "DONE").exists()
            steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
            assert steps == [1, 2]
            assert [json.loads(line)["step"] for line in (run / "eval.jsonl").read_text().splitlines()] == [0, 1, 2]
    error = (out / "runs" / "broken" / "seed0" / "error.txt").read_text()
    assert re.match(r"\w+(Error|Exception): .*no-such-model", error), error  # the exception, not a progress bar
    assert "exit code 1; last lines of" in error
    for name in (
        "summary.json",
        "report.md",
        "report.html",
        "plots/accuracy_greedy.png",
        "plots/grad_norm.png",
        "plots/reward_clean.png",
        "plots/frac_zero_std_clean.png",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"]["ok"] == 4 and len(summary["runs"]["failed"]) == 2
    sigma = [json.loads(x)["sigma"] for x in (out / "runs/redit/seed0/metrics.jsonl").read_text().splitlines()]
    assert sigma == pytest.approx([0.1, 0.1])

    # Rerunning skips every finished run and only retries the failed ones.
    logs = {p.name: p.stat().st_size for p in (out / "logs").iterdir()}
    outcomes = run_matrix(parse_spec(tiny_spec(out, arms)), show_progress=False)
    status = {(o.request.arm, o.request.seed): o.status for o in outcomes}
    assert {k: v for k, v in status.items() if k[0] != "broken"} == {
        (arm, seed): "skipped" for arm in ("vanilla", "redit") for seed in (0, 1)
    }
    assert status[("broken", 0)] == "failed"
    assert all((out / "logs" / name).stat().st_size == size for name, size in logs.items() if "broken" not in name)


def test_set_overrides_any_spec_key(tmp_path: Path) -> None:
    from redit.experiments.spec import load_spec

    spec = load_spec(
        None, tiny_spec(tmp_path), overrides=["base.training.learning_rate=1e-3", "arms.redit.dither.sigma=0.3"]
    )
    configs = {r.arm: r.config() for r in spec.requests() if r.seed == 0}
    assert configs["vanilla"].training["learning_rate"] == 1e-3
    assert configs["redit"].dither.sigma == 0.3


def test_ray_launcher_without_ray_is_one_line_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(tmp_path / "out")))
    assert main(["compare", str(spec_file), "--launcher", "ray"]) == 2
    assert capsys.readouterr().err == "redit compare: error: --launcher ray needs Ray: pip install 'redit[ray]'\n"
    assert not (tmp_path / "out" / "logs").exists()
    assert main(["compare", str(spec_file), "--address", "auto"]) == 2
    assert "--address is the Ray cluster's: add --launcher ray" in capsys.readouterr().err


def test_no_ray_cluster_at_the_address_fails_in_seconds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import socket
    import time

    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(tmp_path / "out")))
    start = time.monotonic()
    assert main(["compare", str(spec_file), "--launcher", "ray", "--address", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - start < 10
    assert capsys.readouterr().err == (
        f"redit compare: error: no Ray cluster at 127.0.0.1:{port} (Connection refused): start one with "
        "`ray start --head` there, or fix --address\n"
    )
    assert not (tmp_path / "out" / "logs").exists()
