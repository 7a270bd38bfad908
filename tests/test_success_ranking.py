"""Ranking among successful episodes (evaluate) and by a teacher's criterion (gallery), on a
real collection where an expert succeeds; every number recomputed here from the tables and
the definitions (the costs by step loops in test_motion_teachers, not labels.motion)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line_error
from scipy import stats
from test_motion_teachers import WEIGHTS, recomputed_costs

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import open_dataset

TEACHERS = ["oracle", "mistake", "smooth", "safe", "quality"]
PRIOR = "gripper_object"
RADIUS = 0.22  # m: reach-v3's hand stays 0.15-0.37 m from its object; about half the steps


@pytest.fixture(scope="module")
def expert_data(make_dataset) -> Path:
    """reach-v3, two noisy experts (most of their episodes succeed) and a random policy."""
    return make_dataset(task="reach-v3", episodes=12, pairs=150,
                        policy="[expert:0.1,expert:0.3,random]",
                        teachers="[" + ",".join(TEACHERS) + "]",
                        **{"teacher_params.safe.radius": RADIUS,
                           "teacher_params.quality.radius": RADIUS,
                           **{f"teacher_params.quality.{k}": v for k, v in WEIGHTS.items()}})


def expected_numbers(root: Path, split: str) -> dict[str, dict[str, dict]]:
    """Per reward view and teacher: agreement on pairs of two successful segments, and ρ, τ
    with the teacher's quality over the split's successful segments, from the definitions."""
    data = open_dataset(root)
    segments = data.table("segments").to_pandas()
    success = data.table("episodes").to_pandas().set_index("episode_index")["success"]
    prefs = data.preferences(split).to_pandas()
    costs = recomputed_costs(root, RADIUS)
    quality = {"oracle": costs["return"], "mistake": costs["return"],
               **{t: -costs[t] for t in ("smooth", "safe", "quality")}}
    row = {int(s): i for i, s in enumerate(segments["segment_index"])}
    ok = {int(s): bool(success[e]) for s, e in zip(segments["segment_index"],
                                                    segments["episode_index"], strict=True)}
    in_split = sorted(set(prefs["segment_a"]) | set(prefs["segment_b"]))
    won = [row[s] for s in in_split if ok[s]]
    scores = {"true": segments["return"].to_numpy(float),
              f"prior:{PRIOR}": segments[fmt.segment_prior_column(PRIOR)].to_numpy(float)}
    out: dict[str, dict[str, dict]] = {}
    for view, score in scores.items():
        out[view] = {}
        for teacher in TEACHERS:
            mine = prefs[(prefs["teacher"] == teacher) & (prefs["label"] != 0.5)
                         & prefs["segment_a"].map(ok) & prefs["segment_b"].map(ok)]
            a = mine["segment_a"].map(row).to_numpy()
            b = mine["segment_b"].map(row).to_numpy()
            correct = (score[a] > score[b]) == (mine["label"].to_numpy() > 0.5)
            correct &= score[a] != score[b]
            q = quality[teacher][won]
            out[view][teacher] = {
                "agreement": float(correct.mean()) if len(mine) else None, "n": len(mine),
                "episodes": len(set(segments["episode_index"].iloc[np.r_[a, b]])),
                "spearman": stats.spearmanr(score[won], q).statistic,
                "kendall": stats.kendalltau(score[won], q).statistic, "segments": len(won)}
    return out


def test_evaluate_ranks_successful_episodes_per_teacher(expert_data: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", f"data={expert_data}", f"reward=[true,prior:{PRIOR}]",
                 "split=train", f"out={out}"]) == 0
    report = json.loads((out / "report.json").read_text())
    expected = expected_numbers(expert_data, "train")
    for view, teachers in expected.items():
        got = report["views"][view]["successful"]
        assert list(got) == sorted(TEACHERS)
        for teacher, want in teachers.items():
            agreement, rank = got[teacher]["agreement"], got[teacher]["rank"]
            assert agreement["n"] == want["n"] > 5, (view, teacher)
            assert agreement["value"] == pytest.approx(want["agreement"], abs=1e-12)
            assert agreement["low"] <= agreement["value"] <= agreement["high"]
            boot = agreement["bootstrap"]
            assert boot["episodes"] == want["episodes"]
            assert boot["low"] <= agreement["value"] + 1e-9 and boot["high"] >= boot["low"]
            assert rank["n"] == want["segments"] > 10
            assert rank["spearman"] == pytest.approx(want["spearman"], abs=1e-9), (view, teacher)
            assert rank["kendall"] == pytest.approx(want["kendall"], abs=1e-9), (view, teacher)
    true = report["views"]["true"]["successful"]
    assert true["oracle"]["agreement"]["value"] == 1.0 and true["oracle"]["rank"]["spearman"] == 1
    assert true["smooth"]["agreement"]["value"] < 1.0  # how it moves is not how far it got
    markdown = (out / "report.md").read_text()
    assert "## Among successful episodes, per teacher" in markdown
    assert f"| smooth: agreement | {true['smooth']['agreement']['value']:.3f} [" in markdown
    assert "among successful episodes" in report["rules"]["successful"]


def jerk(x: np.ndarray) -> float:
    """Mean squared third difference of positions x (T, 3), by a loop over t."""
    return float(np.mean([np.sum((x[t + 3] - 3 * x[t + 2] + 3 * x[t + 1] - x[t]) ** 2)
                          for t in range(len(x) - 3)]))


def test_gallery_ranks_clips_by_a_teachers_criterion(expert_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gallery"
    assert main(["gallery", f"data={expert_data}", f"reward=[true,prior:{PRIOR}]",
                 "split=train", "rank_by=smooth", "k=1", "frames=2", "image_size=32",
                 f"out={out}"]) == 0
    html = (out / "index.html").read_text()
    films = re.findall(r'src="media/(episode|segment)-(\d+)\.gif"', html)
    # per reward: top episode, bottom episode, top segment, bottom segment; the same clips
    assert len(films) == 8 and films[:4] == films[4:]
    picked = [int(i) for _, i in films[:4]]

    data = open_dataset(expert_data)
    steps = data.table("steps", columns=["index", fmt.STATE]).to_pandas().sort_values("index")
    state = np.stack(steps[fmt.STATE].to_numpy()).astype(np.float64)
    episodes = data.table("episodes").to_pandas().set_index("episode_index")
    segments = data.table("segments").to_pandas()
    prefs = data.preferences("train").to_pandas()
    used = sorted(set(prefs["segment_a"]) | set(prefs["segment_b"]))
    seg_jerk = dict(zip(segments["segment_index"], recomputed_costs(expert_data, RADIUS)["smooth"],
                        strict=True))
    in_split = sorted(set(segments.set_index("segment_index").loc[used, "episode_index"]))
    ep_jerk = {e: jerk(state[episodes.loc[e, "index_from"]:episodes.loc[e, "index_to"], 0:3])
               for e in in_split}
    assert picked == [min(ep_jerk, key=ep_jerk.get), max(ep_jerk, key=ep_jerk.get),
                      min(used, key=seg_jerk.get), max(used, key=seg_jerk.get)]
    assert "Top 1 episodes by smooth" in html and "teacher smooth&#39;s criterion" in html
    assert f"smooth cost {seg_jerk[picked[2]]:.4g}" in html

    capsys.readouterr()
    for bad in ("human", "smoth"):
        assert main(["gallery", f"data={expert_data}", "reward=true", f"rank_by={bad}",
                     f"out={tmp_path / bad}"]) == 2
        assert "not a scripted teacher" in one_line_error(capsys, "gallery")
        assert not (tmp_path / bad).exists()
