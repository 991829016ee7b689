"""``ReditGRPOTrainer``: TRL's ``GRPOTrainer`` with the advantages computed by ``redit.advantages``, in every mode.

TRL scores the completions with the reward functions as given (sync or async: TRL awaits them) and gathers the clean
rewards of every process. This trainer then adds the noise and computes the advantages of the whole gathered batch,
identically on every process, and hands TRL its own process's share::

    trainer = ReditGRPOTrainer(model, reward_funcs=[correctness, fmt], args=args, train_dataset=train,
                               dither=DitherConfig(ratio=0.05, distribution="gaussian"))

TRL's own metrics (``reward``, ``rewards/<name>/mean``, ``frac_reward_zero_std``, the completions table) stay those
of the clean rewards; ``redit/sigma`` logs the std of the noise on the weighted total (0 in evaluation, which is clean
and uses ``num_generations_eval`` for its groups). The noise of process ``p``'s completions is keyed by
``(step, call within the step, p, function)``, as :class:`~redit.integrations.trl.ReditRewards` draws it: every
process can draw every process's noise, so no noise is communicated, and a resumed run draws what the uninterrupted
one did. ``completions_path`` (optional) collects every training completion with its gold ``answer``, clean rewards
and advantage as JSON lines. The override point is the narrowest TRL offers: ``_calculate_rewards`` (kept) and the ``advantages`` of
``_generate_and_score_completions``' output (replaced), a private API, hence the pinned TRL versions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from redit.advantages import CONVENTIONS, Groups, adaptive_sigma, group_baseline, mode_advantages, normalize
from redit.atomic import append_lines
from redit.callbacks import TruncateOnResume
from redit.dither import Dither, DitherConfig
from redit.integrations.trl import check_maxima, sigma_total, total_noise
from redit.rewards.base import max_reward_of

TESTED_TRL = ("1.16", "1.17")
"""TRL versions ``[low, high)`` the override is tested with."""
TRL = CONVENTIONS["trl"]


def check_trl_version(version: str | None = None) -> None:
    """Refuse a TRL outside :data:`TESTED_TRL`, naming the version found."""
    from packaging.version import Version

    if version is None:
        import trl

        version = trl.__version__
    low, high = TESTED_TRL
    if not Version(low) <= Version(version) < Version(high):
        raise ValueError(
            f"ReditGRPOTrainer is tested with trl>={low},<{high}, but trl {version} is installed: "
            f"pip install 'trl>={low},<{high}' (or, for faithful ReDit only, use ReditRewards with your GRPOTrainer)"
        )


def check_settings(args: Any, dither: DitherConfig | None) -> None:
    """TRL settings the redit advantages can reproduce (check before loading a model)."""
    if args.multi_objective_aggregation != "sum_then_normalize":
        raise ValueError(
            f"training.multi_objective_aggregation={args.multi_objective_aggregation}: ReditGRPOTrainer normalises "
            "the weighted sum of the rewards; use sum_then_normalize"
        )
    if dither is not None and dither.shapes_advantages and args.scale_rewards != "group":
        raise ValueError(
            f"dither.mode={dither.mode} replaces GRPO's group scaling: set training.scale_rewards=group "
            f"(or leave it out), not {args.scale_rewards}"
        )


def gathered_advantages(
    total: torch.Tensor,
    noise: torch.Tensor,
    group_size: int,
    scale: str,
    config: DitherConfig | None = None,
    sigma: float = 0.0,
) -> torch.Tensor:
    """Advantages of a gathered batch whose groups are runs of ``group_size`` completions.

    ``total``: clean weighted total per completion, NaN where every reward returned None (such a completion is left
    out of its group's statistics and gets advantage 0, as in TRL). ``config``: the noise mode (``None``: faithful).
    """
    scorable = ~torch.isnan(total)
    ids = torch.arange(len(total))[scorable] // group_size
    groups = Groups.from_ids(ids, len(ids))
    clean, eps = total[scorable].double(), noise[scorable].double()
    if config is not None and config.shapes_advantages:
        advantages = mode_advantages(clean, eps, groups, TRL, config, sigma)
    else:
        noisy = clean + eps
        advantages = normalize(
            noisy - group_baseline(noisy, groups, TRL),
            noisy,
            groups,
            scale=scale,
            epsilon=TRL.epsilon,
            unbiased_std=TRL.unbiased_std,
        )
    out = torch.zeros_like(total, dtype=torch.float64)
    out[scorable] = advantages
    return out


def _finite(values: torch.Tensor) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def _replace_tail(logged: Any, values: list[float]) -> None:
    """Overwrite the last ``len(values)`` entries of a bounded deque (those that fit)."""
    kept = min(len(values), len(logged))
    for offset, value in enumerate(values[len(values) - kept :]):
        logged[len(logged) - kept + offset] = value


class ReditGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with ReDit (``dither=None``: clean GRPO, computed by redit in the same way)."""

    def __init__(
        self, *args: Any, dither: DitherConfig | None = None, completions_path: Path | None = None, **kwargs: Any
    ):
        check_trl_version()
        super().__init__(*args, **kwargs)
        self.completions_path = None if completions_path is None else Path(completions_path)
        if self.completions_path is not None:
            self.add_callback(TruncateOnResume(self.completions_path))
        check_settings(self.args, dither)
        self.redit_maxima = [max_reward_of(fn) for fn in self.reward_funcs]
        check_maxima(dither, self.reward_func_names, self.redit_maxima)
        self.dither = Dither(dither) if dither is not None else None
        self._redit_rewards: torch.Tensor | None = None
        self._redit_call = (-1, -1)  # (step, generation call within the step)

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> torch.Tensor:
        self._redit_rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._redit_rewards

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        training = self.model.training
        rewards = self._redit_rewards.detach().to("cpu", torch.float64)
        weights = self.reward_weights.detach().to("cpu", torch.float64)
        total = (rewards * weights).nansum(dim=1)
        total[torch.isnan(rewards).all(dim=1)] = torch.nan
        advantages, sigma = self.redit_advantages(total, training)
        local = len(total) // self.accelerator.num_processes
        start = self.accelerator.process_index * local
        output["advantages"] = advantages[start : start + local].to(output["advantages"])
        _replace_tail(self._logs["advantages"], advantages.tolist())  # TRL logged its own advantages last
        self._metrics["train" if training else "eval"]["redit/sigma"].append(sigma)
        if training and self.completions_path is not None:
            self._write_completions(inputs, rewards, advantages)
        return output

    def _write_completions(self, inputs: list[dict[str, Any]], rewards: torch.Tensor, advantages: torch.Tensor) -> None:
        """Append the gathered batch to ``completions_path`` (JSON lines ``redit score`` reads), on process 0."""
        answers = gather_object([row.get("answer") for row in inputs])
        if not self.accelerator.is_main_process:
            return
        n = len(answers)
        prompts, completions = list(self._logs["prompt"])[-n:], list(self._logs["completion"])[-n:]
        records = (
            {
                "step": self.state.global_step + 1,
                "prompt": prompts[i],
                "completion": completions[i],
                "answer": answers[i],
                "rewards": dict(zip(self.reward_func_names, _finite(rewards[i]))),
                "advantage": advantages[i].item(),
            }
            for i in range(n)
        )
        append_lines(self.completions_path, records)

    def redit_advantages(self, total: torch.Tensor, training: bool) -> tuple[torch.Tensor, float]:
        """Advantages of the gathered batch (float64) and the σ of its noise; clean in evaluation."""
        group_size = self.num_generations if training else self.num_generations_eval
        if not training or self.dither is None:
            return gathered_advantages(total, torch.zeros_like(total), group_size, self.scale_rewards), 0.0
        step = self.state.global_step
        self._redit_call = (step, self._redit_call[1] + 1 if self._redit_call[0] == step else 0)
        config, weights = self.dither.config, self.reward_weights.detach().cpu().float()
        keys = [(self._redit_call[1], rank) for rank in range(self.accelerator.num_processes)]
        local = len(total) // len(keys)
        if config.adaptive is not None:
            scorable = ~torch.isnan(total)
            ids = torch.arange(len(total))[scorable] // group_size
            sigma = adaptive_sigma(total[scorable], Groups.from_ids(ids, len(ids)), TRL, config)
            unit = torch.cat([self.dither.unit(local, step, (*key, len(weights))) for key in keys])
            noise = sigma * unit.double()
        else:
            sigma = sigma_total(self.dither, step, weights, self.redit_maxima)
            noise = torch.cat([total_noise(self.dither, local, step, key, weights, self.redit_maxima) for key in keys])
        return gathered_advantages(total, noise.double(), group_size, self.scale_rewards, config, sigma), sigma
