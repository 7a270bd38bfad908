"""The online loop as B-Pref runs PEBBLE, resumable from its last checkpoint.

SAC (sbx, the project's ``make_sac``) steps environments rewarded by r̂.
After ``learning_starts`` random steps and ``unsupervised_steps`` of state-entropy
pre-training (PEBBLE; 0 for RRM), and then every ``round_every`` env steps while budget
is left, a round: pick ``labels_per_round`` pairs of windows of recent episodes (uniform
on the first round, else by ``strategy``), ask the teacher, train r̂ on every label so
far, relabel the whole replay buffer. Queries asked (skipped ones included) never
exceed ``feedback``. After every round (and every ``round_every`` steps once the budget
is spent) the whole state is saved (``checkpoint``): policy, replay buffer, reward and
its optimizer, labels and the random generators; a restarted run continues from there.
The settings and their checks are ``settings``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from rrm_data.dataset import format as fmt
from rrm_data.io import remove_owned
from rrm_data.labels.teachers import Teacher
from rrm_data.progress import Bar
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.pessimism import PessimisticReward
from rrm_data.reward.spec import reward_spec
from rrm_data.rl.online.checkpoint import LoopState, load_checkpoint, save_checkpoint
from rrm_data.rl.online.entropy import StateEntropyReplayBuffer
from rrm_data.rl.online.episodes import EpisodeLog, EpisodeStore
from rrm_data.rl.online.learner import FitResult, OnlineRewardLearner, as_labels
from rrm_data.rl.online.queries import next_queries, pair_inputs
from rrm_data.rl.online.settings import (
    STATE_INPUTS,
    OnlineSettings,
    check_settings,
    make_teacher_for,
)
from rrm_data.rl.relabel import relabel_replay_buffer
from rrm_data.rl.sac import (
    LOGS,
    EvaluationCallback,
    TrainingStats,
    make_sac,
    make_vec_env,
    reset_critic,
    resolve_device,
    restore_reward_scale,
    reward_scale_state,
    scale_rewards,
    train,
)
from rrm_data.rl.workdir import find_checkpoint
from rrm_data.streams import Stream, stream


class OnlineRun:
    """One run of the loop in its work folder: build or restore, learn, checkpoint."""

    def __init__(self, s: OnlineSettings, workdir: Path, teacher: Teacher | None = None) -> None:
        """``teacher`` replaces the scripted one that ``s.teacher`` names (a human queue)."""
        check_settings(s)
        self.s, self.workdir = s, Path(workdir)
        self.device = resolve_device(s.sac.device)
        self.store = EpisodeStore(self.workdir, s.task, recent=s.recent_episodes, seed=s.seed)
        self.teacher: Teacher = teacher if teacher is not None else make_teacher_for(s)
        self.learner = OnlineRewardLearner(
            reward_spec(s.model, STATE_INPUTS, None), lr=s.reward_lr,
            batch_size=s.reward_batch_size, max_epochs=s.reward_max_epochs,
            target_agreement=s.target_agreement, seed=s.seed, device=self.device)
        # what SAC is paid: r̂ itself, or its ensemble's pessimistic bound
        self.paid: RewardFunction = self.learner.reward if s.reward_pessimism == 0 else \
            PessimisticReward(self.learner.reward, s.reward_pessimism)
        self.rng = stream(s.seed, Stream.QUERIES)
        self.teacher_rng = stream(s.seed, Stream.ONLINE_TEACHER)
        self.env: VecEnv = make_vec_env(s.task, self.paid, n_envs=s.sac.n_envs, seed=s.seed,
                                        episode_steps=s.episode_steps,
                                        wrap=lambda env: EpisodeLog(env, self.store))
        if s.reward_normalize:
            self.env = scale_rewards(self.env, s.sac.gamma)
        self.inputs: dict[str, torch.Tensor] = {}
        checkpoint = find_checkpoint(self.workdir)
        if checkpoint is None:
            self.model = make_sac(self.env, s.sac, seed=s.seed, total_steps=s.steps,
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
            s.task, every=s.eval_every, episodes=s.eval_episodes, seed=s.seed,
            csv_path=self.workdir / "eval.csv", episode_steps=s.episode_steps,
            extra=lambda: {"labels": len(self.state.labels)},
            first=(done // s.eval_every + 1) * s.eval_every if s.eval_every > 0 else None)
        if bar is not None and done:
            bar.advance(done, 0)
        stats = train(self.model, s.steps - done, out=self.workdir, evaluation=evaluation,
                      checkpoint_every=0, bar=bar,
                      extra_callbacks=(RoundCallback(self, evaluation),), resume=done > 0)
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
        queries = next_queries(self.store.episode, candidates, count=count,
                               length=s.segment_length,
                               strategy="uniform" if first else s.strategy,
                               model=self.learner.model, pool_factor=s.pool_factor,
                               rng=self.rng)
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
                                            queries.take(np.flatnonzero(answered)),
                                            self.learner.model.window, self.device),
                                labels[answered])
            fit = self.learner.fit({c: v for c, v in self.inputs.items() if c != "label"},
                                   self.inputs["label"])
        relabel_replay_buffer(self.buffer, self.paid)
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
        self.state.reward_scale = reward_scale_state(self.env)
        save_checkpoint(self.workdir, model=self.model, learner=self.learner, state=self.state)

    def _restore(self, checkpoint: Path) -> None:
        self.state, self.model = load_checkpoint(checkpoint, learner=self.learner,
                                                 env=self.env, device=self.device)
        restore_reward_scale(self.env, self.state.reward_scale)
        self.rng.bit_generator.state = self.state.rng
        self.teacher_rng.bit_generator.state = self.state.teacher_rng
        self.store.restore(self.state.next_episode)
        labels = self.state.labels
        answered = labels.answered()
        if len(answered):
            episode = cache(self.store.episode)
            self._append_inputs(pair_inputs(episode, labels.queries(answered,
                                                                    self.s.segment_length),
                                            self.learner.model.window, self.device),
                                np.asarray(labels.label, np.float64)[answered])


class RoundCallback(BaseCallback):
    """Calls the run's ``tick`` when its time comes, at the end of a rollout: SB3 stores a
    step's transition after the step's callbacks, so a round run there would relabel the
    buffer without that transition, which would keep the r̂ of before the round."""

    def __init__(self, run: OnlineRun, evaluation: BaseCallback) -> None:
        super().__init__()
        self.tick: Callable[[BaseCallback], None] = run.tick
        self.state, self.evaluation = run.state, evaluation

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.state.next_tick:
            self.tick(self.evaluation)
