"""``redit train``: one GRPO run on TRL's ``GRPOTrainer``, with or without ReDit, from a YAML config.

Writes the run directory described in :mod:`redit.rundir`: ``config.yaml`` (resolved, noise-relevant TRL settings
explicit), ``metrics.jsonl`` (one record per step), ``completions.jsonl`` (each training completion with its answer,
clean rewards and advantage, as ``redit score --input`` reads it), ``eval.jsonl`` (held-out accuracy), TensorBoard
logs, crash-safe checkpoints, ``final/`` and ``DONE``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

from redit.atomic import write_atomic
from redit.config import NOISE_RELEVANT_TRAINING_KEYS, RunConfig, build_rewards, grpo_args, load_config, parse_yaml
from redit.config_schema import LoraSettings, RewardSpec
from redit.presets import TINY_TRAIN, read_config
from redit.rundir import CrashSafeCheckpoints, RunDir


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one GRPO run (optionally with ReDit) from a YAML config",
        description="Train with TRL's GRPOTrainer. Override any setting with --section.key=value or "
        "--section.key VALUE, e.g. --training.max_steps=4 --dither.sigma 0.1. The whole config (and TRL's "
        "GRPOConfig) is validated before anything is written. Without --config, trains the tiny CPU preset.",
    )
    parser.add_argument(
        "--config",
        help="YAML file or shipped preset name, e.g. paper-gsm8k (sections: output_dir, model, data, rewards, "
        "training, dither, eval)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in output_dir from its newest complete checkpoint"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the redit run in output_dir (only once the config is valid)"
    )
    parser.set_defaults(func=_main, accepts_overrides=True)


def _main(args: argparse.Namespace) -> int:
    raw = read_config(args.config) if args.config else TINY_TRAIN
    config = load_config(None, args.overrides, default=raw)
    out = train(config, resume=args.resume, overwrite=args.overwrite)
    print(f"redit train: done; metrics in {RunDir(out).metrics}")
    return 0


def resolved_config(config: RunConfig, args: Any) -> dict[str, Any]:
    """The config as run: the noise-relevant TRL settings written out even when left at TRL's defaults."""
    out = config.to_dict()
    out["training"] = {key: getattr(args, key) for key in NOISE_RELEVANT_TRAINING_KEYS} | out["training"]
    return out


def _check_resume_config(run: RunDir, resolved: dict[str, Any]) -> None:
    changed = _diff(parse_yaml(run.config.read_text()), resolved)
    if changed:
        raise ValueError(f"--resume: the config differs from the saved run's in {changed}; resume with the same config")


def _diff(saved: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = sorted(set(saved) | set(current))
        return [d for k in keys for d in _diff(saved.get(k), current.get(k), f"{prefix}{k}.")]
    return [] if saved == current else [prefix.rstrip(".")]


def train(config: RunConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Run one training job; returns its output directory.

    Everything (config, rewards, model, TRL arguments) is checked before the directory is written; ``overwrite``
    deletes only a redit run, and only then. ``resume`` continues from the newest complete checkpoint.
    """
    run = RunDir(Path(config.output_dir))
    main = int(os.environ.get("RANK", "0")) == 0  # under `accelerate launch`, only its first process writes
    if main:
        run.check_target(resume, overwrite)
    trainer, resolved = build_trainer(config)
    if resume and main:
        _check_resume_config(run, resolved)
    elif main:
        if overwrite and not run.is_empty():
            run.clear()
        run.path.mkdir(parents=True, exist_ok=True)
        write_atomic(run.config, yaml.safe_dump(resolved, sort_keys=False))
    checkpoint = run.latest_checkpoint() if resume else None
    if resume:
        print(
            f"redit train: resuming from {checkpoint or f'step 0 (no complete checkpoint in {run.path})'}", flush=True
        )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_model(str(run.final))
    if main:
        run.mark_done()
    return run.path


def build_trainer(config: RunConfig) -> tuple[Any, dict[str, Any]]:
    """A ready ``ReditGRPOTrainer`` (crash-safe checkpoints, metrics and held-out callbacks) and the resolved config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations import TensorBoardCallback

    from redit.callbacks import MetricsJsonl
    from redit.integrations.trl_trainer import ReditGRPOTrainer
    from redit.models import resolve_model
    from redit.tasks.prompts import truncate_prompts

    class Trainer(CrashSafeCheckpoints, ReditGRPOTrainer):
        """redit's GRPOTrainer whose checkpoints are always whole."""

    args = grpo_args(config)
    rewards = build_rewards(config)
    train_set = config.data.load(config.data.split, config.data.limit)
    model_path = resolve_model(config.model, config.data)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_set = truncate_prompts(train_set, tokenizer, config.data.max_prompt_length)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=_dtype(config.model.dtype))
    run = RunDir(Path(config.output_dir))
    callbacks = [MetricsJsonl(run.metrics)]
    if config.eval.every > 0:
        callbacks.append(_heldout(config, tokenizer, args))
    trainer = Trainer(
        model=model,
        reward_funcs=rewards,
        dither=config.dither,
        completions_path=run.completions,
        args=args,
        train_dataset=train_set,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=_lora(config.model.lora),
    )
    # this run's output_dir/tensorboard unless TENSORBOARD_LOGGING_DIR is set (an env default would stick to the
    # first run of the process, e.g. every run of an in-process sweep logging into the first one's folder)
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and "TENSORBOARD_LOGGING_DIR" not in os.environ:
            callback.logging_dir = str(run.tensorboard)
    return trainer, resolved_config(config, args)


def _heldout(config: RunConfig, tokenizer: Any, args: Any) -> Any:
    from redit.callbacks import HeldoutEval

    spec = config.eval
    from redit.tasks.prompts import truncate_prompts

    heldout = config.data.load(config.data.eval_split, spec.limit, heldout=True)
    heldout = truncate_prompts(heldout, tokenizer, config.data.max_prompt_length)
    reward = RewardSpec(name=spec.reward).function() if spec.reward else config.rewards[0].function()
    return HeldoutEval(
        RunDir(Path(config.output_dir)).evals,
        heldout["prompt"],
        heldout["answer"],
        reward,
        tokenizer,
        every=spec.every,
        k=spec.k,
        max_new_tokens=spec.max_new_tokens or args.max_completion_length,
        temperature=args.temperature,
        batch_size=spec.batch_size,
    )


def _dtype(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def _lora(lora: LoraSettings | None) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(**lora.model_dump())
