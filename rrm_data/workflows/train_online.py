"""Online preference-based RL: SAC on r̂ while a teacher labels what SAC did (PEBBLE, RRM).

`recipe=rrm` (default) learns a residual reward r̂ = w · r0 + tanh(f) on a fixed prior
with no pre-training, as the RRM paper; `recipe=pebble` learns an ensemble from scratch
after PEBBLE's unsupervised state-entropy pre-training. Both run PEBBLE's SAC; `sac=cpu`
(an option of recipes/sac/) swaps in the CPU-sized one, `model=mlp` (recipes/model/)
another reward model (`model=sequence`, `sequence_residual`: r̂_t of the window of k steps
ending at t, as train-reward's). Every key stays overridable (`feedback=500`,
`strategy=disagreement`, `teacher=mistake teacher_params.epsilon=0.2`,
`model.prior_weight=2`, `sac.batch_size=256`). The run directory `out` appears when
training is done and holds `policy.zip` (which `collect policy=sac:OUT` rolls out),
`reward/` (the final reward artifact), `eval.csv` (success rate and true return against
env steps and labels used), `rounds.csv`, `progress.csv`, `feedback/` (every query asked,
an rrm-data/1 dataset), `config.yaml` and `summary.json`. An interrupted run (even
kill -9) resumes from its last checkpoint when the same command is run again (`threads`
may differ; other settings that differ are refused unless `overwrite=true`, which starts
again), its logs appended to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from rrm_data.config import (
    THREADS,
    build_config,
    config_dict,
    doc,
    merge_configs,
    parse_overrides,
)
from rrm_data.io import Kind, atomic_directory, check_out, output_lock, remove_owned
from rrm_data.progress import console, progress
from rrm_data.recipes import load_recipe, split_groups
from rrm_data.rl.online.loop import OnlineRun
from rrm_data.rl.online.outputs import write_outputs
from rrm_data.rl.online.settings import OnlineSettings, check_settings
from rrm_data.rl.workdir import find_checkpoint, prepare_workdir
from rrm_data.sim.envs import check_task

ON_INTERRUPT = "interrupted; run the same command again to resume from the last checkpoint"
# Keys that do not change a run's result: a checkpoint resumes whatever they say.
NOT_IDENTITY = ("threads", "out", "overwrite")


@dataclass
class Config(OnlineSettings):
    recipe: str = field(default="rrm", metadata=doc("online recipe name or YAML path"))
    threads: int = field(default=1, metadata=doc("torch CPU threads", THREADS))
    out: str | None = field(default=None, metadata=doc("run directory (default "
                                                       "runs/online-<recipe>-<task>-seed<seed>)"))
    overwrite: bool = field(default=False, metadata=doc("replace an existing run at out, or "
                                                        "a checkpoint of other settings"))


def make_config(overrides: list[str]) -> DictConfig:
    """Defaults, then the recipe composed with the chosen groups (its ``online:`` keys at top
    level, ``model:``, ``sac:``), then the command-line overrides."""
    groups, overrides = split_groups(overrides)
    extra = parse_overrides(overrides)
    recipe_name = str(extra.get("recipe", Config.recipe))
    recipe = load_recipe(recipe_name, "online", groups)
    rest = [str(k) for k in recipe if k != "online"]  # model:, sac:
    cfg = build_config(Config(), merge_configs(recipe.online, OmegaConf.masked_copy(recipe, rest),
                                               extra))
    cfg.recipe = recipe_name
    check_task(cfg.task)
    check_settings(OnlineSettings.from_config(cfg))
    if cfg.out is None:
        cfg.out = f"runs/online-{Path(recipe_name).stem}-{cfg.task}-seed{cfg.seed}"
    return cfg


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    check_out(out, Kind.ONLINE_RUN, cfg.overwrite)
    with output_lock(out):
        workdir = prepare_workdir(out, cfg, NOT_IDENTITY, cfg.overwrite, suffix="online")
        try:
            final, labels = _train(cfg, out, workdir)
        except BaseException:
            if find_checkpoint(workdir) is None:  # nothing to resume: leave nothing
                remove_owned(workdir)
            raise
        remove_owned(workdir)
    console.print(f"wrote {out}: {labels} labels, success rate "
                  f"{final['success_rate']:.2f}, true return {final['true_return']:.1f}")


def _train(cfg: DictConfig, out: Path, workdir: Path) -> tuple[dict[str, float], int]:
    """Train (from the checkpoint in ``workdir`` if any) and write ``out``; the last
    evaluation and the number of labels."""
    torch.set_num_threads(cfg.threads)
    online = OnlineRun(OnlineSettings.from_config(cfg), workdir)
    resumed = online.model.num_timesteps
    if resumed:
        console.print(f"resuming {out} from step {resumed} "
                      f"({len(online.state.labels)} labels so far)")
    started = time.perf_counter()
    try:
        with progress("train-online", total=cfg.steps, unit="steps",
                      extra_unit="episodes") as bar:
            stats, evaluation = online.learn(bar)
        seconds = time.perf_counter() - started
        with atomic_directory(out, Kind.ONLINE_RUN, cfg.overwrite) as tmp:
            final = write_outputs(
                online, tmp, f"online-{Path(cfg.recipe).stem}",
                {"command": "train-online", "recipe": cfg.recipe},
                {k: v for k, v in config_dict(cfg).items() if k not in NOT_IDENTITY},
                {"seconds": round(seconds, 2), **stats.speeds(evaluation.seconds),
                 "evaluation_seconds": round(evaluation.seconds, 2)})
    finally:
        online.env.close()
    return final, len(online.state.labels)


__all__ = ["Config", "make_config", "run"]
