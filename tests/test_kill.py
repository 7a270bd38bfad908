"""kill -9 at random moments: the output path always holds the complete old or the complete new
version, the rerun equals an uninterrupted run, and nothing is left behind after it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, TINY_TRAIN, overrides, parquet_bytes

from rrm_data.cli import main
from rrm_data.dataset.validate import validate_dataset

SEEDS = range(6)  # kill moments per command: 6 keeps the suite near its 10-minute budget
TINY = {**SMALL, "episodes": 8, "episode_steps": 40, "segments_per_episode": 4, "pairs": 40}
pytestmark = pytest.mark.slow


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "rrm_data.cli", *argv]


def run_killed(argv: list[str], seconds: float) -> int | None:
    """Start the command, kill -9 it after ``seconds`` (if still running); its exit code."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None
    return proc.returncode


def timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def hidden_siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.glob(f".{path.name}.*"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def kill_at_random_moments(argv: list[str], out: Path, duration: float,
                           versions: Callable[[], bool], seed_offset: int = 0) -> None:
    """Kill the command at 6 random moments of its run; after each, ``versions()`` (the
    old or the new version is at ``out``) must hold."""
    for seed in SEEDS:
        moment = np.random.default_rng(seed + seed_offset).uniform(0.05, 1.0) * duration
        run_killed(argv, moment)
        assert versions(), f"out={out} holds neither version after a kill at {moment:.2f} s"


def test_collect_and_merge_survive_kill_9(tmp_path):
    reference = tmp_path / "reference"
    argv = command("collect", *overrides(**{**TINY, "out": reference}))
    duration = timed(argv)
    expected = parquet_bytes(reference)

    out = tmp_path / "data"
    argv = command("collect", *overrides(**{**TINY, "out": out}))

    def complete_or_absent() -> bool:
        return not out.exists() or parquet_bytes(out) == expected

    kill_at_random_moments(argv, out, duration, complete_or_absent)
    assert main(["collect", *overrides(**{**TINY, "out": out})]) == 0
    assert parquet_bytes(out) == expected
    assert hidden_siblings(out) == []

    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, shard in enumerate(shards):
        assert main(["collect", *overrides(**{**TINY, "shard": f"{i}/2", "out": shard})]) == 0
    merged = tmp_path / "merged"
    argv = command("merge", f"shards=[{shards[0]},{shards[1]}]", f"out={merged}")
    duration = timed(argv)
    shutil.rmtree(merged)

    def merged_or_absent() -> bool:
        return not merged.exists() or parquet_bytes(merged) == expected

    kill_at_random_moments(argv, merged, duration, merged_or_absent, seed_offset=100)
    assert main(["merge", f"shards=[{shards[0]},{shards[1]}]", f"out={merged}"]) == 0
    assert parquet_bytes(merged) == expected and hidden_siblings(merged) == []


def test_in_place_render_and_embed_survive_kill_9(make_dataset, tmp_path):
    source = make_dataset(**{**TINY, "episodes": 4, "episode_steps": 20, "segment_length": 10,
                             "pairs": 12})
    reference = tmp_path / "reference"
    shutil.copytree(source, reference)
    render = ["camera=corner", "image_size=16"]
    duration = timed(command("render", f"data={reference}", *render))
    rendered = snapshot(reference)
    embed_duration = timed(command("embed", f"data={reference}"))
    embedded = snapshot(reference)

    data = tmp_path / "data"
    shutil.copytree(source, data)
    old = snapshot(data)

    def old_or_rendered() -> bool:
        now = snapshot(data)
        return now in (old, rendered) and not validate_dataset(data)

    kill_at_random_moments(command("render", f"data={data}", *render), data, duration,
                           old_or_rendered, seed_offset=200)
    if snapshot(data) == old:
        assert main(["render", f"data={data}", *render]) == 0
    assert snapshot(data) == rendered

    def rendered_or_embedded() -> bool:
        return snapshot(data) in (rendered, embedded)

    kill_at_random_moments(command("embed", f"data={data}"), data, embed_duration,
                           rendered_or_embedded, seed_offset=300)
    assert main(["embed", f"data={data}"]) == 0
    assert snapshot(data) == embedded
    assert hidden_siblings(data) == []


def test_train_reward_survives_kill_9(small_dataset, tmp_path):
    train = ["train-reward", f"data={small_dataset}", *TINY_TRAIN]
    reference = tmp_path / "reference"
    duration = timed(command(*train, f"out={reference}"))
    artifact = weights(reference)

    out = tmp_path / "run"

    def artifact_complete_or_absent() -> bool:
        return not (out / "reward").exists() or weights(out) == artifact

    argv = command(*train, f"out={out}", "overwrite=true")
    kill_at_random_moments(argv, out, duration, artifact_complete_or_absent, seed_offset=400)
    assert main([*train, f"out={out}", "overwrite=true"]) == 0
    assert weights(out) == artifact
    assert hidden_siblings(out) == []


def weights(run: Path) -> tuple[bytes, dict]:
    """A run's exported weights and its reward spec, less the run's own name."""
    spec = json.loads((run / "reward" / "reward.json").read_text())
    spec.pop("name")
    return (run / "reward" / "weights.safetensors").read_bytes(), spec
