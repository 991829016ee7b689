"""ReDit for verl: advantage estimators that dither the outcome reward, loaded without forking verl.

Load it in every verl process with ``VERL_USE_EXTERNAL_MODULES=redit.integrations.verl`` (export it in the launching
shell *and* pass it to Ray's runtime env, see docs/verl.md). Importing it

* refuses a verl outside the tested versions (:data:`TESTED_VERL`),
* registers ``grpo_redit``, ``rloo_redit`` and ``reinforce_plus_plus_baseline_redit`` with verl's
  ``register_adv_est``, and
* makes verl's start-up ``validate_config`` also check the ``algorithm.redit_*`` keys, so a bad setting fails
  before Ray starts.

The noise is added where verl computes advantages (on the driver, for the whole batch), never in ``compute_score``,
so validation scores stay clean. It is one draw per training step, keyed by ``(algorithm.redit_seed, global step)``
(verl's trainer publishes its step through ``SkipManager.set_step``), in batch-row order.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from packaging.specifiers import SpecifierSet

from redit import advantages as adv
from redit.dither import Dither, DitherConfig
from redit.schedules import make_schedule

try:
    import verl
    import verl.utils.config as verl_config
    from omegaconf import DictConfig, OmegaConf
    from verl.trainer.ppo.core_algos import register_adv_est
    from verl.utils.skip.skip_manager import SkipManager
except ImportError as error:  # pragma: no cover - exercised only without verl
    raise ImportError("redit.integrations.verl needs verl: pip install 'redit[verl]'") from error

logger = logging.getLogger(__name__)

TESTED_VERL = SpecifierSet(">=0.9.1,<0.10")  # the versions `make test-verl` runs against (docs/verl.md)
RUNTIME_ENV_KEY = "ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES"


def check_verl_version(version: str) -> None:
    """Refuse a verl outside :data:`TESTED_VERL`: the plug-in hooks verl's estimator registry and start-up check."""
    if version not in TESTED_VERL:
        raise ImportError(
            f"redit.integrations.verl is tested with verl {TESTED_VERL} and found verl {version}: "
            "pip install 'redit[verl]' for a tested verl (docs/verl.md)"
        )


check_verl_version(verl.__version__)

PREFIX = "redit_"
KEYS = (  # what each does: docs/verl.md
    "redit_sigma",
    "redit_ratio",
    "redit_reward_max",
    "redit_distribution",
    "redit_schedule",
    "redit_schedule_params",
    "redit_seed",
    "redit_max_steps",
    "redit_mode",
    "redit_std_floor",
    "redit_flat_scale",
    "redit_adaptive",
)
ESTIMATORS = ("grpo_redit", "rloo_redit", "reinforce_plus_plus_baseline_redit")


@dataclass(frozen=True)
class ReditSettings:
    """The noise source built from ``algorithm.redit_*``, and R_max for ratio scaling."""

    dither: Dither
    r_max: float | None


def settings_from_config(algorithm: Mapping[str, Any] | None) -> ReditSettings:
    """Read ``algorithm.redit_*``; a bad or missing value raises ``ValueError`` naming the verl config key."""
    values = _redit_values(algorithm)
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        named = ", ".join(f"algorithm.{key}" for key in unknown)
        raise ValueError(f"verl config: unknown key(s) {named}; known: {', '.join(KEYS)}")
    r_max = values.get("redit_reward_max")
    valid_r_max = isinstance(r_max, (int, float)) and not isinstance(r_max, bool) and r_max > 0
    if values.get("redit_ratio") is not None and not valid_r_max:
        raise ValueError(
            "verl config: algorithm.redit_ratio scales noise by the reward's maximum: set "
            f"+algorithm.redit_reward_max=<largest total reward> (> 0), got {r_max!r}; or use algorithm.redit_sigma"
        )
    fields = {key.removeprefix(PREFIX): value for key, value in values.items() if key != "redit_reward_max"}
    schedule_params = fields.get("schedule_params") or {}
    if not isinstance(schedule_params, Mapping):
        raise ValueError(
            "verl config: algorithm.redit_schedule_params takes the schedule's parameters by name, e.g. "
            f"+algorithm.redit_schedule_params.period=300, got {schedule_params!r}"
        )
    try:
        schedule = make_schedule(fields.get("schedule", "constant"), **schedule_params)
        if schedule.needs_max_steps and not fields.get("max_steps"):
            raise ValueError(
                f"algorithm.redit_schedule={schedule.name} needs the run length: set "
                "+algorithm.redit_max_steps=<trainer.total_training_steps>"
            )
        config = DitherConfig(granularity="total", **fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"verl config: {_verl_keys(str(error))}") from error
    return ReditSettings(Dither(config), None if r_max is None else float(r_max))


