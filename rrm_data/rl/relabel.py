"""Score environment steps with a reward function: r̂ for arrays of observations and actions.

Reward functions read steps-table columns (``observation.state``, ``action``,
``prior.<name>``, ``observation.images.<camera>``, ``next.reward``). Here those columns
are built from what an environment step or a replay buffer holds, so one scorer serves
the training wrapper and PEBBLE-style relabelling after every reward update. Each step is
scored from its reward window (``reward.window``), kept inside its episode.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import is_embedding_column
from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.window import first_rows, windowed

IMAGE_PREFIX = fmt.image_column("")
PRIOR_PREFIX = fmt.prior_column("")


def frame_cameras(reward: RewardFunction) -> tuple[str, ...]:
    """Cameras whose frames the reward reads (empty for state rewards); a reward on cached
    encoder features records the cameras its features come from."""
    return reward.spec.cameras


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
            episode_start: np.ndarray | None = None, env_reward: np.ndarray | None = None,
            frames: Mapping[str, np.ndarray] | None = None,
            batch_size: int = 8192) -> np.ndarray:
    """r̂ (N,) float32 for N steps in time order, scored ``batch_size`` steps at a time.

    ``episode_start`` (N,) marks each episode's first step, where windows stop (default:
    the N steps are one episode).
    """
    n = len(obs)
    starts = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool)
    first = first_rows(starts)
    columns = live_step_columns(reward, obs, act, env_reward=env_reward, frames=frames)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        windows = windowed(lambda r: {c: v[r] for c, v in columns.items()}, rows, first[rows],
                           reward.window)
        out[rows] = reward.score(windows).total
    return out


def relabel_replay_buffer(buffer, reward: RewardFunction, *,  # noqa: ANN001 (SB3 ReplayBuffer)
                          batch_size: int = 8192) -> int:
    """Overwrite the stored rewards of an SB3 replay buffer with r̂; returns steps relabelled.

    A state reward only: SB3's buffer keeps no frames (relabel image rewards with
    :func:`relabel` on stored frames instead). Windows follow each environment's steps in
    time order and start at the step after a ``done``; in a full (wrapped) buffer the
    oldest kept step starts one too, as its episode's earlier steps are gone.
    """
    if frame_cameras(reward):
        raise RrmError(f"reward '{reward.name}' reads frames, which a replay buffer does not keep")
    size = buffer.buffer_size if buffer.full else buffer.pos
    # Time order: a full buffer's oldest step sits at ``pos``.
    order = (buffer.pos + np.arange(size)) % size if buffer.full else slice(0, size)

    def env_major(values: np.ndarray) -> np.ndarray:
        """(time, envs, ...) in time order → (envs · time, ...): each env's steps in a row."""
        return values.swapaxes(0, 1).reshape(-1, *values.shape[2:])

    dones = buffer.dones[order]
    starts = np.ones(dones.shape, bool)
    starts[1:] = dones[:-1] > 0
    flat = relabel(reward, env_major(buffer.observations[order]),
                   env_major(buffer.actions[order]), episode_start=env_major(starts),
                   env_reward=env_major(buffer.rewards[order]), batch_size=batch_size)
    buffer.rewards[order] = flat.reshape(buffer.n_envs, size).swapaxes(0, 1)
    return flat.size
