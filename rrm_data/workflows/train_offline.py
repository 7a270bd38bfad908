"""Offline RL on a dataset's own steps: `algo=iql` (TorchRL's IQL loss) or `algo=td3bc`
(TorchRL's TD3+BC loss) on any reward, or `algo=cpl` (Contrastive Preference Learning)
straight from its preference labels.

`reward=` (IQL, TD3+BC) is a reward run directory or artifact, `true`, `prior:<name>`, `zero` or
`random:<recipe or run>[@seed]`; every transition (an episode's last s′ by one simulator
step) is scored with it, then min-max scaled to [0, 1] over the dataset (Preference
Transformer's practice; `normalize=false` keeps the raw reward). CPL reads the `split=`
preferences of `teacher=`, no reward. The policy is evaluated on the same fixed
Meta-World episodes as `train-sac` (eval.csv's `timesteps` count gradient steps). The run
directory `out` appears when training is done and holds `config.yaml`, `eval.csv`,
`summary.json` and `policy.pt`, which `rrm-data collect policy=[offline:RUN_DIR,...]`
rolls out. An interrupted run (even kill -9) resumes from its last checkpoint when the
same command is run again, ending with the weights an uninterrupted run has.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from omegaconf import DictConfig

from rrm_data.config import (
    COUNT,
    DISCOUNT,
    NON_NEGATIVE,
    POSITIVE,
    SEED32,
    THREADS,
    build_config,
    config_dict,
    doc,
    parse_overrides,
    to_yaml,
)
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_directory, check_out, output_lock, remove_owned, write_json
from rrm_data.progress import console
from rrm_data.reward.resolve import check_reward_tasks, resolve_reward, reward_ref
from rrm_data.rl.offline.cpl import CPL, CPLSettings
from rrm_data.rl.offline.data import TransitionTensors, normalize_rewards, segment_pairs
from rrm_data.rl.offline.iql import IQL, IQLSettings
from rrm_data.rl.offline.networks import GaussianActor
from rrm_data.rl.offline.policy import OFFLINE_POLICY_FILE, save_policy
from rrm_data.rl.offline.td3bc import TD3BC, TD3BCSettings
from rrm_data.rl.offline.trainer import Learner, Schedule, train
from rrm_data.rl.sac import resolve_device
from rrm_data.rl.workdir import find_checkpoint, prepare_workdir
from rrm_data.sim.envs import check_task
from rrm_data.sim.transitions import dataset_transitions, stored_physics

NOT_IDENTITY = ("threads", "out", "overwrite")  # a checkpoint resumes whatever they say


@dataclass
class Config:
    data: str = field(default="", metadata=doc("dataset directory or Hub id"))
    algo: Literal["iql", "td3bc", "cpl"] = field(default="iql", metadata=doc(
        "iql: IQL on reward=; td3bc: TD3+BC on reward=; cpl: CPL on the split's "
        "preference labels"))
    reward: str = field(default="true", metadata=doc(
        "IQL's and TD3+BC's reward: run dir or artifact, true, prior:<name>, zero, "
        "random:<recipe>[@seed]"))
    normalize: bool = field(default=True, metadata=doc(
        "min-max scale the reward to [0, 1] over the dataset (Preference Transformer's)"))
    split: str = field(default="train", metadata=doc("CPL: the preferences split"))
    teacher: str = field(default="oracle", metadata=doc("CPL: whose labels"))
    num_labels: int | None = field(default=None, metadata=doc(
        "CPL: the first N pairs (the budget train-reward's data.num_labels sets)", COUNT))
    task: str | None = field(default=None, metadata=doc(
        "Meta-World task evaluated (default: the dataset's one task)"))
    steps: int = field(default=100_000, metadata=doc("gradient steps", COUNT))
    batch_size: int = field(default=256, metadata=doc(
        "transitions (IQL, TD3+BC) per gradient step; CPL's is cpl.batch_size", COUNT))
    learning_rate: float = field(default=3e-4, metadata=doc("Adam step size", POSITIVE))
    hidden: list[int] = field(default_factory=lambda: [256, 256], metadata=doc(
        "hidden sizes of every network", COUNT))
    gamma: float = field(default=0.99, metadata=doc("discount of IQL and TD3+BC", DISCOUNT))
    iql: IQLSettings = field(default_factory=IQLSettings, metadata=doc("IQL settings"))
    td3bc: TD3BCSettings = field(default_factory=TD3BCSettings, metadata=doc(
        "TD3+BC settings"))
    cpl: CPLSettings = field(default_factory=CPLSettings, metadata=doc("CPL settings"))
    eval_every: int = field(default=10_000, metadata=doc(
        "gradient steps between evaluations (0: only at the end)", NON_NEGATIVE))
    eval_episodes: int = field(default=10, metadata=doc(
        "deterministic episodes per evaluation", COUNT))
    episode_steps: int | None = field(default=None, metadata=doc(
        "cut evaluation episodes shorter than Meta-World's 500 steps", COUNT))
    checkpoint_every: int = field(default=10_000, metadata=doc(
        "gradient steps between checkpoints (0: none)", NON_NEGATIVE))
    seed: int = field(default=0, metadata=doc("seed of networks and batches", SEED32))
    device: str = field(default="auto", metadata=doc("auto (CUDA when present), cpu, cuda:N"))
    threads: int = field(default=1, metadata=doc("torch CPU threads", THREADS))
    out: str | None = field(default=None, metadata=doc(
        "run directory (default runs/offline-<algo>-<task>-<reward>-seed<seed>)"))
    overwrite: bool = field(default=False, metadata=doc(
        "replace an existing run at out, or a checkpoint of other settings"))
    allow_other_task: bool = field(default=False, metadata=doc(
        "use a reward trained on another task than task="))


def make_config(overrides: list[str]) -> DictConfig:
    extra = parse_overrides(overrides)
    if "reward" in extra:
        extra.reward = reward_ref(extra.reward)
    cfg = build_config(Config(), extra)
    if not cfg.data:
        raise RrmError("train-offline needs data=<dataset directory or Hub id>")
    if cfg.task is not None:
        check_task(cfg.task)
        if cfg.algo != "cpl":
            check_reward_tasks([cfg.reward], [cfg.task], cfg.allow_other_task)
    resolve_device(cfg.device)
    if cfg.out is None:
        label = "labels" if cfg.algo == "cpl" else \
            Path(str(cfg.reward).rstrip("/")).name.replace(":", "-")
        cfg.out = f"runs/offline-{cfg.algo}-{cfg.task or Path(cfg.data).name}-{label}" \
                  f"-seed{cfg.seed}"
    return cfg


def _task(dataset: DatasetDir, wanted: str | None) -> str:
    """The one task of the dataset's episodes, which ``task=`` (if given) must name."""
    tasks = sorted(set(dataset.table("episodes", columns=["task"]).column("task").to_pylist()))
    if len(tasks) != 1:
        raise RrmError(f"{dataset.root}: train-offline trains on one task's episodes; this "
                       f"dataset holds {', '.join(tasks) or 'none'}")
    if wanted is not None and wanted != tasks[0]:
        raise RrmError(f"{dataset.root} holds {tasks[0]} episodes, not task={wanted}")
    return tasks[0]


