"""Test-only shims that let verl's real trainer (``python -m verl.trainer.main_ppo``) run on a CPU machine.

verl 0.9 ships no CPU platform and no CPU rollout. Loaded into every verl process through
``VERL_USE_EXTERNAL_MODULES=...,verl_cpu`` (with ``tests/`` on ``PYTHONPATH``), this package registers, through verl's
own registries, a ``cpu`` platform (gloo process groups, FSDP2 engines on ``cpu``) and an ``hf`` rollout that samples
with Hugging Face ``generate``; for the tests it also records what ReDit's estimators return. It touches verl
internals, so it is pinned to the verl version it was written against and refuses any other.

Covered: verl's driver, Ray actors, TransferQueue, agent loop, reward loop, FSDP2 actor update, advantage estimation,
validation and metrics. Not covered: CUDA/NCCL, vLLM/SGLang rollouts, multi-GPU sharding, Megatron.
"""

from __future__ import annotations

import verl

VERL_VERSION = "0.9.1"

if verl.__version__ != VERL_VERSION:
    raise RuntimeError(
        f"tests/verl_cpu patches verl {VERL_VERSION} internals and was loaded into verl {verl.__version__}: "
        "install the tested version (pip install -e '.[verl]') or port the shims"
    )

from verl_cpu import advantage_log, cpu_platform, hf_rollout

__all__ = ["VERL_VERSION", "advantage_log", "cpu_platform", "hf_rollout"]
