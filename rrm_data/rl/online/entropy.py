"""PEBBLE's unsupervised pre-training: the reward is a k-NN estimate of state entropy.

During the unsupervised phase every sampled batch is rewarded by the distance of its
observation to its k-th nearest neighbour among the observations in the buffer, divided
by a running std of that distance (B-Pref's ``compute_state_entropy``), so the agent seeks
states it has not visited. The buffer's stored rewards are untouched; after the phase the
buffer samples them again, relabelled by r̂.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


def knn_distance(queries: torch.Tensor, points: torch.Tensor, k: int,
                 chunk: int = 10_000) -> torch.Tensor:
    """Distance (B,) of each query (B, D) to its k-th nearest neighbour among ``points``
    (N, D), a query counting itself when it is one of the points (as B-Pref counts it)."""
    dists = [torch.cdist(queries, points[i:i + chunk]) for i in range(0, len(points), chunk)]
    all_d = torch.cat(dists, dim=1)
    k = min(k + 1, all_d.shape[1])
    return all_d.topk(k, dim=1, largest=False).values[:, -1]


class RunningStd:
    """Running mean and variance (parallel Welford), as B-Pref normalizes state entropy."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x: torch.Tensor) -> None:
        n, mean = x.numel(), float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta ** 2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return (self.m2 / self.count) ** 0.5 if self.count > 1 else 1.0


class StateEntropyReplayBuffer(ReplayBuffer):
    """SB3 replay buffer that rewards samples with state entropy while ``intrinsic`` is on."""

    def __init__(self, *args: Any, entropy_k: int = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.intrinsic = False
        self.entropy_k = entropy_k
        self.entropy_stats = RunningStd()

    def _get_samples(self, batch_inds: Any, env: VecNormalize | None = None
                     ) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        if not self.intrinsic:
            return samples
        size = self.buffer_size if self.full else self.pos
        points = self.to_torch(self.observations[:size].reshape(-1, self.obs_shape[-1]))
        with torch.no_grad():
            distance = knn_distance(samples.observations.float(), points.float(),
                                    self.entropy_k)
        self.entropy_stats.update(distance)
        reward = (distance / self.entropy_stats.std).reshape(-1, 1)
        return samples._replace(rewards=reward.to(samples.rewards.dtype))
