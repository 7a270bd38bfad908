"""The run directory of ``train-online``: its resumable work folder and its final contents."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from rrm_data.config import config_dict, to_yaml
from rrm_data.errors import RrmError
from rrm_data.io import remove_owned, write_json
from rrm_data.reward.artifact import ARTIFACT_DIR, export_reward
from rrm_data.rl.online.checkpoint import find_checkpoint
from rrm_data.rl.online.feedback import write_feedback
from rrm_data.rl.online.loop import OnlineRun
from rrm_data.sim.policies import POLICY_FILE


def prepare_workdir(out: Path, cfg: DictConfig, ignored: Collection[str],
                    overwrite: bool, suffix: str = "online") -> Path:
    """The resumable work folder ``.<out>.<suffix>`` next to ``out``. Its checkpoint is
    resumed when the run's settings (all keys but ``ignored``) are the same; with others it
    is refused, before anything changes, unless ``overwrite`` (then the run starts again)."""
    workdir = out.with_name(f".{out.name}.{suffix}")
    marker = workdir / "config.yaml"
    if marker.exists():
        differ = changed_keys(config_dict(cast(DictConfig, OmegaConf.load(marker))),
                              config_dict(cfg), ignored)
        if differ and find_checkpoint(workdir) is not None and not overwrite:
            raise RrmError(f"{workdir} holds a checkpoint of a run with other settings "
                           f"({', '.join(differ)}); run it again with those, or pass "
                           "overwrite=true to start this one from step 0")
        if differ:
            remove_owned(workdir)
    elif workdir.exists():  # killed before it was marked: nothing to resume
        remove_owned(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(to_yaml(cfg))
    return workdir


def changed_keys(old: Any, new: Any, ignored: Collection[str], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (a missing key reads as None)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix.rstrip(".")]
    keys = sorted({str(k) for k in (*old, *new)} - set(ignored))
    return [k for key in keys for k in changed_keys(old.get(key), new.get(key), (),
                                                    f"{prefix}{key}.")]


def write_outputs(online: OnlineRun, tmp: Path, name: str, record: Mapping[str, Any],
                  arguments: Mapping[str, Any], timing: Mapping[str, Any]) -> dict[str, float]:
    """Policy, reward artifact, feedback dataset, logs and summary into ``tmp``; returns the
    last evaluation. ``record`` (recipe, command) goes into the artifact and summary;
    ``arguments`` (the command's resolved keys) into the feedback dataset's meta and card."""
    s, log, workdir = online.s, online.state.labels, online.workdir
    (tmp / "config.yaml").write_text((workdir / "config.yaml").read_text())
    online.model.save(tmp / POLICY_FILE)
    training = {**record, "task": s.task, "labels": len(log), "teacher": online.teacher.name,
                "strategy": s.strategy, "steps": int(online.model.num_timesteps), "seed": s.seed}
    export_reward(online.learner.model, replace(online.learner.reward.spec, name=name,
                                                task=s.task, training=training),
                  tmp / ARTIFACT_DIR)
    for file in ("eval.csv", "progress.csv"):
        if (workdir / file).exists():
            shutil.copy(workdir / file, tmp / file)
    if online.state.rounds:
        with (tmp / "rounds.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(online.state.rounds[0]))
            writer.writeheader()
            writer.writerows(online.state.rounds)
    if len(log.answered()):
        write_feedback(tmp / "feedback", online.store, log, length=s.segment_length,
                       teacher=online.teacher.name, teacher_params=online.teacher.params(),
                       test_pairs=round(s.test_fraction * len(log)), seed=s.seed,
                       collection={"command": record.get("command", "train-online"),
                                   **arguments},
                       fps=online.store.fps)
    final = last_evaluation(tmp / "eval.csv")
    write_json(tmp / "summary.json", {
        **record, "task": s.task, "steps": int(online.model.num_timesteps), "seed": s.seed,
        "labels": len(log), "answered": int(len(log.answered())), "feedback_budget": s.feedback,
        "rounds": len(online.state.rounds), "resumed_from": online.state.resumed_from,
        "final": final, "device": str(online.model.device), **timing})
    return final


def last_evaluation(path: Path) -> dict[str, float]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()}
