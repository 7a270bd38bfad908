"""Train a SAC policy on a learned reward, the true reward or a prior, and evaluate it.

`reward=` is a reward run directory or artifact, `true` (the task's own reward) or
`prior:<name>`; `reward_pessimism=κ` pays mean − κ·std over a learned reward's ensemble
members instead of their mean (ensemble pessimism); `reward_normalize=true` trains on r̂
divided by the running std of its discounted return (SB3's VecNormalize). `recipe=` picks
the SAC settings (default `sac_metaworld`, PEBBLE's; `sac_cpu` smaller), `sac=cpu` (an
option of recipes/sac/) the SAC settings alone; every key stays overridable
(`sac.batch_size=64`, `sac.n_envs=4`). The run directory `out` appears when training is done
and holds `config.yaml`, `progress.csv` (the training log), `eval.csv` (success rate and
true return of deterministic evaluation episodes every `eval_every` steps), `checkpoints/`,
`summary.json` and `policy.zip`, which `rrm-data collect policy=[sac:RUN_DIR,...]` rolls
out. SAC runs on sbx (JAX). While it trains, the run lives in a work folder `.<out>.sac`
next to `out`; an interrupted run (even kill -9) resumes from its last checkpoint
(`checkpoint_every`) when the same command is run again (`threads` may differ).
`record_out=PATH` records every finished training episode with physics state and writes
them, segmented, paired and labelled by `record.teachers`, as an rrm-data/1 dataset at PATH
("medium-replay"); each episode's policy names the training step range it started in
(`sac-train:<from>-<to>`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from stable_baselines3.common.vec_env import VecEnv

from rrm_data.config import (
    COUNT,
    NON_NEGATIVE,
    SEED32,
    THREADS,
    build_config,
    config_dict,
    doc,
    merge_configs,
    parse_overrides,
    to_yaml,
)
from rrm_data.io import Kind, atomic_directory, check_out, output_lock, remove_owned, write_json
from rrm_data.progress import console, progress
from rrm_data.recipes import load_recipe, split_groups
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.pessimism import PessimisticReward
from rrm_data.reward.resolve import check_reward_tasks, resolve_reward, reward_ref
from rrm_data.rl.replay import ReplayRecorder, ReplaySettings, check_replay
from rrm_data.rl.sac import (
    LOGS,
    EvaluationCallback,
    SacSettings,
    check_reward_fits,
    check_sac,
    load_sac_run,
    make_sac,
    make_vec_env,
    restore_reward_scale,
    reward_scale_state,
    sac_device,
    scale_rewards,
    train,
)
from rrm_data.rl.workdir import find_checkpoint, prepare_workdir
from rrm_data.sim.envs import check_task
from rrm_data.sim.policies import POLICY_FILE


@dataclass
class Config:
    task: str = field(default="button-press-v3", metadata=doc("Meta-World v3 task name"))
    reward: str = field(default="true", metadata=doc("reward run dir or artifact, true, or "
                                                       "prior:<name>"))
    reward_pessimism: float = field(default=0.0, metadata=doc(
        "κ: reward SAC with mean − κ·std over the learned reward's ensemble (0: the mean)",
        NON_NEGATIVE))
    reward_normalize: bool = field(default=False, metadata=doc(
        "train on r̂ divided by the running std of its discounted return (SB3's VecNormalize)"))
    steps: int = field(default=100_000, metadata=doc("environment steps of training", COUNT))
    seed: int = field(default=0, metadata=doc(
        "seed of environments, networks and sampling", SEED32))
    recipe: str = field(default="sac_metaworld", metadata=doc("SAC recipe name or YAML path"))
    sac: SacSettings = field(default_factory=SacSettings, metadata=doc(
        "SAC settings (sbx, SB3's names)"))
    eval_every: int = field(default=10_000, metadata=doc(
        "env steps between evaluations (0: only at the end)", NON_NEGATIVE))
    eval_episodes: int = field(default=10, metadata=doc(
        "deterministic episodes per evaluation", COUNT))
    episode_steps: int | None = field(default=None, metadata=doc(
        "cut episodes shorter than Meta-World's 500 steps", COUNT))
    checkpoint_every: int = field(default=50_000, metadata=doc(
        "env steps between checkpoints (0: none)", NON_NEGATIVE))
    threads: int = field(default=1, metadata=doc("torch CPU threads", THREADS))
    out: str | None = field(default=None, metadata=doc(
        "run directory (default runs/sac-<task>-<reward>-seed<seed>)"))
    overwrite: bool = field(default=False, metadata=doc("replace an existing run at out"))
    allow_other_task: bool = field(default=False, metadata=doc(
        "use a reward trained on another task than task="))
    record_out: str | None = field(default=None, metadata=doc(
        "record every training episode as a labelled dataset here (medium-replay)"))
    record: ReplaySettings = field(default_factory=ReplaySettings, metadata=doc(
        "labelling of the recorded episodes (collect's keys) and step ranges"))


# Keys that do not change a run's result: a checkpoint resumes whatever they say.
NOT_IDENTITY = ("threads", "out", "overwrite")
ON_INTERRUPT = "interrupted; run the same command again to resume from the last checkpoint"


def make_config(overrides: list[str]) -> DictConfig:
    """Defaults, then the recipe's YAML composed with the chosen groups, then the
    command-line overrides."""
    groups, overrides = split_groups(overrides)
    extra = parse_overrides(overrides)
    if "reward" in extra:
        extra.reward = reward_ref(extra.reward)
    recipe_name = str(extra.get("recipe", Config.recipe))
    recipe = load_recipe(recipe_name, "sac", groups)
    cfg = build_config(Config(), merge_configs(recipe, extra))
    cfg.recipe = recipe_name
    check_task(cfg.task)
    check_reward_tasks([cfg.reward], [cfg.task], cfg.allow_other_task)
    check_sac(SacSettings(**config_dict(cfg.sac)))
    if cfg.record_out is not None:
        check_replay(ReplaySettings(**config_dict(cfg.record)), cfg.seed, cfg.steps,
                     cfg.sac.n_envs, cfg.episode_steps)
    if cfg.out is None:
        label = Path(str(cfg.reward).rstrip("/")).name.replace(":", "-")
        cfg.out = f"runs/sac-{cfg.task}-{label}-seed{cfg.seed}"
    return cfg


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    record_out = None if cfg.record_out is None else Path(cfg.record_out)
    check_out(out, Kind.SAC_RUN, cfg.overwrite, inputs={"reward": cfg.reward})
    if record_out is not None:
        check_out(record_out, Kind.DATASET, cfg.overwrite, option="record_out",
                  inputs={"reward": cfg.reward, "out": cfg.out})
    reward = resolve_reward(cfg.reward)
    if cfg.reward_pessimism > 0:
        reward = PessimisticReward(reward, cfg.reward_pessimism)
    settings = SacSettings(**config_dict(cfg.sac))
    with output_lock(out):
        workdir = prepare_workdir(out, cfg, NOT_IDENTITY, cfg.overwrite, suffix="sac")
        recorder = None if record_out is None else ReplayRecorder(
            workdir, cfg.task, cfg.seed, cfg.steps, ReplaySettings(**config_dict(cfg.record)))
        env = make_vec_env(cfg.task, reward, settings.n_envs, cfg.seed, cfg.episode_steps,
                           wrap=None if recorder is None else recorder.wrap)
        try:
            check_reward_fits(reward, env, cfg.task)
            if cfg.reward_normalize:  # after the check, whose step is no training step
                env = scale_rewards(env, settings.gamma)
            torch.set_num_threads(cfg.threads)
            final = _train(cfg, out, workdir, env, settings, reward, recorder)
        except BaseException:
            if find_checkpoint(workdir) is None:  # nothing to resume: leave nothing
                remove_owned(workdir)
            raise
        finally:
            env.close()
        remove_owned(workdir)
    console.print(f"wrote {out}: success rate {final['success_rate']:.2f}, true return "
                  f"{final['true_return']:.1f} over {cfg.eval_episodes} episodes")


def _train(cfg: DictConfig, out: Path, workdir: Path, env: VecEnv, settings: SacSettings,
           reward: RewardFunction, recorder: ReplayRecorder | None) -> dict[str, float]:
    """Train in ``workdir`` (from its checkpoint if any), write the recorded dataset, then
    ``out``; return the final evaluation."""
    checkpoint = find_checkpoint(workdir)
    if checkpoint is None:
        model = make_sac(env, settings, cfg.seed, cfg.steps)
        state: dict[str, Any] = {"resumed_from": []}
        for stale in (*LOGS, "checkpoints"):  # of a run killed before its first checkpoint
            remove_owned(workdir / stale)
    else:
        state, model = load_sac_run(checkpoint, env)
        restore_reward_scale(env, state)
        state["resumed_from"].append(state.pop("timesteps"))
        console.print(f"resuming {out} from step {model.num_timesteps}")
    done = int(model.num_timesteps)
    if recorder is not None:
        recorder.start(model, state.get("next_episode", 0))
    evaluation = EvaluationCallback(
        cfg.task, cfg.eval_every, cfg.eval_episodes, cfg.seed, workdir / "eval.csv",
        cfg.episode_steps,
        first=(done // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every > 0 else None)

    def run_state() -> dict[str, Any]:
        return {**state, **(recorder.state() if recorder is not None else {}),
                **reward_scale_state(env)}

    started = time.perf_counter()
    with progress("train-sac", total=cfg.steps, unit="steps", extra_unit="episodes") as bar:
        bar.advance(done, 0)
        stats = train(model, cfg.steps - done, workdir, evaluation, cfg.checkpoint_every, bar,
                      resume=done > 0, run_state=run_state)
    seconds = time.perf_counter() - started
    if recorder is not None:
        settings_record = {k: v for k, v in config_dict(cfg).items()
                           if k not in (*NOT_IDENTITY, "record_out")}
        recorder.write(Path(cfg.record_out), {"command": "train-sac", "output_option": "record_out",
                                               **settings_record})
    with atomic_directory(out, Kind.SAC_RUN, cfg.overwrite) as tmp:
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        for name in (*LOGS, "checkpoints"):
            if (workdir / name).exists():
                (workdir / name).rename(tmp / name)
        model.save(tmp / POLICY_FILE)
        final = evaluation.rows[-1]
        write_json(tmp / "summary.json", {
            "task": cfg.task, "reward": reward.name, "steps": int(model.num_timesteps),
            "seed": cfg.seed, "final": final, "seconds": round(seconds, 2),
            "device": sac_device(), "learning_starts": settings.learning_starts,
            "resumed_from": state["resumed_from"],
            # Steady state: env steps/s once learning runs (after learning_starts), evaluation
            # time left out; the warm-up (random actions, no updates) is reported apart.
            **stats.speeds(evaluation.seconds),
            "evaluation_seconds": round(evaluation.seconds, 2)})
    return final


__all__ = ["Config", "make_config", "run"]
