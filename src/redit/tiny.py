"""Offline models: a character-level tokenizer with a chat template and a tiny Qwen2 causal LM.

Both are saved as an ordinary Hugging Face folder, so everything downstream (``from_pretrained``, TRL, PEFT) runs on
exactly the code path a real model takes, with no downloads.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import pre_tokenizers
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

from redit.config_schema import TinyModelConfig

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer() -> Qwen2Tokenizer:
    """A character-level Qwen2 tokenizer: byte-level BPE with no merges over printable ASCII, plus chat specials.

    Being a genuine ``Qwen2Tokenizer``, it reloads unchanged through ``AutoTokenizer`` (which picks the tokenizer
    class from the model type). Plain prompts end generation at ``<|endoftext|>``; chat ones at ``<|im_end|>``.
    """
    to_byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    vocab = {token: i for i, token in enumerate([PAD, IM_START, IM_END])}
    for char in CHARACTERS:
        vocab[to_byte_level.pre_tokenize_str(char)[0][0]] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=PAD,
        eos_token=PAD,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: Qwen2Tokenizer, config: TinyModelConfig | None = None) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 whose ``vocab_size`` equals ``len(tokenizer)`` (default size: ``TinyModelConfig()``)."""
    import torch

    config = config or TinyModelConfig()
    torch.manual_seed(config.seed)
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids(IM_END)],
    )
    return Qwen2ForCausalLM(model_config)


def save_tiny_model(path: str | Path, config: TinyModelConfig | None = None) -> Path:
    """Build the tokenizer and model and save both to ``path`` (a regular Hugging Face folder)."""
    path, config = Path(path), config or TinyModelConfig()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, config)
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "redit_tiny.json").write_text(str(config.model_dump()))
    return path
