"""Train a SAC policy on a learned reward, the true reward or a prior, and evaluate it.

`reward=` is a reward run directory or artifact, `true` (the task's own reward) or
`prior:<name>`. `recipe=` picks the SAC settings (default `sac_metaworld`, PEBBLE's;
`sac_cpu` smaller), `sac=cpu` (an option of recipes/sac/) the SAC settings alone;
every key stays overridable (`sac.batch_size=64`, `sac.n_envs=4`). The run directory
`out` appears when training is done and holds `config.yaml`, `progress.csv` (the
training log), `eval.csv` (success rate and true return of deterministic evaluation
episodes every `eval_every` steps), `checkpoints/`, `summary.json` and `policy.zip`,
which `rrm-data collect policy=[sac:RUN_DIR,...]` rolls out. SAC runs on sbx (JAX).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

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
from rrm_data.io import Kind, atomic_directory, check_out, write_json
from rrm_data.progress import console, progress
from rrm_data.recipes import load_recipe, split_groups
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.resolve import check_reward_tasks, resolve_reward, reward_ref
from rrm_data.rl.sac import (
    EvaluationCallback,
    SacSettings,
    check_reward_fits,
    check_sac,
    make_sac,
    make_vec_env,
    sac_device,
    train,
)
from rrm_data.sim.envs import check_task
from rrm_data.sim.policies import POLICY_FILE


@dataclass
class Config:
    task: str = field(default="button-press-v3", metadata=doc("Meta-World v3 task name"))
    reward: str = field(default="true", metadata=doc("reward run dir or artifact, true, or "
                                                       "prior:<name>"))
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
    if cfg.out is None:
        label = Path(str(cfg.reward).rstrip("/")).name.replace(":", "-")
        cfg.out = f"runs/sac-{cfg.task}-{label}-seed{cfg.seed}"
    return cfg


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    check_out(out, Kind.SAC_RUN, cfg.overwrite, inputs={"reward": cfg.reward})
    reward = resolve_reward(cfg.reward)
    settings = SacSettings(**config_dict(cfg.sac))
    env = make_vec_env(cfg.task, reward, settings.n_envs, cfg.seed, cfg.episode_steps)
    check_reward_fits(reward, env, cfg.task)
    torch.set_num_threads(cfg.threads)

    try:
        with atomic_directory(out, Kind.SAC_RUN, cfg.overwrite) as tmp:
            final = _train(cfg, tmp, env, settings, reward)
    finally:
        env.close()
    console.print(f"wrote {out}: success rate {final['success_rate']:.2f}, true return "
                  f"{final['true_return']:.1f} over {cfg.eval_episodes} episodes")


def _train(cfg: DictConfig, tmp: Path, env: VecEnv, settings: SacSettings,
           reward: RewardFunction) -> dict[str, float]:
    """Train, evaluate and save one run into ``tmp``; return the final evaluation."""
    (tmp / "config.yaml").write_text(to_yaml(cfg))
    model = make_sac(env, settings, cfg.seed, cfg.steps)
    evaluation = EvaluationCallback(cfg.task, cfg.eval_every, cfg.eval_episodes, cfg.seed,
                                    tmp / "eval.csv", cfg.episode_steps)
    started = time.perf_counter()
    with progress("train-sac", total=cfg.steps, unit="steps", extra_unit="episodes") as bar:
        stats = train(model, cfg.steps, tmp, evaluation, cfg.checkpoint_every, bar)
    seconds = time.perf_counter() - started
    model.save(tmp / POLICY_FILE)
    final = evaluation.rows[-1]
    write_json(tmp / "summary.json", {
        "task": cfg.task, "reward": reward.name, "steps": int(model.num_timesteps),
        "seed": cfg.seed, "final": final, "seconds": round(seconds, 2),
        "device": sac_device(), "learning_starts": settings.learning_starts,
        # Steady state: env steps/s once learning runs (after learning_starts), evaluation
        # time left out; the warm-up (random actions, no updates) is reported apart.
        **stats.speeds(evaluation.seconds),
        "evaluation_seconds": round(evaluation.seconds, 2)})
    return final


__all__ = ["Config", "make_config", "run"]
