"""The online loop as B-Pref runs PEBBLE, resumable from its last checkpoint.

SAC (sbx, the project's ``make_sac``) steps environments rewarded by r̂.
After ``learning_starts`` random steps and ``unsupervised_steps`` of state-entropy
pre-training (PEBBLE; 0 for RRM), and then every ``round_every`` env steps while budget
is left, a round: pick ``labels_per_round`` pairs of windows of recent episodes (uniform
on the first round, else by ``strategy``), ask the teacher, train r̂ on every label so
far, relabel the whole replay buffer. Queries asked (skipped ones included) never
exceed ``feedback``. After every round (and every ``round_every`` steps once the budget
is spent) the whole state is saved: policy, replay buffer, reward and its optimizer,
labels and the random generators; a restarted run continues from there.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.callbacks import BaseCallback

from rrm_data.config import (
    COUNT,
    FRACTION,
    HELD_OUT,
    NON_NEGATIVE,
    POSITIVE,
    SEED32,
    check_fields,
    config_dict,
    doc,
)
from rrm_data.dataset import format as fmt
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.errors import RrmError
from rrm_data.io import clean_leftovers, remove_owned, replaced_directory, write_json
from rrm_data.labels.acquisition import STRATEGY_HELP, check_strategy
from rrm_data.labels.teachers import Teacher, make_teacher
from rrm_data.progress import Bar
from rrm_data.reward.spec import MODEL_RANGES, RewardSpec, reward_spec
from rrm_data.rl.online.entropy import StateEntropyReplayBuffer
from rrm_data.rl.online.episodes import EpisodeLog, EpisodeStore
from rrm_data.rl.online.feedback import LabelLog
from rrm_data.rl.online.learner import FitResult, OnlineRewardLearner, as_labels
from rrm_data.rl.online.queries import next_queries, pair_inputs
from rrm_data.rl.relabel import relabel_replay_buffer
from rrm_data.rl.sac import (
    EvaluationCallback,
    SacSettings,
    TrainingStats,
    check_sac,
    load_sac,
    make_sac,
    make_vec_env,
    reset_critic,
    resolve_device,
    train,
)

CHECKPOINT = "checkpoint"
LOGS = ("eval.csv", "progress.csv")  # appended to while training, kept with each checkpoint
STATE_INPUTS = {fmt.STATE: STATE_DIM, fmt.ACTION: ACTION_DIM}
EPISODE_STEPS = 500  # Meta-World's max_path_length, the longest episode


@dataclass
class OnlineSettings:
    """Knobs of the loop, with B-Pref's defaults; recipes ``rrm`` and ``pebble`` set them."""

    task: str = field(default="button-press-v3", metadata=doc("Meta-World v3 task name"))
    steps: int = field(default=100_000, metadata=doc("environment steps in all", COUNT))
    seed: int = field(default=0, metadata=doc("seed of envs, networks, queries, teacher", SEED32))
    feedback: int = field(default=2000, metadata=doc("total queries the teacher is asked", COUNT))
    labels_per_round: int = field(default=50, metadata=doc("queries per round", COUNT))
    round_every: int = field(default=5000, metadata=doc("env steps between rounds", COUNT))
    segment_length: int = field(default=50, metadata=doc("steps per queried window", COUNT))
    strategy: str = field(default="uniform", metadata=doc(STRATEGY_HELP))
    pool_factor: int = field(default=10, metadata=doc(
        "candidate pool = pool_factor x labels_per_round (disagreement, entropy)", COUNT))
    recent_episodes: int = field(default=100, metadata=doc(
        "queries draw windows from this many newest episodes", COUNT))
    unsupervised_steps: int = field(default=0, metadata=doc(
        "PEBBLE's state-entropy pre-training steps (0: none)", NON_NEGATIVE))
    entropy_k: int = field(default=5, metadata=doc("k of the k-NN state entropy", COUNT))
    reset_critic: bool = field(default=True, metadata=doc("re-initialize the critics "
                                                          "after unsupervised pre-training"))
    reset_updates: int = field(default=100, metadata=doc(
        "gradient steps on the first learned reward right after the reset", NON_NEGATIVE))
    teacher: str = field(default="oracle", metadata=doc(
        "scripted teacher (oracle, stochastic, mistake, skip, equal, myopic)"))
    teacher_params: dict[str, Any] = field(default_factory=dict,
                                           metadata=doc("the teacher's parameters"))
    reward_max_epochs: int = field(default=10, metadata=doc(
        "epoch cap per round (B-Pref Meta-World: 10)", COUNT))
    target_agreement: float = field(default=0.97, metadata=doc(
        "stop a round's reward training at this train agreement", FRACTION))
    reward_batch_size: int = field(default=128, metadata=doc("pairs per reward step", COUNT))
    reward_lr: float = field(default=3e-4, metadata=doc("Adam step size of the reward", POSITIVE))
    test_fraction: float = field(default=0.2, metadata=doc(
        "oracle test pairs of the feedback dataset, x labels", HELD_OUT))
    model: dict[str, Any] = field(default_factory=dict, metadata=doc(
        "reward model (as train-reward's model)", keys=MODEL_RANGES))
    sac: SacSettings = field(default_factory=SacSettings, metadata=doc("SAC settings (sbx)"))
    eval_every: int = field(default=10_000, metadata=doc(
        "env steps between evaluations", NON_NEGATIVE))
    eval_episodes: int = field(default=10, metadata=doc("deterministic episodes per eval", COUNT))
    episode_steps: int | None = field(default=None, metadata=doc(
        "cut episodes shorter than Meta-World's 500 steps", COUNT))

    @property
    def first_round(self) -> int:
        return self.sac.learning_starts + self.unsupervised_steps

    @property
    def episode_length(self) -> int:
        """Steps of every training episode (Meta-World v3 tasks never end early)."""
        return min(self.episode_steps or EPISODE_STEPS, EPISODE_STEPS)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> OnlineSettings:
        """The settings among a command's config keys."""
        every = config_dict(cfg)
        values = {f.name: every[f.name] for f in fields(cls)}
        return cls(**{**values, "sac": SacSettings(**values["sac"])})


