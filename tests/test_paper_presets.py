"""Paper-exact presets: the resolved config.yaml of each shows every setting of the authors' run (built without a
model), prompts are the authors' and left-truncated like TRL 0.15.2, and bad preset input fails by name."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from redit.config import build_rewards, grpo_args, parse_config
from redit.dither import Dither
from redit.experiments.spec import parse_spec
from redit.presets import load_preset, preset_names, read_config
from redit.tasks.prompts import build_prompt, truncate_prompt, truncate_prompts
from redit.train import resolved_config

# The authors' TRL 0.15.2 settings (grpo_gsm8k.py / grpo_math.py and that era's defaults), as config.yaml keys.
AUTHORS_TRAINING = {
    "learning_rate": 5e-6,
    "adam_beta1": 0.9,
    "adam_beta2": 0.99,
    "weight_decay": 0.1,
    "warmup_steps": 0.1,  # warmup_ratio 0.1
    "lr_scheduler_type": "cosine",
    "max_grad_norm": 0.1,
    "num_generations": 8,
    "max_steps": 1000,
    "steps_per_generation": 1,
    "temperature": 0.9,
    "top_k": 50,
    "top_p": 1.0,
    "beta": 0.04,
    "use_bias_correction_kl": False,
    "loss_type": "grpo",
    "scale_rewards": "group",
}
GSM8K_REWARDS = [
    "gsm8k_xml_count_authors",
    "gsm8k_soft_format_authors",
    "gsm8k_strict_format_authors",
    "gsm8k_int_authors",
    "gsm8k_correctness_authors",
]
PRESETS: dict[str, dict[str, Any]] = {
    "paper-gsm8k": {
        "training": AUTHORS_TRAINING | {"max_completion_length": 786},
        "data": {"task": "gsm8k", "prompt_style": "gsm8k_authors", "max_prompt_length": 256},
        "rewards": GSM8K_REWARDS,
        "dither": {"distribution": "uniform", "ratio": 0.02, "schedule": "constant", "granularity": "per_function"},
    },
    "paper-gsm8k-scheduled": {
        "training": AUTHORS_TRAINING | {"max_completion_length": 786},
        "data": {"task": "gsm8k", "prompt_style": "gsm8k_authors", "max_prompt_length": 256},
        "rewards": GSM8K_REWARDS,
        "dither": {
            "distribution": "gaussian",
            "ratio": 0.1,
            "schedule": "reverse_cosine",
            "schedule_params": {"max_update": 8000, "final_ratio": 0.01, "warmup_steps": 0},
        },
    },
    "paper-math": {
        "training": AUTHORS_TRAINING | {"max_completion_length": 1024},
        "data": {
            "task": "math",
            "split": "train",
            "eval_path": "HuggingFaceH4/MATH-500",
            "prompt_style": "math_authors",
            "max_prompt_length": 256,
        },
        "rewards": ["reasoning_steps_authors", "math_correctness_authors"],
        "dither": {"distribution": "gaussian", "ratio": 0.05, "schedule": "constant"},
    },
}


def resolved(name: str, tmp_path: Any) -> dict[str, Any]:
    """config.yaml as ``redit train`` writes it, with the GRPOConfig built (CPU: bf16 off), no model loaded."""
    raw = load_preset(name) | {"output_dir": str(tmp_path / name)}
    raw["training"] = raw["training"] | {"bf16": False, "gradient_checkpointing": False}
    config = parse_config(raw)
    build_rewards(config)
    return yaml.safe_load(yaml.safe_dump(resolved_config(config, grpo_args(config)), sort_keys=False))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_resolved_config_shows_the_authors_settings(name: str, tmp_path: Any) -> None:
    out, expected = resolved(name, tmp_path), PRESETS[name]
    for key, value in expected["training"].items():
        assert out["training"][key] == value, f"training.{key}"
    for key, value in expected["data"].items():
        assert out["data"][key] == value, f"data.{key}"
    assert [r["name"] for r in out["rewards"]] == expected["rewards"]
    for key, value in expected["dither"].items():
        assert out["dither"][key] == value, f"dither.{key}"


def test_grpo_config_gets_the_optimiser_and_sampling(tmp_path: Any) -> None:
    raw = load_preset("paper-gsm8k") | {"output_dir": str(tmp_path)}
    raw["training"] = raw["training"] | {"bf16": False}
    args = grpo_args(parse_config(raw))
    assert (args.adam_beta2, args.weight_decay, args.warmup_steps, args.lr_scheduler_type) == (0.99, 0.1, 0.1, "cosine")
    assert (args.top_k, args.use_bias_correction_kl, args.max_completion_length) == (50, False, 786)
    assert args.get_warmup_steps(1000) == 100


def test_scheduled_preset_is_the_authors_active_run(tmp_path: Any) -> None:
    """reverse cosine, horizon 8000 over 1000 steps, base 0.1, Gaussian: std = R_max x m(t) / sqrt(3)."""
    raw = load_preset("paper-gsm8k-scheduled") | {"output_dir": str(tmp_path)}
    dither = Dither(parse_config(raw).dither)
    for step in (0, 250, 500, 1000):
        m = 1e-3 + (0.1 - 1e-3) * (1 + math.cos(math.pi * (1000 - step) / 8000)) / 2
        assert dither.sigma(step, r_max=2.0) == pytest.approx(2.0 * m / math.sqrt(3), rel=1e-12)


def test_compare_paper_uses_one_checker_unless_paper_exact() -> None:
    clean, exact = load_preset("compare-paper"), load_preset("compare-paper-exact")
    for spec in (clean, exact):
        parse_spec(spec)  # every arm's config and rewards are valid (no model is loaded)
    assert all("rewards" not in arm for arm in clean["arms"].values())
    assert clean["base"]["rewards"][-1] == "gsm8k_correctness_authors"
    assert exact["arms"]["vanilla"]["rewards"] == [*GSM8K_REWARDS[:-1], "gsm8k_correctness_vanilla_authors"]
    assert {k: v for k, v in exact.items() if k not in ("arms", "output_dir")} == {
        k: v for k, v in clean.items() if k not in ("arms", "output_dir")
    }


def test_authors_prompts_and_left_truncation() -> None:
    from redit.tiny import build_tokenizer

    tokenizer = build_tokenizer()  # one token per character
    gsm8k = build_prompt("How many?", "gsm8k_authors")
    assert gsm8k[0]["content"].startswith("\nRespond in the following format:\n\n<reasoning>")
    assert gsm8k[2]["content"].endswith("</answer> \n") and "divisble" in gsm8k[2]["content"]
    assert build_prompt("Find x.", "math_authors")[0]["content"].startswith("Find x. Let's think step by step")
    rendered = tokenizer.apply_chat_template(gsm8k, tokenize=False, add_generation_prompt=True)
    cut = truncate_prompt(gsm8k, tokenizer, 64)
    assert rendered.endswith(cut) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 64
    assert truncate_prompt(gsm8k, tokenizer, 10_000) == rendered
    from datasets import Dataset

    rows = Dataset.from_list([{"prompt": gsm8k, "answer": "1"}])
    assert truncate_prompts(rows, tokenizer, None) is rows
    assert truncate_prompts(rows, tokenizer, 64)["prompt"] == [cut]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: read_config("paper-gsm8"), r"unknown preset 'paper-gsm8'; shipped presets: .*paper-gsm8k"),
        (lambda: read_config("configs/nope.yaml"), "config file not found"),
    ],
)
def test_unknown_preset_is_named(call: Any, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        call()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rewards", ["gsm8k_correctness_author"], "unknown reward 'gsm8k_correctness_author'"),
        ("data", {"max_prompt_length": 0}, r"data.max_prompt_length: expected a value > 0"),
        ("dither", {"schedule_params": {"max_update": 0}}, "dither.schedule_params.max_update"),
        ("dither", {"ratio": None, "ratio_choices": [0.1, -0.5]}, "dither.ratio_choices must be"),
    ],
)
def test_bad_paper_input_fails_before_any_model(key: str, value: Any, message: str, tmp_path: Any) -> None:
    raw = load_preset("paper-gsm8k-scheduled") | {"output_dir": str(tmp_path)}
    raw[key] = value if key == "rewards" else raw[key] | value
    with pytest.raises(ValueError, match=message):
        parse_config(raw)  # builds the rewards and GRPOConfig; loads no model


def test_every_paper_preset_is_listed() -> None:
    assert {"paper-gsm8k", "paper-gsm8k-scheduled", "paper-math", "compare-paper-exact"} <= set(preset_names())
