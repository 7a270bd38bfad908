"""meta/info.json: what a dataset is and how it was made."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rrm_data import __version__
from rrm_data.dataset.info import Counts, DatasetInfo
from rrm_data.dataset.priors import prior_formulas
from rrm_data.labels.tables import BuiltTables, label_counts
from rrm_data.labels.teachers import teacher_description, teacher_formula
from rrm_data.sim.envs import suite_versions

LABEL_CONVENTION = "label = P(segment_a preferred over segment_b); 0.5 = equally good"


def make_info(name: str, built: BuiltTables, collection: dict[str, Any], fps: float,
              cameras: list[str], shard: str | None = None) -> DatasetInfo:
    """Describe a freshly built dataset (features and splits are added by the writer)."""
    tables = built.tables
    episodes: pa.Table = tables["episodes"]["train"]
    return DatasetInfo(
        name=name,
        rrm_data_version=__version__,
        env=suite_versions(),
        tasks=sorted(set(episodes.column("task").to_pylist())),
        fps=fps,
        cameras=cameras,
        priors=prior_formulas(),
        teachers=built.labelling["teachers"],
        label_convention=LABEL_CONVENTION,
        policies=policy_stats(episodes),
        counts=Counts(
            episodes=episodes.num_rows,
            steps=tables["steps"]["train"].num_rows,
            segments=tables["segments"]["train"].num_rows,
            successes=int(pc.sum(episodes.column("success")).as_py() or 0),
            pairs=built.labelling["pairs"],
            labels=label_counts(tables["preferences"]),
            skipped=built.labelling["skipped"],
        ),
        labelling={**{k: built.labelling[k] for k in ("mean_segment_return", "test_episodes")},
                   **teacher_notes(built.labelling["teachers"])},
        collection=collection,
        seed=collection.get("seed"),
        shard=shard,
    )


def teacher_notes(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """What ``labelling`` records of each teacher: its one-line description and formula."""
    names = list(names)
    return {"teacher_descriptions": {name: teacher_description(name) for name in names},
            "teacher_formulas": {name: teacher_formula(name) for name in names}}


def policy_stats(episodes: pa.Table) -> list[dict[str, Any]]:
    """Episodes, successes and mean return per (policy, noise), for the card."""
    groups = episodes.group_by(["policy", "policy_noise"]).aggregate(
        [("episode_index", "count"), ("success", "sum"), ("return", "mean")])
    rows = sorted(groups.to_pylist(), key=lambda r: (r["policy"], r["policy_noise"]))
    return [{"policy": r["policy"], "noise": round(float(r["policy_noise"]), 6),
             "episodes": int(r["episode_index_count"]), "successes": int(r["success_sum"] or 0),
             "success_rate": int(r["success_sum"] or 0) / int(r["episode_index_count"]),
             "mean_return": float(r["return_mean"])} for r in rows]
