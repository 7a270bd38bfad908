"""Reward functions: the interface every scorer shares, and references that resolve to one."""

from rrm_data.reward.base import (
    PriorReward,
    RewardFunction,
    RewardOutput,
    TrueReward,
    resolve_reward,
)

__all__ = ["PriorReward", "RewardFunction", "RewardOutput", "TrueReward", "resolve_reward"]
