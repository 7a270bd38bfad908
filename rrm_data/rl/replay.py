"""Medium-replay datasets: every episode a SAC agent produced while it learned.

The offline preference-RL benchmarks draw their data from a learning agent's replay
("medium-replay"), so it spans every quality from random to trained. ``train-sac
record_out=PATH`` wraps each training environment in train-online's recorder
(:class:`~rrm_data.rl.online.episodes.EpisodeLog`: state, action, true reward, success and
physics state of every step) and files each finished episode in the run's work folder, in
the order they finished; each episode's policy is named by the training step range its first
step fell in (``sac-train:<from>-<to>``, ``ranges`` equal ranges). When training ends,
collect's last step (``finish_dataset``) cuts segments, samples pairs and labels them with
the teachers, so the recording is a whole ``rrm-data/1`` dataset; ``rrm-data label`` adds
teachers later. Episodes unfinished when training stops (or when a killed run is resumed
from its checkpoint) are not recorded; the checkpoint keeps the number of episodes filed,
so a resumed run files each episode exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from rrm_data.collection.collector import finish_dataset
from rrm_data.config import COUNT, HELD_OUT, NON_NEGATIVE, doc
from rrm_data.errors import RrmError
from rrm_data.labels.tables import LabelSpec, check_pair_budget
from rrm_data.labels.teachers import check_segment_length, make_teacher
from rrm_data.rl.online.episodes import EpisodeLog, EpisodeStore
from rrm_data.sim.envs import episode_length

POLICY = "sac-train"
REPLAY_DIR = "replay"  # the recorded episodes, in the run's work folder


@dataclass
class ReplaySettings:
    """How the recorded episodes are labelled (collect's meaning of each key), and how
    many step ranges name their policies."""

    pairs: int = field(default=2000, metadata=doc("pairs, train and test together",
                                                  NON_NEGATIVE))
    teachers: list[str] = field(default_factory=lambda: ["oracle"], metadata=doc(
        "scripted teachers (collect's); test always gets oracle", nonempty=True))
    teacher_params: dict[str, Any] = field(default_factory=dict, metadata=doc(
        "per-teacher parameters, e.g. record.teacher_params.mistake.epsilon=0.2"))
    segment_length: int = field(default=50, metadata=doc("steps per segment", COUNT))
    segments_per_episode: int = field(default=8, metadata=doc(
        "segments cut from each episode", COUNT))
    test_fraction: float = field(default=0.2, metadata=doc(
        "fraction of episodes and pairs held out for test", HELD_OUT))
    ranges: int = field(default=10, metadata=doc(
        "equal training step ranges that name the episodes' policies", COUNT))


def label_spec(settings: ReplaySettings, seed: int) -> LabelSpec:
    return LabelSpec(seed=seed, segment_length=settings.segment_length,
                     segments_per_episode=settings.segments_per_episode,
                     pairs=settings.pairs, test_fraction=settings.test_fraction,
                     teachers=tuple(settings.teachers),
                     teacher_params={k: dict(v) for k, v in settings.teacher_params.items()})


def expected_episodes(steps: int, n_envs: int, episode_steps: int | None) -> int:
    """Episodes an uninterrupted run finishes: each env steps ceil(steps / n_envs) times."""
    length = episode_length(episode_steps)
    return n_envs * (-(-steps // n_envs) // length)


def check_replay(settings: ReplaySettings, seed: int, steps: int, n_envs: int,
                 episode_steps: int | None) -> None:
    """Refuse, before training, a labelling the recorded episodes cannot give."""
    for name in settings.teachers:
        make_teacher(name, settings.teacher_params.get(name))
    check_segment_length(settings.teachers, settings.segment_length)
    length = episode_length(episode_steps)
    if settings.segment_length > length:
        raise RrmError(f"record.segment_length={settings.segment_length} exceeds the "
                       f"{length}-step episodes")
    episodes = expected_episodes(steps, n_envs, episode_steps)
    need = 4 if settings.test_fraction > 0 else 2  # pairs of distinct episodes
    if settings.pairs > 0 and episodes < need:
        raise RrmError(f"steps={steps} finish {episodes} episodes of {length} steps; "
                       f"record_out needs at least {need} to sample pairs from")
    check_pair_budget(np.arange(episodes), label_spec(settings, seed))


def range_label(step: int, steps: int, ranges: int) -> str:
    """The policy of an episode that started at env step ``step`` of ``steps``."""
    width = -(-steps // ranges)
    low = step // width * width
    return f"{POLICY}:{low}-{min(low + width, steps)}"


class ReplayRecorder:
    """Files every finished training episode in ``workdir/replay``; :meth:`write` turns them
    into a labelled dataset."""

    def __init__(self, workdir: Path, task: str, seed: int, steps: int,
                 settings: ReplaySettings) -> None:
        self.store = EpisodeStore(workdir / REPLAY_DIR, task, recent=0, seed=seed)
        self.seed, self.steps, self.settings = seed, steps, settings
        self.model: BaseAlgorithm | None = None

    def wrap(self, env: gym.Env) -> gym.Env:
        """``make_vec_env``'s ``wrap``: record this environment's episodes."""
        return EpisodeLog(env, self.store, policy=self._policy)

    def _policy(self) -> str:
        step = 0 if self.model is None else int(self.model.num_timesteps)
        return range_label(step, self.steps, self.settings.ranges)

    def start(self, model: BaseAlgorithm, next_episode: int) -> None:
        """Before learning: the clock that names policies, and the episodes filed up to the
        checkpoint resumed (later ones, filed by a killed run, are deleted)."""
        self.model = model
        self.store.restore(next_episode)

    def state(self) -> dict[str, int]:
        """What a checkpoint keeps: the number of episodes filed so far."""
        return {"next_episode": self.store.next_index}

    def write(self, out: Path, collection: dict[str, Any]) -> None:
        """The recorded episodes, segmented, paired and labelled, as a dataset at ``out``;
        ``collection`` (the run's settings) is what its card and info record."""
        count = self.store.next_index
        if count == 0:
            raise RrmError("training finished no episode to record")
        records = [self.store.read(i) for i in range(count)]
        finish_dataset(out, records, collection, pairs=self.settings.pairs, fps=self.store.fps,
                       cameras=[], shard=None, labels=label_spec(self.settings, self.seed))