def check_settings(s: OnlineSettings) -> None:
    """Refuse settings the loop cannot run, each with one line."""
    check_strategy(s.strategy, "the reward model (model.members=1)", s.model.get("members"))
    check_fields(OnlineSettings, s)
    if s.feedback < s.labels_per_round:
        raise RrmError(f"feedback={s.feedback} is smaller than one round "
                       f"(labels_per_round={s.labels_per_round})")
    if s.first_round >= s.steps:
        raise RrmError(f"steps={s.steps} ends before the first round (learning_starts + "
                       f"unsupervised_steps = {s.first_round})")
    if s.episode_length < s.segment_length:
        raise RrmError(f"episodes of {s.episode_length} steps (episode_steps) are shorter than "
                       f"segment_length={s.segment_length}")
    n_envs = max(s.sac.n_envs, 1)  # steps count over all envs, which step together
    if -(-s.first_round // n_envs) < s.episode_length:
        raise RrmError(f"the first round (step {s.first_round} = sac.learning_starts + "
                       f"unsupervised_steps) comes before the first episodes end (step "
                       f"{s.episode_length * n_envs} = {s.episode_length} steps x "
                       f"sac.n_envs={n_envs}): nothing to query; raise sac.learning_starts or "
                       "shorten episode_steps")
    unknown = set(s.model.get("inputs", [])) - set(STATE_INPUTS)
    if unknown:
        raise RrmError(f"train-online learns from state and action; model.inputs has "
                       f"{', '.join(sorted(unknown))}")
    make_teacher_for(s)
    check_sac(s.sac)
    reward_spec(s.model, STATE_INPUTS, None)


def make_teacher_for(s: OnlineSettings) -> Teacher:
    return make_teacher(s.teacher, s.teacher_params)


@dataclass
class LoopState:
    """What a checkpoint restores besides the networks and the buffer."""

    next_tick: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    labels: LabelLog = field(default_factory=LabelLog)
    next_episode: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    teacher_rng: dict[str, Any] = field(default_factory=dict)
    resumed_from: list[int] = field(default_factory=list)


class OnlineRun:
    """One run of the loop in its work folder: build or restore, learn, checkpoint."""

    def __init__(self, s: OnlineSettings, workdir: Path, teacher: Teacher | None = None) -> None:
        """``teacher`` replaces the scripted one that ``s.teacher`` names (a human queue)."""
        check_settings(s)
        self.s, self.workdir = s, Path(workdir)
        self.device = resolve_device(s.sac.device)
        self.store = EpisodeStore(self.workdir, s.task, s.recent_episodes, seed=s.seed)
        self.teacher: Teacher = teacher if teacher is not None else make_teacher_for(s)
        self.learner = OnlineRewardLearner(
            reward_spec(s.model, STATE_INPUTS, None), lr=s.reward_lr,
            batch_size=s.reward_batch_size, max_epochs=s.reward_max_epochs,
            target_agreement=s.target_agreement, seed=s.seed, device=self.device)
        self.rng = np.random.default_rng([s.seed, 5])
        self.teacher_rng = np.random.default_rng([s.seed, 7])
        self.env = make_vec_env(s.task, self.learner.reward, s.sac.n_envs, s.seed,
                                s.episode_steps, wrap=lambda env: EpisodeLog(env, self.store))
        self.inputs: dict[str, torch.Tensor] = {}
        checkpoint = find_checkpoint(self.workdir)
        if checkpoint is None:
            self.model = make_sac(self.env, s.sac, s.seed, s.steps,
                                  replay_buffer_class=StateEntropyReplayBuffer,
                                  replay_buffer_kwargs={"entropy_k": s.entropy_k})
            self.buffer.intrinsic = s.unsupervised_steps > 0
            self.state = LoopState(next_tick=s.first_round)
            self.store.restore(0)  # episodes of a run killed before its first checkpoint
            for log in LOGS:
                remove_owned(self.workdir / log)
        else:
            self._restore(checkpoint)

    @property
    def buffer(self) -> StateEntropyReplayBuffer:
        """SAC's replay buffer (made, or loaded from a checkpoint, with this class)."""
        return cast(StateEntropyReplayBuffer, self.model.replay_buffer)

    # --- the loop ----------------------------------------------------------------------

    def learn(self, bar: Bar | None = None) -> tuple[TrainingStats, EvaluationCallback]:
        s, done = self.s, self.model.num_timesteps
        evaluation = EvaluationCallback(
            s.task, s.eval_every, s.eval_episodes, s.seed, self.workdir / "eval.csv",
            s.episode_steps, extra=lambda: {"labels": len(self.state.labels)},
            first=(done // s.eval_every + 1) * s.eval_every if s.eval_every > 0 else None)
        if bar is not None and done:
            bar.advance(done, 0)
        stats = train(self.model, s.steps - done, self.workdir, evaluation, 0, bar,
                      (RoundCallback(self, evaluation),), resume=done > 0)
        return stats, evaluation

    def tick(self, evaluation: BaseCallback) -> None:
        """At a round's time: a round if budget is left, then ``evaluation`` if one is due
        at this step (so the checkpoint keeps its row), then a checkpoint."""
        if self.labels_left() > 0:
            self.round()
        self.state.next_tick += self.s.round_every
        evaluation.on_step()  # evaluates only when due; its own call then does nothing
        self.checkpoint()

    def labels_left(self) -> int:
        return self.s.feedback - len(self.state.labels)

    def round(self) -> dict[str, Any]:
        s, first = self.s, not self.state.rounds
        started = time.perf_counter()
        unsupervised = first and self.buffer.intrinsic
        self.buffer.intrinsic = False  # from now on the buffer's (relabelled) rewards count
        reset = unsupervised and s.reset_critic
        if reset:
            reset_critic(self.model)
        count = min(s.labels_per_round, self.labels_left())
        candidates = self.store.recent()
        queries = next_queries(self.store.episode, candidates, count, s.segment_length,
                               "uniform" if first else s.strategy, self.learner.model,
                               s.pool_factor, self.rng)
        labels = np.asarray(self.teacher.label(queries, self.teacher_rng), np.float64)
        self.state.labels.add(queries, labels)
        if first and s.model.get("normalize", False):
            recent = [self.store.episode(e) for e in candidates]
            self.learner.set_normalization({
                fmt.STATE: torch.as_tensor(np.concatenate([e.obs for e in recent])),
                fmt.ACTION: torch.as_tensor(np.concatenate([e.action for e in recent]))})
        answered = ~np.isnan(labels)
        fit = FitResult(0, 0.0, 0.0)  # every query skipped: r̂ stays as it was
        if answered.any():
            self._append_inputs(pair_inputs(self.store.episode,
                                            queries.take(np.flatnonzero(answered)), self.device),
                                labels[answered])
            fit = self.learner.fit({c: v for c, v in self.inputs.items() if c != "label"},
                                   self.inputs["label"])
        relabel_replay_buffer(self.buffer, self.learner.reward)
        if reset and s.reset_updates > 0:  # PEBBLE: fit the fresh critics before going on
            self.model.train(gradient_steps=s.reset_updates, batch_size=s.sac.batch_size)
        self.store.prune(self.state.labels.episodes())
        record = {"timesteps": int(self.model.num_timesteps), "asked": count,
                  "skipped": int((~answered).sum()), "labels": len(self.state.labels),
                  "epochs": fit.epochs, "train_agreement": round(fit.agreement, 4),
                  "loss": round(fit.loss, 5), "seconds": round(time.perf_counter() - started, 2)}
        self.state.rounds.append(record)
        if fit.epochs:
            self.model.logger.record("reward/train_agreement", fit.agreement)
        self.model.logger.record("reward/labels", len(self.state.labels))
        return record

    def _append_inputs(self, new: dict[str, torch.Tensor], labels: np.ndarray) -> None:
        new = {**new, "label": as_labels(labels, self.device)}
        self.inputs = {c: torch.cat([self.inputs[c], v]) if c in self.inputs else v
                       for c, v in new.items()}

    # --- checkpoints -------------------------------------------------------------------

    def checkpoint(self) -> None:
        self.state.next_episode = self.store.next_index
        self.state.rng = dict(self.rng.bit_generator.state)
        self.state.teacher_rng = dict(self.teacher_rng.bit_generator.state)
        with replaced_directory(self.workdir / CHECKPOINT) as tmp:
            self.model.save(tmp / "sac.zip")
            self.model.save_replay_buffer(tmp / "replay.pkl")
            torch.save({"model": self.learner.model.state_dict(),
                        "spec": self.learner.reward.spec.to_json(), **self.learner.state()},
                       tmp / "reward.pt")
            state = asdict(self.state)
            state["labels"] = self.state.labels.to_dict()
            state["timesteps"] = int(self.model.num_timesteps)
            write_json(tmp / "state.json", state)
            for log in LOGS:
                if (self.workdir / log).exists():
                    shutil.copy(self.workdir / log, tmp / log)

    def _restore(self, checkpoint: Path) -> None:
        state = json.loads((checkpoint / "state.json").read_text())
        labels = LabelLog.from_dict(state.pop("labels"))
        timesteps = state.pop("timesteps")
        self.state = LoopState(**{**state, "labels": labels})
        self.state.resumed_from.append(int(timesteps))
        saved = torch.load(checkpoint / "reward.pt", map_location=self.device,
                           weights_only=False)
        self.learner.model.load_state_dict(saved["model"])
        self.learner.reward.spec = RewardSpec.from_json(saved["spec"])
        self.learner.load_state(saved)
        self.rng.bit_generator.state = state["rng"]
        self.teacher_rng.bit_generator.state = state["teacher_rng"]
        self.store.restore(self.state.next_episode)
        self.model = load_sac(checkpoint / "sac.zip", self.env)
        self.model.load_replay_buffer(checkpoint / "replay.pkl")
        # SB3 saves the last observation of the killed run's environments; these are new
        # ones, so let learn() reset them (and the episode log with them).
        self.model._last_obs = None
        for log in LOGS:  # their rows up to the checkpoint; the resumed run appends
            remove_owned(self.workdir / log)
            if (checkpoint / log).exists():
                shutil.copy(checkpoint / log, self.workdir / log)
        answered = labels.answered()
        if len(answered):
            episode = cache(self.store.episode)
            self._append_inputs(pair_inputs(episode, labels.queries(answered,
                                                                    self.s.segment_length),
                                            self.device),
                                np.asarray(labels.label, np.float64)[answered])


class RoundCallback(BaseCallback):
    """Calls the run's ``tick`` when its time comes, between two env steps."""

    def __init__(self, run: OnlineRun, evaluation: BaseCallback) -> None:
        super().__init__()
        self.tick: Callable[[BaseCallback], None] = run.tick
        self.state, self.evaluation = run.state, evaluation

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.state.next_tick:
            self.tick(self.evaluation)
        return True


def find_checkpoint(workdir: Path) -> Path | None:
    """The last complete checkpoint (it is replaced in one step), after removing what a
    killed writer of the next one left."""
    path = workdir / CHECKPOINT
    clean_leftovers(path)
    return path if (path / "state.json").exists() else None
