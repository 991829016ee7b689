"""Rule-based rewards: TRL-compatible callables that declare their maximum (``max_reward``)."""

from redit.rewards.base import completion_text, max_reward_of, reward, reward_name

__all__ = ["completion_text", "max_reward_of", "reward", "reward_name"]
