"""Online preference-based RL: SAC on r̂ while a teacher labels what SAC did (PEBBLE, RRM).

`recipe=rrm` (default) learns a residual reward r̂ = w · r0 + tanh(f) on a fixed prior
with no pre-training, as the RRM paper; `recipe=pebble` learns an ensemble from scratch
after PEBBLE's unsupervised state-entropy pre-training. Every key stays overridable
(`feedback=500`, `sampling=disagreement`, `teacher=mistake teacher_params.epsilon=0.2`,
`model.prior_weight=2`, `sac.batch_size=256`). The run directory `out` appears when
training is done and holds `policy.zip` (which `collect policy=sac:OUT` rolls out),
`reward/` (the final reward artifact), `eval.csv` (success rate and true return against
env steps and labels used), `rounds.csv`, `progress.csv`, `feedback/` (every query asked,
an rrm-data/1 dataset), `config.yaml` and `summary.json`. An interrupted run (even
kill -9) resumes from its last checkpoint when the same command is run again.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rrm_data.config import build_config, parse_overrides, to_yaml
from rrm_data.errors import RrmError
from rrm_data.io import atomic_directory, write_json
from rrm_data.progress import console, progress
from rrm_data.recipes import load_recipe
from rrm_data.reward.artifact import ARTIFACT_DIR, export_reward
from rrm_data.rl.online.feedback import write_feedback
from rrm_data.rl.online.loop import OnlineRun, OnlineSettings, check_settings
from rrm_data.rl.sac import SacSettings
from rrm_data.sim.envs import check_task, env_fps

POLICY_FILE = "policy.zip"


@dataclass
class Config(OnlineSettings):
    recipe: str = field(default="rrm", metadata={"help": "online recipe name or YAML path"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    out: str | None = field(default=None, metadata={"help": "run directory (default "
                                                    "runs/online-<recipe>-<task>-seed<seed>)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing run at out"})


def make_config(overrides: list[str]) -> DictConfig:
    """Defaults, then the recipe (its ``online:`` keys at top level, ``model:``, ``sac:``),
    then the command-line overrides."""
    extra = parse_overrides(overrides)
    recipe_name = str(extra.get("recipe", Config.recipe))
    recipe = load_recipe(recipe_name, "online")
    layered = OmegaConf.merge(recipe.online, {k: v for k, v in recipe.items() if k != "online"})
    cfg = build_config(Config(), OmegaConf.merge(layered, extra))
    cfg.recipe = recipe_name
    check_task(cfg.task)
    if cfg.threads < 1:
        raise RrmError(f"threads must be at least 1, got {cfg.threads}")
    check_settings(settings_of(cfg))
    if cfg.out is None:
        cfg.out = f"runs/online-{Path(recipe_name).stem}-{cfg.task}-seed{cfg.seed}"
    return cfg


def settings_of(cfg: DictConfig) -> OnlineSettings:
    values: dict[str, Any] = {f.name: cfg[f.name] for f in fields(OnlineSettings)}
    values = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
    values["sac"] = SacSettings(**values["sac"])
    return OnlineSettings(**values)


def run(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise RrmError(f"out={out} already exists; choose another out= or pass overwrite=true")
    workdir = prepare_workdir(out, to_yaml(cfg))
    torch.set_num_threads(cfg.threads)
    online = OnlineRun(settings_of(cfg), workdir)
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
        with atomic_directory(out, cfg.overwrite, tag="partial") as tmp:
            final = _write_outputs(cfg, online, tmp, workdir, {
                "seconds": round(seconds, 2), **stats.speeds(evaluation.seconds),
                "evaluation_seconds": round(evaluation.seconds, 2)})
    finally:
        online.env.close()
    shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"wrote {out}: {len(online.state.labels)} labels, success rate "
                  f"{final['success_rate']:.2f}, true return {final['true_return']:.1f}")


def prepare_workdir(out: Path, config_text: str) -> Path:
    """The resumable work folder next to ``out``, reused only for the very same config."""
    workdir = out.with_name(f".{out.name}.online")
    marker = workdir / "config.yaml"
    if workdir.exists() and (not marker.exists() or marker.read_text() != config_text):
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(config_text)
    return workdir


def _write_outputs(cfg: DictConfig, online: OnlineRun, tmp: Path, workdir: Path,
                   timing: dict[str, Any]) -> dict[str, Any]:
    """Policy, reward artifact, feedback dataset, logs and summary into ``tmp``."""
    (tmp / "config.yaml").write_text(to_yaml(cfg))
    online.model.save(tmp / POLICY_FILE)
    log = online.state.labels
    export_reward(online.learner.model, tmp / ARTIFACT_DIR, f"online-{Path(cfg.recipe).stem}",
                  {"command": "train-online", "recipe": cfg.recipe, "task": cfg.task,
                   "labels": len(log), "teacher": cfg.teacher, "sampling": cfg.sampling,
                   "steps": int(online.model.num_timesteps), "seed": cfg.seed})
    for name in ("eval.csv", "progress.csv"):
        if (workdir / name).exists():
            shutil.copy(workdir / name, tmp / name)
    if online.state.rounds:
        with (tmp / "rounds.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(online.state.rounds[0]))
            writer.writeheader()
            writer.writerows(online.state.rounds)
    if len(log.answered()):
        write_feedback(tmp / "feedback", online.store, log, cfg.segment_length, cfg.teacher,
                       online.teacher.params(), round(cfg.test_fraction * len(log)), cfg.seed,
                       {"command": "train-online", "recipe": cfg.recipe, "task": cfg.task,
                        "seed": cfg.seed, "teacher": cfg.teacher, "sampling": cfg.sampling},
                       fps=env_fps(online.env.venv.envs[0]))
    evaluation = _last_eval(tmp / "eval.csv")
    write_json(tmp / "summary.json", {
        "task": cfg.task, "recipe": cfg.recipe, "steps": int(online.model.num_timesteps),
        "seed": cfg.seed, "labels": len(log), "answered": int(len(log.answered())),
        "feedback_budget": cfg.feedback, "rounds": len(online.state.rounds),
        "resumed_from": online.state.resumed_from, "final": evaluation,
        "device": str(online.model.device), **timing})
    return evaluation


def _last_eval(path: Path) -> dict[str, Any]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()}


__all__ = ["Config", "make_config", "run"]
