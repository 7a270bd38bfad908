"""Two commands rewriting one dataset in place: the second is refused at once, nothing is lost.

Real subprocesses: the first writer is started and, as soon as it holds the dataset's lock
(seen in /proc/locks), stopped with SIGSTOP, so the second one surely runs while the first
is mid-work; then the first is resumed and must finish with every table it read.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import leftovers, overrides, parquet_bytes

from rrm_data.annotation.campaign import (
    CampaignSpec,
    campaign_items,
    campaign_queues,
    campaign_settings,
)
from rrm_data.annotation.store import Store
from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import validate_dataset

ROOT = Path(__file__).resolve().parents[1]
# as test_embed's IMAGES, so a session running both collects this dataset once
FRAMES = {"episodes": 6, "episode_steps": 30, "segment_length": 10, "segments_per_episode": 4,
          "pairs": 40, "image_size": 32}
BUSY = "is busy: another rrm-data process is writing it"


@pytest.fixture(scope="module")
def rendered(make_dataset) -> Path:
    return make_dataset(**FRAMES, camera="corner")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rrm_data.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def holds_lock(proc: subprocess.Popen, data: Path) -> bool:
    """Whether ``proc`` holds the flock on ``data``'s lock file (per /proc/locks)."""
    try:
        inode = os.stat(data.with_name(f".{data.name}.lock")).st_ino
    except FileNotFoundError:
        return False
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and str(proc.pid) in fields \
                and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False


def stopped_holding_lock(data: Path, *args: str) -> subprocess.Popen:
    """Start ``rrm-data *args``; SIGSTOP it once it holds ``data``'s lock."""
    proc = start(*args)
    while not holds_lock(proc, data):
        assert proc.poll() is None, f"{args[0]} ended without ever holding the lock: " \
                                    f"{proc.communicate()}"
        time.sleep(0.001)
    proc.send_signal(signal.SIGSTOP)
    assert holds_lock(proc, data)  # (it had not published yet)
    os.set_blocking(proc.stderr.fileno(), False)
    try:
        early = os.read(proc.stderr.fileno(), 1 << 16).decode()
    except BlockingIOError:
        early = ""
    os.set_blocking(proc.stderr.fileno(), True)
    # embed's and render's progress bar (shown when their work ends) is not out yet: the
    # lock is taken before the work, not when the result is published
    assert "frames/s" not in early, early
    return proc


def finish(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def refused_at_once(data: Path, *args: str) -> float:
    """Run ``rrm-data *args`` to its end: refused with the busy line, ``data`` untouched, no
    temporary copy left; returns its seconds."""
    before, began = parquet_bytes(data), time.perf_counter()
    proc = start(*args)
    _, err = proc.communicate(timeout=120)
    seconds = time.perf_counter() - began
    assert proc.returncode == 2, err
    assert f"{data} {BUSY}" in err and err.count("\n") == 1, err
    assert parquet_bytes(data) == before
    assert not [name for name in leftovers(data) if name.endswith(f"-{proc.pid}")]
    return seconds


def tables_of(data: Path) -> set[str]:
    """The tables meta/info.json lists, after checking each has its files."""
    dataset = open_dataset(data)
    for name, splits in dataset.info.splits.items():
        for split in splits:
            assert dataset.files(name, split), (name, split)
    assert validate_dataset(data) == []
    return set(dataset.info.splits)


def copy(source: Path, tmp_path: Path) -> Path:
    shutil.copytree(source, tmp_path / "data")
    return tmp_path / "data"


def test_embed_holds_the_dataset_and_query_is_refused(rendered: Path, tmp_path: Path) -> None:
    data = copy(rendered, tmp_path)
    before = tables_of(data)
    embed = stopped_holding_lock(data, "embed", f"data={data}", "batch_size=16")
    try:
        seconds = refused_at_once(data, "query", f"data={data}", "strategy=uniform", "n=3")
        print(f"\nquery refused in {seconds:.2f} s (with the interpreter's start)")
        # a new version elsewhere reads the locked dataset as it stands
        assert main(["query", f"data={data}", "strategy=uniform", "n=3",
                     f"out={tmp_path / 'other'}"]) == 0
        assert tables_of(tmp_path / "other") == before | {"queries"}
    finally:
        finish(embed)
    assert tables_of(data) == before | {"embeddings/tf_efficientnet_lite0"}
    assert main(["query", f"data={data}", "strategy=uniform", "n=3"]) == 0
    assert tables_of(data) == before | {"embeddings/tf_efficientnet_lite0", "queries"}


def test_query_holds_the_dataset_and_annotate_export_is_refused(
        small_dataset: Path, trained_reward: Path, tmp_path: Path) -> None:
    data = copy(small_dataset, tmp_path)
    assert main(["query", f"data={data}", "strategy=uniform", "n=20"]) == 0
    dataset = open_dataset(data)
    spec = CampaignSpec(("ana",), calibration=1, calibration_first=0, overlap=1)
    items = campaign_items(dataset, spec)
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    store = Store(campaign / "store.sqlite")
    store.create(items, campaign_queues(items, spec), campaign_settings(dataset, spec))
    store.answer("ana", 0, "left", 3, 2.0, "request-0")
    store.close()
    before = tables_of(data)
    query = stopped_holding_lock(data, "query", f"data={data}", f"reward={trained_reward}",
                                 "strategy=disagreement", "n=5", "seed=1")
    try:
        refused_at_once(data, "annotate", f"data={data}", f"campaign={campaign}",
                        "export=true", "threshold=0")
    finally:
        finish(query)
    assert tables_of(data) == before
    assert open_dataset(data).info.extra["queries"]["strategy"] == "disagreement"


def test_render_holds_the_dataset_and_embed_is_refused(rendered: Path, tmp_path: Path) -> None:
    data = copy(rendered, tmp_path)
    before = tables_of(data)
    render = stopped_holding_lock(data, "render", f"data={data}",
                                  *overrides(camera="topview", image_size=32))
    try:
        refused_at_once(data, "embed", f"data={data}")
    finally:
        finish(render)
    assert tables_of(data) == before
    assert open_dataset(data).info.cameras == ["corner", "topview"]
