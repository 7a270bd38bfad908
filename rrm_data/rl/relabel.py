"""Score environment steps with a reward function: r̂ for arrays of observations and actions.

Reward functions read steps-table columns (``observation.state``, ``action``,
``prior.<name>``, ``observation.images.<camera>``, ``next.reward``). Here those columns
are built from what an environment step or a replay buffer holds, so one scorer serves
the training wrapper and PEBBLE-style relabelling after every reward update.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import is_embedding_column
from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction

IMAGE_PREFIX = fmt.image_column("")
PRIOR_PREFIX = fmt.prior_column("")


def frame_cameras(reward: RewardFunction) -> tuple[str, ...]:
    """Cameras whose frames the reward reads (empty for state rewards); a reward on cached
    encoder features records the cameras its features come from."""
    cameras = tuple(c.removeprefix(IMAGE_PREFIX) for c in reward.columns
                    if c.startswith(IMAGE_PREFIX))
    return cameras or tuple((getattr(reward, "spec", {}).get("frames") or {}).get("cameras", ()))


def live_step_columns(reward: RewardFunction, obs: np.ndarray, act: np.ndarray, *,
                 env_reward: np.ndarray | None = None,
                 frames: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The columns ``reward`` reads, for a batch of N steps (obs (N, 39), act (N, 4))."""
    columns: dict[str, np.ndarray] = {}
    for name in reward.columns:
        if name == fmt.STATE:
            columns[name] = np.asarray(obs, dtype=np.float32)
        elif name == fmt.ACTION:
            columns[name] = np.asarray(act, dtype=np.float32)
        elif name.startswith(PRIOR_PREFIX) and fmt.prior_name(name) in PRIORS:
            columns[name] = PRIORS.get(fmt.prior_name(name))(obs).astype(np.float32)
        elif name == fmt.REWARD and env_reward is not None:
            columns[name] = np.asarray(env_reward, dtype=np.float32)
        elif name.startswith(IMAGE_PREFIX) and frames and name.removeprefix(IMAGE_PREFIX) in frames:
            columns[name] = np.asarray(frames[name.removeprefix(IMAGE_PREFIX)])
        elif is_embedding_column(name) and frames:  # the reward encodes the frames itself
            columns.update({IMAGE_PREFIX + c: np.asarray(f) for c, f in frames.items()})
        else:
            raise RrmError(f"reward '{reward.name}' reads column '{name}', which these "
                           "steps do not provide")
    return columns


def relabel(reward: RewardFunction, obs: np.ndarray, act: np.ndarray, *,
            env_reward: np.ndarray | None = None, frames: Mapping[str, np.ndarray] | None = None,
            batch_size: int = 8192) -> np.ndarray:
    """r̂ (N,) float32 for N steps, scored ``batch_size`` steps at a time to bound memory."""
    n = len(obs)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        part = slice(start, min(start + batch_size, n))
        columns = live_step_columns(
            reward, obs[part], act[part],
            env_reward=None if env_reward is None else env_reward[part],
            frames=None if frames is None else {c: f[part] for c, f in frames.items()})
        out[part] = reward.score(columns).total
    return out


def relabel_replay_buffer(buffer, reward: RewardFunction, *,  # noqa: ANN001 (SB3 ReplayBuffer)
                          batch_size: int = 8192) -> int:
    """Overwrite the stored rewards of an SB3 replay buffer with r̂; returns steps relabelled.

    A state reward only: SB3's buffer keeps no frames (relabel image rewards with
    :func:`relabel` on stored frames instead).
    """
    if frame_cameras(reward):
        raise RrmError(f"reward '{reward.name}' reads frames, which a replay buffer does not keep")
    size = buffer.buffer_size if buffer.full else buffer.pos
    obs = buffer.observations[:size]
    act = buffer.actions[:size]
    flat = relabel(reward, obs.reshape(-1, obs.shape[-1]), act.reshape(-1, act.shape[-1]),
                   env_reward=buffer.rewards[:size].reshape(-1), batch_size=batch_size)
    buffer.rewards[:size] = flat.reshape(buffer.rewards[:size].shape)
    return flat.size
