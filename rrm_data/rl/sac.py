"""Soft Actor-Critic on a reward function, with PEBBLE's settings, on sbx (JAX).

The engine is sbx (``sbx-rl``: SB3's algorithms in JAX, by SB3's maintainers), chosen by
measurement: on one core, ``sac_cpu`` settings, it steps about 1.7x faster than SB3's
PyTorch SAC (``benchmarks/sac.py``). Its SAC is an SB3 ``OffPolicyAlgorithm``, so SB3's
vector environments, replay buffers, callbacks, loggers and save/load carry over. JAX is
imported at first use (``make_sac``, ``load_sac``), never with the library. The agent
learns from r̂ in vectorized environments; what is reported is what really
happened: periodic deterministic evaluations measure success rate (an episode succeeds
if ``info["success"]`` is ever set) and the task's true return on fixed evaluation
episodes, so runs on different rewards compare on the same scale.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from rrm_data.config import COUNT, DISCOUNT, NON_NEGATIVE, POSITIVE, doc
from rrm_data.dataset.observation import HAND
from rrm_data.errors import RrmError
from rrm_data.io import remove_owned, replaced_directory, write_json
from rrm_data.labels.motion import MIN_JERK_STEPS, mean_squared_jerk
from rrm_data.progress import Bar
from rrm_data.reward.base import RewardFunction
from rrm_data.rl.workdir import CHECKPOINT
from rrm_data.rl.wrapper import TRUE_REWARD, VecRewardWrapper, task_env
from rrm_data.triton_apart import load_triton_apart

if TYPE_CHECKING:
    from sbx import SAC

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share seeds with training envs
LOGS = ("eval.csv", "progress.csv")  # appended to while training, kept with each checkpoint


@dataclass
class SacSettings:
    """SAC settings (SB3's names, run by sbx). The defaults are PEBBLE's (B-Pref's
    Meta-World config), written only here: recipes name them as ``sac: pebble`` and other
    options of ``recipes/sac/`` write only what they change. ``check_sac`` refuses what sbx
    cannot honour."""

    learning_rate: float = field(default=3e-4, metadata=doc("Adam step size, all nets", POSITIVE))
    batch_size: int = field(default=512, metadata=doc("transitions per gradient step", COUNT))
    net_arch: list[int] = field(default_factory=lambda: [256, 256, 256], metadata=doc(
        "hidden sizes of actor and critics", COUNT))
    learning_starts: int = field(default=1000, metadata=doc(
        "random steps before learning", NON_NEGATIVE))
    train_freq: int = field(default=1, metadata=doc("env steps between updates", COUNT))
    gradient_steps: int = field(default=1, metadata=doc("gradient steps per update", COUNT))
    buffer_size: int = field(default=1_000_000, metadata=doc(
        "replay capacity (at most the run's steps)", COUNT))
    gamma: float = field(default=0.99, metadata=doc("discount", DISCOUNT))
    tau: float = field(default=0.005, metadata=doc("target network update rate", DISCOUNT))
    ent_coef: str = field(default="auto_0.1", metadata={"help": "entropy coefficient: auto, "
                                                        "auto_<init> or a number"})
    target_update_interval: int = field(default=2, metadata=doc(
        "gradient steps between target updates within one update (SB3's meaning: any value "
        "updates every step when gradient_steps=1; sbx takes >1 only then)", COUNT))
    n_envs: int = field(default=1, metadata=doc("environments stepped together", COUNT))
    device: str = field(default="auto", metadata={"help": "device of the networks: auto "
                                                  "(CUDA when present), cpu, cuda, cuda:N; SAC "
                                                  "runs on JAX's default device, which must "
                                                  "match (JAX_PLATFORMS=cpu forces the CPU)"})


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; other names are checked."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise RrmError(f"sac.device must be auto, cpu or cuda[:N], got '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RrmError(f"sac.device={name} but no CUDA device is visible; use auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise RrmError(f"sac.device must be auto, cpu or cuda[:N], got '{name}'")
    return str(device)


def make_vec_env(task: str, reward: RewardFunction, n_envs: int, seed: int,
                 episode_steps: int | None = None,
                 wrap: Callable[[gym.Env], gym.Env] | None = None) -> VecEnv:
    """``n_envs`` task environments (seeds seed, seed+1, …) rewarded by r̂ in one batch;
    ``wrap`` wraps each one first (the online loop records episodes there)."""
    def make(i: int) -> gym.Env:
        env = task_env(task, seed + i, episode_steps)
        return env if wrap is None else wrap(env)

    venv = DummyVecEnv([partial(make, i) for i in range(n_envs)])
    venv.seed(seed)
    return VecRewardWrapper(venv, reward)


def scale_rewards(env: VecEnv, gamma: float) -> VecNormalize:
    """``env`` with SAC trained on r̂ divided by the running std of its discounted return
    (SB3's ``VecNormalize`` with ``norm_reward``: no mean removed, clipped at ±10). The
    replay buffer keeps the raw r̂ and each sampled batch is scaled with the statistics of
    the moment, so the scale follows the policy's own returns."""
    return VecNormalize(env, norm_obs=False, norm_reward=True, gamma=gamma)


def reward_scale_state(env: VecEnv) -> dict[str, Any]:
    """The running statistics of ``scale_rewards`` (empty for an unscaled env), for a
    checkpoint's state.json."""
    if not isinstance(env, VecNormalize):
        return {}
    rms = env.ret_rms
    return {"reward_scale": {"mean": float(rms.mean), "var": float(rms.var),
                             "count": float(rms.count)}}


def restore_reward_scale(env: VecEnv, state: Mapping[str, Any]) -> None:
    """Put back the statistics ``reward_scale_state`` saved (the returns of the episodes cut
    by the interruption start again at 0, as the environments do)."""
    if isinstance(env, VecNormalize):
        saved = state["reward_scale"]
        rms = RunningMeanStd(shape=())
        rms.mean, rms.var = np.asarray(saved["mean"]), np.asarray(saved["var"])
        rms.count = float(saved["count"])
        env.ret_rms = rms


def check_reward_fits(reward: RewardFunction, env: VecEnv, task: str) -> None:
    """Score one real step through the rewarded environments (frames included, rendered as
    the reward's training data was), so a reward for other observations fails up front."""
    action_shape = env.action_space.shape
    assert action_shape is not None  # a Box space
    env.reset()
    try:
        env.step(np.zeros((env.num_envs, *action_shape), np.float32))
    except RrmError as exc:
        raise RrmError(f"reward {reward.name} does not fit task {task}: {exc}") from None


def entropy_coefficient(text: str) -> str | float:
    """SB3's ``ent_coef``: ``auto``, ``auto_<initial value>`` (learned) or a fixed number."""
    if str(text).startswith("auto"):
        return str(text)
    try:
        return float(text)
    except ValueError:
        raise RrmError(f"sac.ent_coef must be auto, auto_<init> or a number, got '{text}'") \
            from None


def check_sac(settings: SacSettings) -> None:
    """Refuse, in one line each, the settings the engine (sbx) cannot honour."""
    entropy_coefficient(settings.ent_coef)
    if settings.target_update_interval > 1 and settings.gradient_steps > 1:
        raise RrmError(f"sac.target_update_interval={settings.target_update_interval} with "
                       f"sac.gradient_steps={settings.gradient_steps}: sbx updates the targets "
                       "after every gradient step; set target_update_interval=1")
    wanted = resolve_device(settings.device)
    if settings.device == "auto":  # JAX is imported only to compare a named device
        return
    engine = sac_device()
    if torch.device(wanted).type != torch.device(engine).type:
        raise RrmError(f"sac.device={settings.device}, but JAX (the SAC engine) runs on "
                       f"{engine}; use sac.device=auto, or JAX_PLATFORMS=cpu for the CPU")


def sac_device() -> str:
    """JAX's default device, where sbx puts SAC's networks, as torch names it (cpu, cuda:N)."""
    import jax

    device = jax.devices()[0]
    return "cpu" if device.platform == "cpu" else f"cuda:{device.id}"


def make_sac(env: VecEnv, settings: SacSettings, seed: int, total_steps: int,
             replay_buffer_class: type[ReplayBuffer] | None = None,
             replay_buffer_kwargs: dict[str, Any] | None = None) -> SAC:
    """sbx's SAC with ``settings``; SB3's ``target_update_interval`` is left out because
    ``check_sac`` admits it only where SB3 too updates the targets every gradient step."""
    load_triton_apart()  # before JAX compiles: Triton loaded after that crashes beside OSMesa
    from sbx import SAC  # JAX at first use: importing rrm_data changes no process state

    check_sac(settings)
    return SAC(
        "MlpPolicy", env, learning_rate=settings.learning_rate,
        replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
        buffer_size=max(1, min(settings.buffer_size, total_steps)),
        learning_starts=settings.learning_starts, batch_size=settings.batch_size,
        tau=settings.tau, gamma=settings.gamma, train_freq=settings.train_freq,
        gradient_steps=settings.gradient_steps, ent_coef=entropy_coefficient(settings.ent_coef),
        policy_kwargs={"net_arch": list(settings.net_arch)}, seed=seed)


def load_sac(path: Path, env: VecEnv | None = None) -> SAC:
    """A SAC that a ``make_sac`` model saved (a checkpoint or ``policy.zip``), on JAX's
    device; ``env`` to continue training it."""
    load_triton_apart()  # as in make_sac
    from sbx import SAC

    return SAC.load(path, env=env)


def reset_critic(model: SAC) -> None:
    """Fresh critics (and targets, and optimizer state) after unsupervised pre-training, as
    PEBBLE does: values learned for the entropy reward would mislead the new reward."""
    import jax
    from sbx.common.type_aliases import RLTrainState

    policy = model.policy
    model.key, params_key, dropout_key = jax.random.split(model.key, 3)
    obs = np.zeros((1, *(policy.observation_space.shape or ())), np.float32)
    action = np.zeros((1, *policy.action_space.shape), np.float32)
    params = policy.qf.init({"params": params_key, "dropout": dropout_key}, obs, action)
    policy.qf_state = RLTrainState.create(apply_fn=policy.qf_state.apply_fn, params=params,
                                          target_params=params, tx=policy.qf_state.tx)


class Predictor(Protocol):
    """What ``evaluate`` acts with: SB3's ``predict`` (SAC, or train-offline's policy)."""

    def predict(self, obs: np.ndarray, *, deterministic: bool = ...
                ) -> tuple[np.ndarray, Any]: ...


def evaluate(model: Predictor, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic episodes on the true reward, episode k reset with seed ``seed + k``:
    success, true return, length, and how the hand moved (``labels.motion``'s mean squared
    jerk over each whole episode, the ``smooth`` teacher's criterion), so a reward learned
    from motion labels can be judged by the motion of its policy."""
    returns, successes, lengths, jerks = [], [], [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        hand = [np.asarray(obs)[HAND]]
        total, success, length, done = 0.0, False, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            hand.append(np.asarray(obs)[HAND])
            total += float(reward)
            success = success or bool(info["success"])
            length += 1
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
        lengths.append(length)
        if len(hand) >= MIN_JERK_STEPS:
            jerks.append(float(mean_squared_jerk(np.asarray(hand, np.float64)[None])[0]))
    return {"success_rate": float(np.mean(successes)), "true_return": float(np.mean(returns)),
            "true_return_std": float(np.std(returns)), "episode_length": float(np.mean(lengths)),
            "mean_squared_jerk": float(np.mean(jerks)) if jerks else float("nan")}


class EvaluationCallback(BaseCallback):
    """Every ``every`` env steps (and at the end), evaluate and append a row to ``eval.csv``.

    ``extra`` adds columns to each row (the online loop adds the labels used so far);
    ``seconds`` is the wall time spent evaluating, which speed figures leave out.
    """

    def __init__(self, task: str, every: int, episodes: int, seed: int, csv_path: Path,
                 episode_steps: int | None = None,
                 extra: Callable[[], dict[str, float]] | None = None,
                 first: int | None = None) -> None:
        super().__init__()
        self.every, self.episodes = every, episodes
        self.seed = seed + EVAL_SEED_OFFSET
        self.env = task_env(task, self.seed, episode_steps)
        self.csv_path = csv_path
        self.extra = extra
        self.rows: list[dict[str, float]] = []
        self.seconds = 0.0
        self._next = every if first is None else first

    def _on_step(self) -> bool:
        if self.every > 0 and self.num_timesteps >= self._next:
            self._next += self.every
            self.run()
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["timesteps"] != self.num_timesteps:
            self.run()

    def run(self) -> dict[str, float]:
        started = time.perf_counter()
        row = {"timesteps": self.num_timesteps, **(self.extra() if self.extra else {}),
               **evaluate(self.model, self.env, self.episodes, self.seed)}
        self.rows.append(row)
        for key, value in row.items():
            if key != "timesteps":
                self.logger.record(f"eval/{key}", value)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.seconds += time.perf_counter() - started
        return row


class TrainingStats(BaseCallback):
    """Advances the progress bar; logs the learned-reward return next to the true return and
    the success of training episodes; times the steady state (after ``learning_starts``)."""

    def __init__(self, bar: Bar | None = None) -> None:
        super().__init__()
        self.bar = bar
        self._true_return: np.ndarray | None = None
        self._learned_return: np.ndarray | None = None
        self._success: np.ndarray | None = None
        self._scaled: VecNormalize | None = None
        self.steady_from: tuple[int, float] | None = None  # (num_timesteps, perf_counter)
        self.started: tuple[int, float] | None = None
        self.learning_starts = 0

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self._true_return, self._success = np.zeros(n), np.zeros(n, bool)
        self._learned_return = np.zeros(n)
        self._scaled = self.model.get_vec_normalize_env()  # then r̂ is logged unscaled
        self.started = (self.num_timesteps, time.perf_counter())
        if isinstance(self.model, OffPolicyAlgorithm):  # SAC: random steps, then learning
            self.learning_starts = self.model.learning_starts

    def _on_step(self) -> bool:
        infos: list[Mapping[str, Any]] = self.locals["infos"]
        dones: np.ndarray = self.locals["dones"]
        assert self._true_return is not None and self._learned_return is not None  # started
        assert self._success is not None
        self._true_return += [info[TRUE_REWARD] for info in infos]
        rewards = (self.locals["rewards"] if self._scaled is None
                   else self._scaled.get_original_reward())
        self._learned_return += np.asarray(rewards, dtype=np.float64)
        self._success |= [bool(info.get("success", False)) for info in infos]
        for i in np.flatnonzero(dones):
            self.logger.record_mean("rollout/true_return", float(self._true_return[i]))
            self.logger.record_mean("rollout/learned_return", float(self._learned_return[i]))
            self.logger.record_mean("rollout/success_rate", float(self._success[i]))
            self._true_return[i], self._learned_return[i], self._success[i] = 0.0, 0.0, False
        if self.steady_from is None and self.num_timesteps >= self.learning_starts:
            self.steady_from = (self.num_timesteps, time.perf_counter())
        if self.bar is not None:
            self.bar.advance(len(dones), int(dones.sum()))
        return True

    def speeds(self, excluded_seconds: float = 0.0) -> dict[str, float | None]:
        """Env steps/s of the warm-up (random steps) and of the steady state (learning), the
        latter leaving out ``excluded_seconds`` (evaluation) spent in it."""
        now = time.perf_counter()

        def rate(start: tuple[int, float] | None, end: tuple[int, float], skip: float = 0.0
                 ) -> float | None:
            if start is None or end[0] <= start[0]:
                return None
            return round((end[0] - start[0]) / max(end[1] - start[1] - skip, 1e-9), 2)

        end = (self.num_timesteps, now)
        return {"warmup_steps_per_s": rate(self.started, self.steady_from or end),
                "steady_steps_per_s": rate(self.steady_from, end, excluded_seconds)}


class AppendingCSV(CSVOutputFormat):
    """SB3's ``progress.csv`` writer continuing an existing file (SB3's own truncates it):
    a resumed run keeps the rows logged before its checkpoint."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            super().__init__(str(path))
            return
        self.file = path.open("r+")  # not "a": SB3 rewrites the header when keys are added
        self.keys = [k for k in self.file.readline().rstrip("\n").split(",") if k]
        self.file.seek(0, 2)
        self.separator, self.quotechar = ",", '"'


def train(model: OffPolicyAlgorithm, steps: int, out: Path, evaluation: EvaluationCallback,
          checkpoint_every: int, bar: Bar | None = None,
          extra_callbacks: tuple[BaseCallback, ...] = (), resume: bool = False,
          run_state: Callable[[], dict[str, Any]] | None = None) -> TrainingStats:
    """Learn for ``steps`` more env steps, logging CSV to ``out`` and checkpointing there
    (policy snapshots in ``checkpoints/``; with ``run_state``, also the resumable
    ``checkpoint/`` that ``load_sac_run`` restores, holding what ``run_state`` returns);
    returns the stats callback (speeds). ``resume`` continues a loaded model's count."""
    model.set_logger(Logger(str(out), [AppendingCSV(out / "progress.csv")]) if resume
                     else configure(str(out), ["csv"]))
    stats = TrainingStats(bar)
    callbacks: list[BaseCallback] = [stats, *extra_callbacks, evaluation]
    if checkpoint_every > 0:
        every = max(checkpoint_every // model.n_envs, 1)
        callbacks.append(CheckpointCallback(every, str(out / "checkpoints"), name_prefix="sac"))
        if run_state is not None:
            callbacks.append(ResumePoint(every, out, run_state))
    model.learn(total_timesteps=steps, callback=callbacks, log_interval=1,
                reset_num_timesteps=not resume)
    return stats


# --- resumable runs ---------------------------------------------------------------------


def save_sac_run(workdir: Path, model: OffPolicyAlgorithm, state: dict[str, Any],
                 extra: Callable[[Path], None] | None = None) -> None:
    """Replace ``workdir/checkpoint`` in one step: SAC and its replay buffer, ``state`` (JSON,
    with the env steps done as ``timesteps``), the logs so far, and what ``extra`` writes
    into the folder. train-online and train-sac both checkpoint this way."""
    with replaced_directory(workdir / CHECKPOINT) as tmp:
        model.save(tmp / "sac.zip")
        model.save_replay_buffer(tmp / "replay.pkl")
        if extra is not None:
            extra(tmp)
        write_json(tmp / "state.json", {**state, "timesteps": int(model.num_timesteps)})
        for log in LOGS:
            if (workdir / log).exists():
                shutil.copy(workdir / log, tmp / log)


def load_sac_run(checkpoint: Path, env: VecEnv) -> tuple[dict[str, Any], SAC]:
    """The saved state and SAC (with its buffer) of a ``save_sac_run`` checkpoint; the logs in
    the run folder become those of the checkpoint (the resumed run appends to them)."""
    saved = json.loads((checkpoint / "state.json").read_text())
    model = load_sac(checkpoint / "sac.zip", env)
    model.load_replay_buffer(checkpoint / "replay.pkl")
    # SB3 saves the last observation of the killed run's environments; these are new
    # ones, so let learn() reset them (and the episode log with them).
    model._last_obs = None
    workdir = checkpoint.parent
    for log in LOGS:
        remove_owned(workdir / log)
        if (checkpoint / log).exists():
            shutil.copy(checkpoint / log, workdir / log)
    return saved, model


class ResumePoint(BaseCallback):
    """Every ``every`` calls (SB3's checkpoint cadence, so a resumed run keeps it), after the
    evaluation and snapshot of that step: ``save_sac_run`` into ``workdir``."""

    def __init__(self, every: int, workdir: Path, state: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self.every, self.workdir, self.state = every, workdir, state

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            assert isinstance(self.model, OffPolicyAlgorithm)  # has a replay buffer
            save_sac_run(self.workdir, self.model, self.state())
        return True
