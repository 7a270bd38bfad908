"""The final contents of a ``train-online`` run directory."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rrm_data.io import write_json
from rrm_data.reward.artifact import ARTIFACT_DIR, export_reward
from rrm_data.rl.online.feedback import write_feedback
from rrm_data.rl.online.loop import OnlineRun
from rrm_data.sim.policies import POLICY_FILE


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
