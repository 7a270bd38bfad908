"""Medium-replay datasets: train-sac record_out= records every training episode with physics
state as a labelled rrm-data/1 dataset; a resumed run files each episode exactly once."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
from helpers import TINY_TRAIN, one_line_error, overrides

from rrm_data.cli import main
from rrm_data.collection.collector import read_episode
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import segment_first_steps, step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.rl.replay import range_label
from rrm_data.sim.transitions import dataset_true_rewards

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TASK = "reach-v3"
# 400 steps of 50-step episodes (8 episodes), a checkpoint every 100 steps, 4 step ranges.
RUN = {"task": TASK, "reward": "true", "steps": 400, "episode_steps": 50, "seed": 2,
       "sac.learning_starts": 100, "sac.batch_size": 32, "sac.net_arch": [32, 32],
       "eval_every": 200, "eval_episodes": 1, "checkpoint_every": 100,
       "record.pairs": 40, "record.segment_length": 20, "record.segments_per_episode": 4,
       "record.ranges": 4}
RANGES = ["sac-train:0-100", "sac-train:100-200", "sac-train:200-300", "sac-train:300-400"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run, replay dataset) of one uninterrupted train-sac run."""
    root = tmp_path_factory.mktemp("replay")
    assert main(["train-sac", *overrides(**RUN, out=root / "run",
                                         record_out=root / "replay")]) == 0
    return root / "run", root / "replay"


def _episodes(data: Path) -> list[dict]:
    return open_dataset(data).table("episodes").to_pylist()


def test_every_training_episode_in_order(recorded: tuple[Path, Path]) -> None:
    run, data = recorded
    assert main(["validate", f"data={data}"]) == 0
    assert f"record_out={data.name}" in (data / "README.md").read_text()  # the card's command
    episodes = _episodes(data)
    assert [e["episode_index"] for e in episodes] == list(range(8))
    assert [e["length"] for e in episodes] == [50] * 8
    assert [e["policy"] for e in episodes] == [r for r in RANGES for _ in range(2)]
    # The training log dumps once per finished episode (log_interval=1, one env): its true
    # returns, in order, are the recorded episodes' returns.
    with (run / "progress.csv").open() as f:
        logged = [float(r["rollout/true_return"]) for r in csv.DictReader(f)
                  if r.get("rollout/true_return")]
    np.testing.assert_allclose([e["return"] for e in episodes], logged, rtol=1e-5)
    # Each stored reward is Meta-World's reward of (s, a, s′), recomputed from physics state.
    dataset = open_dataset(data)
    stored = step_columns(dataset, [fmt.REWARD])[fmt.REWARD]
    assert len(stored) == 400
    np.testing.assert_array_equal(dataset_true_rewards(dataset).astype(np.float32), stored)
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == []
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]  # work dir gone


def test_oracle_labels_and_loading(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = recorded
    dataset = open_dataset(data)
    info = dataset.info
    assert info.counts.pairs == {"train": 32, "test": 8}
    assert info.collection["command"] == "train-sac" and info.seed == 2
    rewards = step_columns(dataset, [fmt.REWARD])[fmt.REWARD].astype(np.float64)
    segments = dataset.table("segments")
    first = segment_first_steps(segments, dataset.table("episodes"))
    returns = dict(zip(segments.column("segment_index").to_pylist(),
                       rewards[first[:, None] + np.arange(20)].sum(axis=1), strict=True))
    loaded = datasets.load_dataset(str(data), "preferences", split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 32 and set(loaded["teacher"]) == {"oracle"}
    for a, b, label in zip(loaded["segment_a"], loaded["segment_b"], loaded["label"],
                           strict=True):
        assert label == (0.5 if returns[a] == returns[b] else float(returns[a] > returns[b]))


def test_a_reward_trains_on_it_and_label_adds_a_teacher(recorded: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    _, data = recorded
    assert main(["train-reward", "recipe=state_residual", f"data={data}", *TINY_TRAIN,
                 f"out={tmp_path / 'reward'}"]) == 0
    assert (tmp_path / "reward" / "reward" / "reward.json").exists()
    assert main(["label", f"data={data}", "teacher=smooth", f"out={tmp_path / 'more'}"]) == 0
    assert set(open_dataset(tmp_path / "more").info.teachers) == {"oracle", "smooth"}


def test_resume_after_kill_9_files_each_episode_once(tmp_path: Path) -> None:
    """Killed after its checkpoint at step ≥ 200, the run resumes there: the episodes filed
    before the checkpoint are kept byte for byte, later ones filed again, none twice."""
    out, replay = tmp_path / "run", tmp_path / "replay"
    args = [sys.executable, "-m", "rrm_data.cli", "train-sac",
            *overrides(**{**RUN, "steps": 600}, out=out, record_out=replay)]
    workdir = tmp_path / ".run.sac"
    state = workdir / "checkpoint" / "state.json"
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline, reached = time.monotonic() + 180, -1
        while time.monotonic() < deadline and proc.poll() is None and reached < 200:
            reached = json.loads(state.read_text())["timesteps"] if state.exists() else -1
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = json.loads(state.read_text())
    kept = saved["next_episode"]
    assert saved["timesteps"] >= 200 and kept == saved["timesteps"] // 50
    before = {i: read_episode(workdir / "replay" / "episodes" / f"episode-{i:07d}.arrow")
              for i in range(kept)}
    assert main(args[3:]) == 0  # the same command, in this process
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == [saved["timesteps"]] and summary["steps"] == 600
    episodes = _episodes(replay)
    assert [e["episode_index"] for e in episodes] == list(range(12))
    assert [e["length"] for e in episodes] == [50] * 12
    steps = open_dataset(replay).table("steps")
    for i, (table, row) in before.items():
        stored = steps.filter(pa.compute.equal(steps.column("episode_index"), i))
        np.testing.assert_array_equal(
            np.stack(stored.column(fmt.STATE).to_numpy(zero_copy_only=False)),
            np.stack(table.column(fmt.STATE).to_numpy(zero_copy_only=False)))
        assert episodes[i]["return"] == pytest.approx(row["return"], rel=1e-6)  # float32
    starts = [e["policy"] for e in episodes]  # 150-step ranges, each episode in its own
    assert starts == [range_label(50 * i, 600, 4) for i in range(12)]


def test_range_label() -> None:
    assert [range_label(s, 400, 4) for s in (0, 99, 100, 399)] == [
        "sac-train:0-100", "sac-train:0-100", "sac-train:100-200", "sac-train:300-400"]
    assert range_label(9, 10, 3) == "sac-train:8-10"  # the last range is the short one


@pytest.mark.parametrize(("args", "message"), [
    (["record.segment_length=80"], "record.segment_length=80 exceeds the 50-step episodes"),
    (["steps=120"], "finish 2 episodes of 50 steps; record_out needs at least 4"),
    (["record.teachers=[nope]"], "unknown teacher 'nope'"),
    (["record.pairs=100000"], "pairs"),
])
def test_bad_input_gets_one_line(args: list[str], message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train-sac", f"task={TASK}", "episode_steps=50", "steps=400",
                 f"out={out}", f"record_out={tmp_path / 'replay'}", *args]) == 2
    assert message in one_line_error(capsys, "train-sac")
    assert not out.exists() and not list(tmp_path.glob(".*"))