def check_config(config: Mapping[str, Any]) -> None:
    """Start-up check of a full verl config: the ``algorithm.redit_*`` settings and the groups they need."""
    algorithm = config["algorithm"]
    estimator = algorithm.get("adv_estimator")
    if estimator not in ESTIMATORS:
        if _redit_values(algorithm):
            raise ValueError(
                f"verl config: algorithm.redit_* is set but algorithm.adv_estimator={estimator} adds no noise; "
                f"use one of {', '.join(ESTIMATORS)}"
            )
        return
    settings_from_config(algorithm)
    n = OmegaConf.select(config, "actor_rollout_ref.rollout.n", default=None)
    if n is not None and n < 2:
        raise ValueError(
            f"verl config: algorithm.adv_estimator={estimator} compares completions of the same prompt (group ids "
            f"are prompt uids), so it needs actor_rollout_ref.rollout.n >= 2, got {n}"
        )
    modules = OmegaConf.select(config, RUNTIME_ENV_KEY, default=None)
    if __name__ not in str(modules or "").split(","):
        raise ValueError(
            f"verl config: {RUNTIME_ENV_KEY} does not list {__name__}, so verl's Ray actors would not know "
            f"algorithm.adv_estimator={estimator}: add +{RUNTIME_ENV_KEY}={__name__} (got {modules!r})"
        )


def current_step() -> int:
    """The trainer's global step, as verl's trainer publishes it each step."""
    if SkipManager.step < 0:
        raise RuntimeError(
            "ReDit noise is keyed by the global step, which verl's trainer sets each step; outside the trainer call "
            "verl.utils.skip.skip_manager.SkipManager.set_step(step) before compute_advantage"
        )
    return SkipManager.step


@register_adv_est("grpo_redit")
def compute_grpo_redit_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``grpo`` on dithered rewards; ``algorithm.norm_adv_by_std_in_grpo=False`` gives Dr. GRPO."""
    scale = "group" if (config or {}).get("norm_adv_by_std_in_grpo", True) else "none"
    return _outcome_advantage(
        functools.partial(adv.grpo, scale=scale), token_level_rewards, response_mask, index, config, "grpo_redit"
    )


@register_adv_est("rloo_redit")
def compute_rloo_redit_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``rloo`` on dithered rewards."""
    return _outcome_advantage(adv.rloo, token_level_rewards, response_mask, index, config, "rloo_redit")


@register_adv_est("reinforce_plus_plus_baseline_redit")
def compute_reinforce_pp_baseline_redit_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``reinforce_plus_plus_baseline`` (whitened over tokens) on dithered rewards."""
    estimator = functools.partial(adv.reinforce_pp_baseline, weights=response_mask.sum(-1))
    return _outcome_advantage(
        estimator, token_level_rewards, response_mask, index, config, "reinforce_plus_plus_baseline_redit"
    )


def _outcome_advantage(
    estimator: Callable[..., adv.AdvantageOutput],
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Mapping[str, Any] | None,
    name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dither each completion's total reward, estimate, and broadcast over its response tokens (as verl does)."""
    settings = settings_from_config(config)
    if index is None:
        raise ValueError(
            f"{name} needs group ids: verl passes non_tensor_batch['uid'] as `index`, and the batch has none"
        )
    step = current_step()
    try:
        out = estimator(
            token_level_rewards.sum(dim=-1),
            index,
            convention="verl",
            dither=settings.dither,
            step=step,
            r_max=settings.r_max,
        )
    except ValueError as error:
        raise ValueError(_verl_keys(str(error))) from None
    logger.info("ReDit %s step %d: %s", name, step, out.stats)
    advantages = out.advantages.unsqueeze(-1) * response_mask
    return advantages, advantages


def _verl_keys(message: str) -> str:
    """Rename the core's ``dither.<field>`` in an error message to the verl key ``algorithm.redit_<field>``."""
    return re.sub(r"\bdither\.(\w+)", r"algorithm.redit_\1", message).replace("dither:", "algorithm.redit_*:")


def _redit_values(algorithm: Mapping[str, Any] | None) -> dict[str, Any]:
    if algorithm is None:
        raise ValueError("ReDit estimators read their settings from verl's `algorithm` config, and got none")
    if isinstance(algorithm, DictConfig):
        algorithm = OmegaConf.to_container(algorithm, resolve=True)
    return {key: value for key, value in algorithm.items() if str(key).startswith(PREFIX)}


def _install_startup_check() -> None:
    """Run :func:`check_config` first whenever verl validates its config at start-up."""
    original = verl_config.validate_config

    @functools.wraps(original)
    def validate_config(config: Any, *args: Any, **kwargs: Any) -> Any:
        check_config(config)
        return original(config, *args, **kwargs)

    verl_config.validate_config = validate_config


_install_startup_check()
