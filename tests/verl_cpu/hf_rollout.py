"""An ``hf`` rollout for verl 0.9.1: one Ray actor per replica samples with Hugging Face ``generate``.

verl's hybrid engine keeps a rollout object in each training worker and pushes the trained weights into it; here that
object forwards them to the replica's generate server, which verl's agent loop calls token-in, token-out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ray
import torch
from transformers import AutoModelForCausalLM
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

NAME = "hf"


def server_name(replica_rank: int) -> str:
    return f"verl_cpu_hf_server_{replica_rank}"


class HFRollout(rollout_base.BaseRollout):
    """Training-worker side: hands each weight update to its replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, model_config, device_mesh)
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size
        self.replica_rank = torch.distributed.get_rank() // world

    async def resume(self, tags: list[str]) -> None:
        pass

    async def release(self) -> None:
        pass

    async def update_weights(self, weights: Iterable, wire_format: str = "named_tensors", **kwargs: Any) -> None:
        if wire_format != "named_tensors" or kwargs.get("peft_config") is not None:
            raise NotImplementedError(f"the hf test rollout takes full named tensors, got {wire_format} / LoRA")
        state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights}
        server = ray.get_actor(server_name(self.replica_rank))
        await server.load_weights.remote(state, kwargs.get("global_steps") or 0)


class HFServer:
    """The replica's server: the policy's latest weights and a token-in, token-out ``generate``."""

    def __init__(self, model_path: str, prompt_length: int, response_length: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        self.prompt_length, self.response_length = prompt_length, response_length
        self.global_steps = 0  # the step whose weights generate; verl checks each sample's policy version

    def load_weights(self, state: dict[str, torch.Tensor], global_steps: int) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"weight update does not fit the model: missing {missing}, unexpected {unexpected}")
        self.global_steps = global_steps

    @torch.no_grad()
    def generate(
        self, prompt_ids: list[int], sampling_params: dict[str, Any], request_id: str, **_: Any
    ) -> TokenOutput:
        budget = self.prompt_length + self.response_length - len(prompt_ids)
        max_tokens = sampling_params.get("max_tokens") or min(self.response_length, budget)
        temperature = sampling_params.get("temperature", 1.0)
        top_k = sampling_params.get("top_k", -1)
        output = self.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max(1, max_tokens),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=sampling_params.get("top_p", 1.0),
            top_k=top_k if top_k and top_k > 0 else None,
        )
        tokens = output[0, len(prompt_ids) :].tolist()
        return TokenOutput(token_ids=tokens, stop_reason="completed", extra_fields={"global_steps": self.global_steps})

    # verl's replica control calls; HF generate holds no KV cache between requests and keeps its weights.
    def wake_up(self) -> None: ...
    def sleep(self) -> None: ...
    def abort_all_requests(self, reject_request: bool = False) -> None: ...
    def resume_generation(self) -> None: ...
    def clear_kv_cache(self) -> None: ...
    def release_kv_cache(self) -> None: ...
    def resume_kv_cache(self) -> None: ...
    def start_profile(self, **kwargs: Any) -> None: ...
    def stop_profile(self) -> None: ...


class HFReplica(RolloutReplica):
    """One generate server per replica, on no Ray resources of its own (it shares the training workers' CPUs)."""

    async def launch_servers(self) -> None:
        name = server_name(self.replica_rank)
        self._server_handle = (
            ray.remote(HFServer)
            .options(name=name, num_cpus=0)
            .remote(self.model_config.path, self.config.prompt_length, self.config.response_length, self.config.seed)
        )
        self._server_address = name
        self.servers = [self._server_handle]
        await self._server_handle.wake_up.remote()


rollout_base._ROLLOUT_REGISTRY[(NAME, "async")] = f"{__name__}.HFRollout"
RolloutReplicaRegistry.register(NAME, lambda: HFReplica)
