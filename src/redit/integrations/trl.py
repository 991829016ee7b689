"""ReDit for TRL's ``GRPOTrainer``, through its public extension points only.

``ReditRewards`` wraps your reward functions unchanged; TRL then normalises the dithered rewards exactly as it
normalises clean ones::

    redit = ReditRewards([correctness, fmt], DitherConfig(ratio=0.05, distribution="gaussian"))
    trainer = GRPOTrainer(model, args=args, reward_funcs=redit.reward_funcs, callbacks=[redit.callback], ...)

Each wrapped function reads the step from ``trainer_state`` and logs through ``log_metric``, next to TRL's metrics:
``redit/reward_clean`` (clean weighted total), ``redit/rewards_clean/<name>``, ``redit/sigma`` (std of the noise on
the total reward) and ``redit/frac_zero_std_clean`` (groups whose clean total is constant — TRL's own
``frac_reward_zero_std`` drops to 0 once noise is on). The callback tells the wrappers the rank, the reward
weights, the group size and whether the model is training: evaluation rewards stay clean.

Noise of one call is keyed by ``(step, call within step, rank, function)``: reproducible, different on every rank,
and identical after resuming from a checkpoint.

The wrappers add the paper's (``faithful``) noise only and call each function synchronously. The other noise modes,
async reward functions and truthful TRL ``reward`` metrics need :class:`redit.integrations.trl_trainer.ReditGRPOTrainer`
(what ``redit train`` runs).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from redit.dither import Dither, DitherConfig
from redit.rewards.base import is_async, max_reward_of, reward_name

RewardFn = Callable[..., Sequence[float | None]]


def group_ids(prompts: Sequence[Any], group_size: int) -> torch.Tensor:
    """Group index of each completion: runs of equal consecutive prompts, cut into chunks of ``group_size``.

    TRL lays each prompt's completions out consecutively; a group split across ranks is counted on each rank.
    """
    ids, group, run_length = [], -1, 0
    for i, prompt in enumerate(prompts):
        if i == 0 or prompt != prompts[i - 1] or run_length == group_size:
            group, run_length = group + 1, 0
        ids.append(group)
        run_length += 1
    return torch.tensor(ids, dtype=torch.long)


def frac_constant_groups(rewards: torch.Tensor, groups: torch.Tensor, atol: float = 1e-6) -> float:
    """Fraction of groups whose rewards are all equal (NaN rewards ignored)."""
    n_groups = int(groups.max()) + 1
    finite = ~torch.isnan(rewards)
    high = torch.full((n_groups,), -math.inf).scatter_reduce(0, groups[finite], rewards[finite], "amax")
    low = torch.full((n_groups,), math.inf).scatter_reduce(0, groups[finite], rewards[finite], "amin")
    return ((high - low) <= atol).float().mean().item()


def max_total(weights: torch.Tensor, max_rewards: Sequence[float | None]) -> float | None:
    """R_max of the weighted total (positive weights only); ``None`` if a reward declares no maximum."""
    if any(r is None for r in max_rewards):
        return None
    return float(sum(max(float(w), 0.0) * r for w, r in zip(weights, max_rewards)))


def sigma_total(dither: Dither, step: int, weights: torch.Tensor, max_rewards: Sequence[float | None]) -> float:
    """Std of the noise on the weighted total reward at ``step``."""
    if dither.config.granularity == "total":
        return dither.sigma(step, max_total(weights, max_rewards))
    return math.sqrt(
        sum(float(w) ** 2 * dither.sigma(step, r, i) ** 2 for i, (w, r) in enumerate(zip(weights, max_rewards)))
    )


def total_noise(
    dither: Dither, n: int, step: int, key: tuple[int, ...], weights: torch.Tensor, max_rewards: Sequence[float | None]
) -> torch.Tensor:
    """Noise on the weighted total of ``n`` completions, as the wrapped functions draw it under ``key`` (call, rank):
    ``Σ w_i ε_i`` with ``ε_i`` keyed by ``(*key, i)`` per function, or one draw keyed by ``(*key, n_functions)``."""
    if dither.config.granularity == "total":
        return dither.noise(n, step, (*key, len(max_rewards)), max_total(weights, max_rewards))
    return sum(w * dither.noise(n, step, (*key, i), r, i) for i, (w, r) in enumerate(zip(weights, max_rewards)))


def check_maxima(dither: DitherConfig | None, names: Sequence[str], max_rewards: Sequence[float | None]) -> None:
    """Ratio scaling needs every reward's maximum."""
    missing = [name for name, r_max in zip(names, max_rewards) if r_max is None]
    if dither is not None and dither.sigma is None and missing:
        raise ValueError(
            f"dither.ratio scales noise by each reward's maximum, but {missing} declare none: set `max_reward` "
            "on the function (or in the rewards config), or use dither.sigma"
        )


