"""Ensemble pessimism: a learned reward scored as mean − κ·std over its ensemble members.

A policy optimised against a learned reward drifts to where the reward errs in its favour,
and the members of an ensemble disagree most where the labels said least. Paying the lower
bound mean − κ·std there (the uncertainty penalty of pessimistic offline RL, e.g. MOPO, and
of pessimistic reward learning) is one of the standard remedies when a learned reward
trains a worse policy than the true one. κ = 0 is the ensemble mean, the reward as trained.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction, RewardOutput
from rrm_data.reward.spec import RewardSpec


def ensemble_size(reward: RewardFunction) -> int:
    """Members of a learned reward's ensemble (1 for a reward with no network)."""
    network = reward.spec.network
    return 1 if network is None else int(network.params.get("members", 1))


class PessimisticReward(RewardFunction):
    """``reward`` with total = mean − κ·std (population std) of its members' totals; the
    prior part is unchanged and the residual part absorbs the penalty."""

    def __init__(self, reward: RewardFunction, kappa: float) -> None:
        members = ensemble_size(reward)
        if members < 2:
            raise RrmError(f"reward_pessimism={kappa:g} needs a learned reward with an ensemble; "
                           f"reward {reward.name} has {members} member"
                           " (train it with model.members=3)")
        self.reward, self.kappa = reward, kappa

    @property
    def spec(self) -> RewardSpec:  # type: ignore[override]
        """The wrapped reward's, as it is now (train-online refits and reloads it)."""
        return self.reward.spec

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        out = self.reward.score(columns)
        members = np.asarray(out.members, np.float64)
        total = members.mean(axis=0) - self.kappa * members.std(axis=0)
        prior = np.asarray(out.prior, np.float64)
        return RewardOutput(total, prior, total - prior, out.members)
