"""Records what ReDit's verl estimators return, so a test can recompute it outside verl.

With ``REDIT_TEST_ADVANTAGE_LOG=<path>`` in the trainer actor's environment, each call of a registered ReDit
estimator appends one JSON line: the global step, each row's group (the prompt uid, numbered by first appearance in
the batch), each row's total reward and its sequence advantage. verl reorders the batch by sequence length before
computing advantages (``trainer.balance_batch``), so the row order is only known from inside the run.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from verl.trainer.ppo import core_algos

from redit.integrations.verl import ESTIMATORS, current_step

LOG_ENV = "REDIT_TEST_ADVANTAGE_LOG"


def _recording(estimator: Any, path: str) -> Any:
    @functools.wraps(estimator)
    def record(token_level_rewards: Any, response_mask: Any, index: Any = None, **kwargs: Any) -> Any:
        advantages, returns = estimator(token_level_rewards, response_mask, index=index, **kwargs)
        groups: dict[str, int] = {}
        row = {
            "step": current_step(),
            "groups": [groups.setdefault(str(uid), len(groups)) for uid in index],
            "rewards": token_level_rewards.sum(-1).tolist(),
            "advantages": ((advantages * response_mask).sum(-1) / response_mask.sum(-1)).tolist(),
        }
        with open(path, "a") as log:
            log.write(json.dumps(row) + "\n")
        return advantages, returns

    return record


if path := os.environ.get(LOG_ENV):
    for name in ESTIMATORS:
        core_algos.ADV_ESTIMATOR_REGISTRY[name] = _recording(core_algos.ADV_ESTIMATOR_REGISTRY[name], path)
