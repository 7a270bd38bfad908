"""How often the motion teachers disagree with the oracle among successful episodes.

A person watching two clips in which both succeed mostly judges how the arm moves; this
measures how much of that the return-based `oracle` misses. Per task it collects an expert
mixture (every teacher: oracle, smooth, efficient, safe, quality), keeps the pairs whose two
segments both come from successful episodes, and counts the share of them where each
motion teacher's label differs from the oracle's (both splits; a 0.5 tie against a strict
oracle label counts as a disagreement, and the share of ties is reported beside it). Writes
benchmarks/results/motion_teachers.json.

    python benchmarks/motion_teachers.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import save_result  # sets the process up before rrm_data

from rrm_data.cli import main as cli
from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import open_dataset

TASKS = ("drawer-close-v3", "reach-v3")
MOTION = ("smooth", "efficient", "safe", "quality")
POLICIES = "[expert:0,expert:0.3,expert:0.6,expert:1]"


def disagreement(root: Path) -> dict:
    """Pairs of two successful episodes' segments, and the share where each motion teacher
    disagrees with the oracle."""
    data = open_dataset(root)
    episodes = data.table("episodes").to_pandas().set_index("episode_index")
    segments = data.table("segments").to_pandas().set_index("segment_index")
    success = episodes.loc[segments["episode_index"], "success"].to_numpy()
    successful = dict(zip(segments.index, success, strict=True))
    rows = []
    for split in fmt.SPLITS:
        table = data.preferences(split).to_pandas()
        rows.append(table.pivot(index="pair_index", columns="teacher",
                                values=["label", "segment_a", "segment_b"]))
    labels = np.concatenate([r["label"][["oracle", *MOTION]].to_numpy() for r in rows])
    a = np.concatenate([r["segment_a"]["oracle"].to_numpy() for r in rows])
    b = np.concatenate([r["segment_b"]["oracle"].to_numpy() for r in rows])
    both = np.array([successful[i] and successful[j] for i, j in zip(a, b, strict=True)])
    oracle = labels[both, 0]
    return {"pairs": len(a), "pairs_both_successful": int(both.sum()),
            "episodes": len(episodes), "successful_episodes": int(episodes["success"].sum()),
            "disagree_with_oracle_among_successful": {
                name: float(np.mean(labels[both, 1 + k] != oracle))
                for k, name in enumerate(MOTION)},
            "ties_among_successful": {  # e.g. safe where neither hand comes near the object
                name: float(np.mean(labels[both, 1 + k] == 0.5))
                for k, name in enumerate(MOTION)},
            "disagree_with_oracle_all_pairs": {
                name: float(np.mean(labels[:, 1 + k] != labels[:, 0]))
                for k, name in enumerate(MOTION)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes and pairs")
    args = parser.parse_args()
    episodes, pairs = (20, 500) if args.quick else (60, 2000)
    result: dict = {"policy": POLICIES, "episodes": episodes, "episode_steps": 200,
                    "segment_length": 50, "pairs": pairs, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for task in TASKS:
            out = Path(tmp) / task
            assert cli(["collect", f"task={task}", f"policy={POLICIES}", f"episodes={episodes}",
                        "episode_steps=200", "segment_length=50", "segments_per_episode=8",
                        f"pairs={pairs}", "teachers=[oracle,smooth,efficient,safe,quality]",
                        f"out={out}"]) == 0
            result["tasks"][task] = disagreement(out)
    save_result("motion_teachers" + ("_quick" if args.quick else ""), result)


if __name__ == "__main__":
    main()
