"""A ``cpu`` platform for verl 0.9.1: torch's CPU device, gloo process groups, verl's FSDP2 engines on ``cpu``.

Ray still places verl's workers on "GPU" bundles (verl asks for them unconditionally), so the run starts Ray with
fake GPUs (``+ray_kwargs.ray_init.num_gpus=1``); nothing ever touches CUDA.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import psutil
import torch
import verl.utils.distributed as verl_distributed
from verl.plugin.platform import PlatformBase, PlatformRegistry, set_platform


def _no_op(*args: Any, **kwargs: Any) -> None:
    return None


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


# ``torch.cpu`` plus the ``torch.cuda`` calls verl makes through the platform's device module (memory accounting,
# RNG state, cache release); CPU memory is not tracked per device, so the counters read 0.
DEVICE_MODULE = SimpleNamespace(
    **{name: getattr(torch.cpu, name) for name in dir(torch.cpu) if not name.startswith("_")},
    get_device_name=lambda *args: "CPU",
    get_rng_state=lambda *args: torch.get_rng_state(),
    set_rng_state=lambda state, *args: torch.set_rng_state(state),
    mem_get_info=lambda *args: (psutil.virtual_memory().available, psutil.virtual_memory().total),
    memory_allocated=_zero,
    memory_reserved=_zero,
    max_memory_allocated=_zero,
    max_memory_reserved=_zero,
    empty_cache=_no_op,
    ipc_collect=_no_op,
    reset_peak_memory_stats=_no_op,
)


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """torch's CPU device behind verl's platform interface; profiling and memory hooks are no-ops."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def current_device(self) -> Any:
        return "cpu"  # verl passes this to `.to(...)` and FSDP2, where "cpu" is the device and 0 would mean cuda:0

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return "GPU"  # Ray's fake GPUs: one bundle per verl worker

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _gloo_only(original):
    """verl builds ``cpu:gloo,<device>:<backend>``, which torch rejects when the device is ``cpu`` too."""

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend="gloo")

    return initialize_global_process_group_ray


verl_distributed.initialize_global_process_group_ray = _gloo_only(verl_distributed.initialize_global_process_group_ray)
set_platform(PlatformCPU())


def _register_fsdp2_engine() -> None:
    """verl registers its FSDP engines for cuda and npu; FSDP2 itself runs on ``cpu`` (FSDP1 needs an accelerator)."""
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    EngineRegistry.register(model_type="language_model", backend="fsdp2", device="cpu")(FSDPEngineWithLMHead)


_register_fsdp2_engine()
