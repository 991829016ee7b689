"""Trainer callbacks: per-step ``metrics.jsonl`` and held-out accuracy (``eval.jsonl``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from redit.atomic import append_line, read_jsonl, truncate_jsonl
from redit.rewards.base import max_reward_of

# metrics.jsonl key -> key in the trainer's log dict
METRIC_KEYS = {
    "loss": "loss",
    "grad_norm": "grad_norm",
    "reward_clean": "reward",  # ReditGRPOTrainer leaves TRL's reward metrics clean
    "frac_zero_std_clean": "frac_reward_zero_std",
    "sigma": "redit/sigma",
    "kl": "kl",
    "entropy": "entropy",
    "completion_length": "completions/mean_length",
    "reward": "reward",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "learning_rate": "learning_rate",
}


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class TruncateOnResume(TrainerCallback):
    """Keeps a JSONL log with a ``step`` per record consistent with a resumed run: the records past its checkpoint
    are dropped (it re-does those steps), so the file equals the uninterrupted run's."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if args.process_index == 0:
            truncate_jsonl(self.path, state.global_step)


class MetricsJsonl(TruncateOnResume):
    """Appends one JSON record per training log (use ``logging_steps=1`` for one per step).

    Each line is fsynced before the trainer goes on, so a checkpoint is never ahead of the rows.
    """

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        if args.process_index != 0 or not logs or "loss" not in logs:
            return
        record = {"step": state.global_step} | {k: _finite(logs.get(src)) for k, src in METRIC_KEYS.items()}
        record |= {k: _finite(v) for k, v in logs.items() if k.startswith(("redit/", "rewards/", "code/", "verify/"))}
        append_line(self.path, record)


class HeldoutEval(TrainerCallback):
    """Held-out accuracy every ``every`` steps (and at steps 0 and the end): greedy and sampled pass@1 over ``k``.

    A completion is correct when ``reward_fn`` gives it the reward's maximum. Every process takes part (a sharded
    model, FSDP or ZeRO-3, generates only when all do): each generates for its share of the prompts, padded to the
    same number of batches, with ``synced_gpus``; the counts are summed and process 0 writes the record. A resumed
    run keeps the rows up to its checkpoint and adds none at the step it resumes from, so its rows equal the
    uninterrupted run's.
    """

    def __init__(
        self,
        path: Path,
        prompts: Sequence[Any],
        answers: Sequence[str],
        reward_fn: Callable[..., Sequence[float]],
        tokenizer: Any,
        every: int,
        k: int = 4,
        max_new_tokens: int = 16,
        temperature: float = 1.0,
        batch_size: int = 64,
    ):
        self.path, self.prompts, self.answers = Path(path), list(prompts), list(answers)
        self.reward_fn, self.tokenizer = reward_fn, tokenizer
        self.every, self.k, self.max_new_tokens = every, k, max_new_tokens
        self.temperature, self.batch_size = temperature, batch_size
        self.target = max_reward_of(reward_fn) or 1.0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        if args.process_index == 0:
            truncate_jsonl(self.path, state.global_step)
        # the same answer on every process (truncation keeps step 0's row), so all take part in the evaluation or none
        if state.global_step == 0 and not any(r["step"] == 0 for r in read_jsonl(self.path)):
            self._evaluate(model, 0, args)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        step = state.global_step
        if step % self.every == 0 or step == state.max_steps:
            self._evaluate(model, step, args)

    def accuracy(self, model: Any, sample: bool, seed: int, rank: int = 0, world: int = 1) -> float:
        """Fraction of held-out prompts answered correctly (sampled: mean over ``k`` samples per prompt), with
        process ``rank`` of ``world`` generating for prompts ``rank, rank + world, ...``."""
        repeats = self.k if sample else 1
        share = math.ceil(len(self.prompts) / world)
        mine = list(range(rank, len(self.prompts), world))
        counted = len(mine)
        mine += [0] * (share - counted)  # padding, not counted: every process runs the same generate calls
        correct = 0.0
        for start in range(0, share, self.batch_size):
            chunk = mine[start : start + self.batch_size]
            prompts = [self.prompts[i] for i in chunk]
            completions = self._generate(model, prompts, sample, repeats, seed + rank * share + start, world > 1)
            rewards = self.reward_fn(
                prompts=[p for p in prompts for _ in range(repeats)],
                completions=completions,
                answer=[self.answers[i] for i in chunk for _ in range(repeats)],
            )
            hits = [float(r is not None and r >= self.target - 1e-9) for r in rewards]
            correct += sum(hits[: max(0, min(len(chunk), counted - start)) * repeats])
        if world > 1:
            from accelerate.utils import reduce

            correct = reduce(torch.tensor(correct, device=model.device), reduction="sum").item()
        return correct / (len(self.prompts) * repeats)

    def _evaluate(self, model: Any, step: int, args: Any) -> None:
        shard = {"seed": args.seed, "rank": args.process_index, "world": args.world_size}
        record = {
            "step": step,
            "accuracy_greedy": self.accuracy(model, sample=False, **shard),
            "accuracy_sampled": self.accuracy(model, sample=True, **shard),
            "k": self.k,
        }
        if args.process_index == 0:
            append_line(self.path, record)

    @torch.no_grad()
    def _generate(
        self, model: Any, prompts: list[Any], sample: bool, repeats: int, seed: int, synced: bool = False
    ) -> list[str]:
        was_training = model.training
        model.eval()
        texts = [
            self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            if isinstance(p, list)
            else p
            for p in prompts
        ]
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # leave training's RNG untouched
            torch.manual_seed(seed)
            output = model.generate(
                **batch,
                do_sample=sample,
                temperature=self.temperature if sample else None,
                num_return_sequences=repeats,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                synced_gpus=synced,
            )
        model.train(was_training)
        return self.tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
