"""Where a run's starting model comes from: a local folder or hub id, or an offline tiny model, optionally
warm-started by a short supervised fine-tune on the task's answers (cached, so every run of an experiment shares it).

The warm start trains on prompt + answer + end-of-text at a *constant* learning rate and stops early. Annealing it to
a sharp point (linear decay to 0) made every GRPO run lose a third of its accuracy in its first steps: a model left
where lr 1e-3 noise cannot move it absorbs GRPO's 10x smaller updates, so the baseline learns from step 0 instead of
recovering from a shock (measurements in docs/regimes.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from redit.config_schema import DataConfig, ModelConfig, TinyModelConfig
from redit.tiny import save_tiny_model

# bump when the warm-start recipe changes, so cached models of the old recipe are not reused
WARM_START_RECIPE = 2


def cache_dir() -> Path:
    """``$REDIT_CACHE`` or ``~/.cache/redit``."""
    return Path(os.environ.get("REDIT_CACHE", Path.home() / ".cache" / "redit"))


def resolve_model(model: ModelConfig, data: DataConfig) -> str:
    """Path or hub id of the starting model, building (and caching) a tiny or warm-started one if asked."""
    if model.name_or_path is not None:
        return model.name_or_path
    warm = model.warm_start.model_dump() if model.warm_start is not None else None
    key = {
        "tiny": model.tiny.model_dump(),
        "warm_start": warm if warm is None else warm | {"recipe": WARM_START_RECIPE},
        "data": [data.task, data.path, data.split, data.prompt_style, data.conversational, data.params]
        if warm is not None
        else None,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_dir() / "models" / digest
    if not (path / "config.json").exists():
        _build(path, model.tiny, warm, data)
    return str(path)


def _build(path: Path, tiny: TinyModelConfig, warm: dict[str, Any] | None, data: DataConfig) -> None:
    staging = path.with_name(path.name + f".tmp{os.getpid()}")
    save_tiny_model(staging, tiny)
    if warm is not None:
        dataset = data.load(data.split, warm["limit"])
        supervised_warm_start(
            staging,
            list(dataset["prompt"]),
            list(dataset["answer"]),
            **{k: warm[k] for k in ("steps", "learning_rate", "batch_size", "seed")},
        )
    if path.exists():  # another process built the same model meanwhile
        shutil.rmtree(staging)
    else:
        staging.rename(path)


def supervised_warm_start(
    path: Path, prompts: list[Any], answers: list[str], steps: int, learning_rate: float, batch_size: int, seed: int
) -> None:
    """Fine-tune the model in ``path`` in place on ``prompt → answer`` pairs at a constant learning rate.

    The loss covers the answer and the end-of-text token that follows it, not the prompt.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    examples = [_encode(tokenizer, p, a) for p, a in zip(prompts, answers, strict=True)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        input_ids, labels = _collate(rng.sample(examples, min(batch_size, len(examples))), tokenizer.pad_token_id)
        loss = model(
            input_ids=input_ids, attention_mask=(labels != -100) | (input_ids != tokenizer.pad_token_id), labels=labels
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(path)


def _encode(tokenizer: Any, prompt: Any, answer: str) -> tuple[list[int], int]:
    if isinstance(prompt, list):
        prefix = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    else:
        prefix, full = prompt, prompt + answer + tokenizer.eos_token
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return ids, len(tokenizer(prefix, add_special_tokens=False)["input_ids"])


def _collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    for row, (ids, prefix) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, prefix : len(ids)] = torch.tensor(ids[prefix:])
    return input_ids, labels