def _learner(cfg: DictConfig, dataset: DatasetDir, device: str
             ) -> tuple[Learner, dict[str, object]]:
    """The algorithm on its data (every check before training), and what the summary says
    about that data."""
    torch.manual_seed(cfg.seed)
    actor = GaussianActor(STATE_DIM, ACTION_DIM, list(cfg.hidden)).to(device)
    if cfg.algo == "cpl":
        pairs = segment_pairs(dataset, cfg.split, cfg.teacher, device, cfg.num_labels)
        settings = CPLSettings(**config_dict(cfg.cpl))
        return CPL(actor, pairs, settings, cfg.learning_rate, cfg.steps), {
            "pairs": len(pairs), "segment_length": int(pairs.rows.shape[-1]),
            "split": cfg.split, "teacher": cfg.teacher}
    reward = resolve_reward(cfg.reward)
    stored_physics(dataset, np.zeros(0, np.int64))  # its columns checked before any work
    transitions = dataset_transitions(dataset, reward)
    rewards, scale = normalize_rewards(transitions.rewards) if cfg.normalize else (
        transitions.rewards, None)
    data = TransitionTensors.of(transitions, rewards, device)
    learner: Learner = (
        TD3BC(actor, data, list(cfg.hidden), TD3BCSettings(**config_dict(cfg.td3bc)),
              cfg.gamma, cfg.learning_rate) if cfg.algo == "td3bc" else
        IQL(actor, data, list(cfg.hidden), IQLSettings(**config_dict(cfg.iql)), cfg.gamma,
            cfg.learning_rate))
    return learner, {"transitions": len(data), "reward": reward.name, "reward_scale": scale}


def run(cfg: DictConfig) -> None:
    if importlib.util.find_spec("torchrl") is None:
        raise RrmError("train-offline needs TorchRL, a dependency of rrm-data: pip install "
                       "'torchrl>=0.14'")
    out = Path(cfg.out)
    check_out(out, Kind.OFFLINE_RUN, cfg.overwrite, inputs={"data": cfg.data,
                                                            "reward": cfg.reward})
    dataset = open_dataset(cfg.data)
    task = _task(dataset, cfg.task)
    if cfg.algo != "cpl":
        check_reward_tasks([cfg.reward], [task], cfg.allow_other_task)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    learner, about = _learner(cfg, dataset, device)
    schedule = Schedule(task, cfg.steps, cfg.cpl.batch_size if cfg.algo == "cpl"
                        else cfg.batch_size, cfg.seed, cfg.eval_every, cfg.eval_episodes,
                        cfg.episode_steps, cfg.checkpoint_every)
    with output_lock(out):
        workdir = prepare_workdir(out, cfg, NOT_IDENTITY, cfg.overwrite, suffix="offline")
        try:
            state = train(learner, schedule, workdir, f"train-offline {cfg.algo}")
            with atomic_directory(out, Kind.OFFLINE_RUN, cfg.overwrite) as tmp:
                (tmp / "config.yaml").write_text(to_yaml(cfg))
                save_policy(learner.actor, list(cfg.hidden), tmp / OFFLINE_POLICY_FILE)
                rows = state.rows
                with (tmp / "eval.csv").open("w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
                write_json(tmp / "summary.json", {
                    "command": "train-offline", "algo": cfg.algo, "task": task,
                    "data": str(cfg.data), **about, "steps": state.step, "seed": cfg.seed,
                    "final": rows[-1], "losses": state.losses, "device": device,
                    "resumed_from": state.resumed_from,
                    # gradient steps/s of training alone (evaluation and checkpoints apart)
                    "gradient_steps_per_s": round(state.step / max(state.train_seconds, 1e-9),
                                                  2),
                    "train_seconds": round(state.train_seconds, 2),
                    "evaluation_seconds": round(state.eval_seconds, 2)})
        except BaseException:
            if find_checkpoint(workdir) is None:  # nothing to resume: leave nothing
                remove_owned(workdir)
            raise
        remove_owned(workdir)
    final = rows[-1]
    console.print(f"wrote {out}: success rate {final['success_rate']:.2f}, true return "
                  f"{final['true_return']:.1f} over {cfg.eval_episodes} episodes")


__all__ = ["Config", "make_config", "run"]
