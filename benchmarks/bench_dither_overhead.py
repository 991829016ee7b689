"""Overhead of ReDit on a TRL GRPO step: TRL's ``GRPOTrainer`` vs ``ReditGRPOTrainer`` (faithful noise, σ 0.05).

Both trainers are built in this one process on copies of the same model (``--model tiny``: the ``tiny-cpu`` preset's
warm-started model; ``--model smollm2-135m-instruct``: the real pretrained model, bf16 with LoRA, on one-digit
arithmetic with chat prompts; both cached under ``$REDIT_CACHE``) with identical ``GRPOConfig``s (the batch and
lengths of the ``tiny-cpu`` or ``real-arithmetic`` preset, at learning rate 0 so that both models stay the same and
generate alike: the optimizer step still runs). They train in alternating blocks (A B B A ...) so that machine drift
hits both alike; the first step of each block is dropped (warm-up) and a step is timed from ``on_step_begin`` to
``on_step_end`` (generation, rewards, forward/backward, optimizer). Also times the wrapper alone: one call of the
``ReditRewards``-wrapped reward vs the raw reward on 64 completions (for users of the wrapper).

    python benchmarks/bench_dither_overhead.py [--steps 6] [--repeats 16] [--calls 2000]
    python benchmarks/bench_dither_overhead.py --model smollm2-135m-instruct --steps 2 --repeats 2 --prompts 1
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, *_: Any, **__: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, *_: Any, **__: Any) -> None:
        self.times.append(time.perf_counter() - self._start)


def build(
    model_path: str, real: bool, redit: bool, callbacks: list[Any], steps: int, out: str, prompts: int | None
) -> Any:
    """A ``GRPOTrainer`` (``redit``: a ``ReditGRPOTrainer`` with faithful noise) on the model in ``model_path``."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from redit.dither import DitherConfig
    from redit.integrations.trl_trainer import ReditGRPOTrainer
    from redit.presets import TINY_TRAIN, load_preset
    from redit.rewards import get_reward
    from redit.tasks import load_task

    config = load_preset("real-arithmetic") if real else TINY_TRAIN  # the real model: 4 x 8 x 8 tokens, LoRA
    preset = config["training"]
    args = GRPOConfig(
        output_dir=out,
        max_steps=steps,
        learning_rate=0.0,
        per_device_train_batch_size=preset["num_generations"] * prompts
        if prompts
        else preset["per_device_train_batch_size"],
        num_generations=preset["num_generations"],
        max_completion_length=preset["max_completion_length"],
        temperature=preset["temperature"],
        beta=preset["beta"],
        loss_type=preset["loss_type"],
        scale_rewards=preset["scale_rewards"],
        max_grad_norm=preset["max_grad_norm"],
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    params = {"digits": 1, "operators": "+-*"} if real else TINY_TRAIN["data"]["params"]
    data: Dataset = load_task("arithmetic", None, conversational=real, **params)
    extra = {"dither": DitherConfig(sigma=0.05, seed=0)} if redit else {}
    trainer = (ReditGRPOTrainer if redit else GRPOTrainer)(
        model=AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if real else torch.float32),
        reward_funcs=[get_reward("last_number" if real else "exact_answer")],
        args=args,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        callbacks=callbacks,
        peft_config=LoraConfig(**config["model"]["lora"]) if real else None,
        **extra,
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def wrapper_overhead_us(calls: int, n: int = 64) -> tuple[float, float]:
    """Median µs per call of the raw reward and of the ReDit-wrapped one on ``n`` completions (8 groups)."""
    from redit.dither import DitherConfig
    from redit.integrations.trl import ReditRewards
    from redit.rewards import get_reward

    raw = get_reward("exact_answer")
    redit = ReditRewards([raw], DitherConfig(sigma=0.05))
    redit.bind(model=SimpleNamespace(training=True), group_size=8)
    prompts = [f"{i}+1=" for i in range(n // 8) for _ in range(8)]
    completions = [str(i % 7) for i in range(n)]
    answers = [str(i % 5) for i in range(n)]
    state, logs = SimpleNamespace(global_step=0), {}

    def time_calls(fn: Callable[..., Any]) -> float:
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for step in range(calls):
                state.global_step = step
                fn(
                    prompts=prompts,
                    completions=completions,
                    answer=answers,
                    trainer_state=state,
                    log_metric=logs.__setitem__,
                )
            rounds.append((time.perf_counter() - start) / calls * 1e6)
        return statistics.median(rounds)

    time_calls(redit.reward_funcs[0])  # warm-up
    return time_calls(raw), time_calls(redit.reward_funcs[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per block (the first is dropped)")
    parser.add_argument("--repeats", type=int, default=16, help="blocks per variant")
    parser.add_argument("--calls", type=int, default=2000, help="wrapper microbenchmark calls per round")
    parser.add_argument("--prompts", type=int, help="prompts per step (default: the preset's batch)")
    parser.add_argument("--model", default="tiny", choices=["tiny", "smollm2-135m-instruct"], help="model to time")
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)

    import torch

    from redit.config import load_config
    from redit.models import pretrained_path, resolve_model
    from redit.presets import TINY_TRAIN

    raw_us, wrapped_us = wrapper_overhead_us(options.calls)
    print(
        f"wrapper, 64 completions: raw reward {raw_us:.1f} µs/call, ReDit-wrapped {wrapped_us:.1f} µs/call "
        f"(overhead {wrapped_us - raw_us:.1f} µs/call)"
    )

    real = options.model != "tiny"
    config = load_config(None, ["--output_dir=unused"], default=TINY_TRAIN)
    model_path = pretrained_path(options.model) if real else resolve_model(config.model, config.data)
    timers = {"vanilla": StepTimer(), "redit": StepTimer()}
    with tempfile.TemporaryDirectory() as out:
        trainers = {
            name: build(model_path, real, name == "redit", [timers[name]], options.steps, out, options.prompts)
            for name in timers
        }
        torch.manual_seed(0)
        block_ratios = []
        for block in range(options.repeats):
            order = ("vanilla", "redit") if block % 2 == 0 else ("redit", "vanilla")
            medians = {}
            for name in order:
                before = len(timers[name].times)
                trainers[name].train()
                del timers[name].times[before]  # warm-up step of the block
                medians[name] = statistics.median(timers[name].times[before:])
            block_ratios.append(medians["redit"] / medians["vanilla"])
            print(f"block {block}: " + ", ".join(f"{n} {medians[n] * 1e3:.1f} ms" for n in order), flush=True)

    medians = {name: statistics.median(timer.times) for name, timer in timers.items()}
    for name, timer in timers.items():
        print(
            f"{name:8s}: median step {medians[name] * 1e3:8.1f} ms over {len(timer.times)} steps "
            f"(min {min(timer.times) * 1e3:.1f}, max {max(timer.times) * 1e3:.1f})"
        )
    fastest = {name: min(timer.times) for name, timer in timers.items()}
    print(
        f"step-time ratio redit/vanilla (target <= 1.01): {medians['redit'] / medians['vanilla']:.4f} of medians, "
        f"{statistics.median(block_ratios):.4f} median of adjacent-block ratios, "
        f"{fastest['redit'] / fastest['vanilla']:.4f} of fastest steps (least disturbed by other load)"
    )
    print(
        f"ReditRewards wrapper overhead (one reward call per step) as a share of the fastest vanilla step: "
        f"{(wrapped_us - raw_us) * 1e-6 / fastest['vanilla']:.3%}"
    )


if __name__ == "__main__":
    main()