class _Binding(TrainerCallback):
    """Gives the wrappers what only the trainer knows: model (train/eval mode), rank, weights, group size."""

    def __init__(self, owner: ReditRewards):
        self.owner = owner

    def on_init_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        """Bind as soon as the trainer exists, so ``trainer.evaluate()`` works before ``train()`` too."""
        self.on_train_begin(args, state, control, model=model)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        self.owner.bind(
            model=model,
            rank=args.process_index,
            weights=args.reward_weights,
            group_size=args.num_generations,
            aggregation=getattr(args, "multi_objective_aggregation", "sum_then_normalize"),
        )


class ReditRewards:
    """Wraps TRL reward functions with ReDit noise (``dither=None``: clean rewards, same logging)."""

    def __init__(self, reward_funcs: Sequence[RewardFn], dither: DitherConfig | None = None):
        if not reward_funcs:
            raise ValueError("rewards: give at least one reward function")
        for fn in reward_funcs:
            if not callable(fn) or isinstance(fn, (str, torch.nn.Module)):
                raise TypeError(
                    f"rewards: ReDit wraps reward *functions*; got {fn!r}. Reward models are not supported."
                )
        if dither is not None and dither.shapes_advantages:
            raise ValueError(
                f"dither.mode={dither.mode} sets the advantages, which a reward cannot: train with "
                "redit.integrations.trl_trainer.ReditGRPOTrainer (ReditRewards adds the faithful noise only)"
            )
        for fn in reward_funcs:
            if is_async(fn):
                raise ValueError(
                    f"reward function '{reward_name(fn)}' is async, but ReditRewards calls rewards synchronously: "
                    "train with redit.integrations.trl_trainer.ReditGRPOTrainer, which awaits it"
                )
        self.originals = list(reward_funcs)
        self.names = [reward_name(fn) for fn in reward_funcs]
        self.max_rewards = [max_reward_of(fn) for fn in reward_funcs]
        self.dither = Dither(dither) if dither is not None else None
        check_maxima(dither, self.names, self.max_rewards)
        self.reward_funcs = [self._wrap(i) for i in range(len(reward_funcs))]
        self.callback = _Binding(self)
        self._model: Any = None
        self._rank = 0
        self._weights = torch.ones(len(reward_funcs))
        self._group_size: int | None = None
        self._clean: list[torch.Tensor | None] = [None] * len(reward_funcs)
        self._call = (-1, -1)  # (step, call index within the step)

    def bind(
        self,
        model: Any,
        rank: int = 0,
        weights: Sequence[float] | None = None,
        group_size: int | None = None,
        aggregation: str = "sum_then_normalize",
    ) -> None:
        """Attach trainer facts (the callback calls this when the trainer is built and when training starts)."""
        if weights is not None and len(weights) != len(self.originals):
            raise ValueError(
                f"training.reward_weights has {len(weights)} values for {len(self.originals)} reward functions"
            )
        if self.dither is not None and self.dither.config.granularity == "total":
            if aggregation != "sum_then_normalize":
                raise ValueError(
                    "dither.granularity=total needs training.multi_objective_aggregation=sum_then_normalize"
                )
            if weights is not None and weights[-1] == 0:
                raise ValueError("dither.granularity=total adds noise through the last reward, whose weight is 0")
        self._model, self._rank, self._group_size = model, rank, group_size
        self._weights = torch.ones(len(self.originals)) if weights is None else torch.tensor(weights, dtype=torch.float)

    def sigma_total(self, step: int) -> float:
        """Std of the noise on the weighted total reward at ``step`` (0 without dithering)."""
        return 0.0 if self.dither is None else sigma_total(self.dither, step, self._weights, self.max_rewards)

    def _wrap(self, index: int) -> RewardFn:
        def wrapped(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
            return self._score(index, prompts, completions, kwargs)

        wrapped.__name__ = self.names[index]
        wrapped.__qualname__ = self.names[index]
        wrapped.__doc__ = getattr(self.originals[index], "__doc__", None)
        wrapped.max_reward = self.max_rewards[index]  # type: ignore[attr-defined]
        return wrapped

    def _score(self, index: int, prompts: list[Any], completions: list[Any], kwargs: dict) -> list[float | None]:
        if self._model is None:
            raise RuntimeError("ReditRewards is not bound: pass `callbacks=[redit.callback]` to GRPOTrainer")
        values = self.originals[index](prompts=prompts, completions=completions, **kwargs)
        if inspect.iscoroutine(values):
            values.close()
            raise ValueError(
                f"reward function '{self.names[index]}' returned a coroutine, which ReditRewards cannot await: "
                "train with redit.integrations.trl_trainer.ReditGRPOTrainer"
            )
        clean = _as_tensor(values, len(completions), self.names[index])
        self._clean[index] = clean
        step = int(kwargs["trainer_state"].global_step)
        training = bool(self._model.training)
        if index == 0 and training:
            self._call = (step, self._call[1] + 1 if self._call[0] == step else 0)
        dithering = training and self.dither is not None
        out = clean + self._noise(index, step, len(completions)) if dithering else clean
        if index == len(self.originals) - 1:
            groups = group_ids(prompts, self._group_size or len(prompts))
            sigma = self.sigma_total(step) if dithering else 0.0
            self._log(self._clean_total(), groups, sigma, kwargs.get("log_metric"))
        return [None if math.isnan(v) else v for v in out.tolist()]

    def _clean_total(self) -> torch.Tensor:
        clean = torch.stack(self._clean, dim=1)
        total = (clean * self._weights).nansum(dim=1)
        total[torch.isnan(clean).all(dim=1)] = torch.nan
        return total

    def _noise(self, index: int, step: int, n: int) -> torch.Tensor:
        granularity = self.dither.config.granularity
        key = (self._call[1], self._rank)
        if granularity == "per_function":
            return self.dither.noise(n, step, (*key, index), self.max_rewards[index], index)
        if index != len(self.originals) - 1:
            return torch.zeros(n)
        total_max = max_total(self._weights, self.max_rewards)
        return self.dither.noise(n, step, (*key, len(self.originals)), total_max) / self._weights[-1]

    def _log(
        self, total: torch.Tensor, groups: torch.Tensor, sigma: float, log_metric: Callable[[str, float], None] | None
    ) -> None:
        if log_metric is None:
            return
        for name, column in zip(self.names, self._clean):
            log_metric(f"redit/rewards_clean/{name}", torch.nanmean(column).item())
        log_metric("redit/reward_clean", torch.nanmean(total).item())
        log_metric("redit/frac_zero_std_clean", frac_constant_groups(total, groups))
        log_metric("redit/sigma", sigma)
        if self.dither is not None and self.dither.config.ratio_choices is not None:
            for index, name in enumerate(self.names):
                log_metric(f"redit/ratio/{name}", float(self.dither.config.function_ratio(index)))


def _as_tensor(values: Sequence[float | None], expected: int, name: str) -> torch.Tensor:
    values = list(values)
    if len(values) != expected:
        raise ValueError(f"reward function '{name}' returned {len(values)} values for {expected} completions")
    try:
        out = torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"reward function '{name}' returned a non-number ({error}); return floats or None") from None
    bad = [v for v, x in zip(values, out.tolist()) if v is not None and not math.isfinite(x)]
    if bad:
        raise ValueError(f"reward function '{name}' returned non-finite values {bad[:3]}; return a number or None")
    return out.float()
