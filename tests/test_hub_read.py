"""Hub dataset ids as inputs: `org/name` and `hf://datasets/org/name` through the local cache.

The cache is built by hand in the layout `huggingface_hub` writes (blobs, snapshot
symlinks, refs/main), and read with HF_HUB_OFFLINE=1: no network is needed or used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pyarrow.parquet as pq
import pytest
from helpers import HUB_REPO, HUB_SHA, build_hub_cache

from rrm_data.cli import main
from rrm_data.dataset.hub import parse_hub_ref
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError


@pytest.fixture(scope="module")
def hub_cache(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("hf-cache")
    build_hub_cache(small_dataset, cache)
    return cache


@pytest.fixture
def offline(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process reads the hand-built cache, offline (as HF_HUB_CACHE / HF_HUB_OFFLINE do)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return hub_cache


@pytest.mark.parametrize("ref", [HUB_REPO, f"{HUB_REPO}@main", f"hf://datasets/{HUB_REPO}",
                                 f"hf://datasets/{HUB_REPO}@{HUB_SHA}"])
def test_hub_ids_open_the_cached_snapshot(ref: str, offline: Path, small_dataset: Path) -> None:
    dataset = open_dataset(ref)
    storage = offline / f"datasets--{HUB_REPO.replace('/', '--')}"
    assert dataset.root == storage / "snapshots" / HUB_SHA
    assert dataset.info == open_dataset(small_dataset).info
    assert dataset.preferences("test").equals(open_dataset(small_dataset).preferences("test"))


def test_local_directory_keeps_priority(offline: Path, small_dataset: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / HUB_REPO
    local.parent.mkdir()
    local.symlink_to(small_dataset)
    monkeypatch.chdir(tmp_path)
    assert open_dataset(HUB_REPO).root == Path(HUB_REPO)


@pytest.mark.parametrize("ref, message", [
    ("rrm-test/missing", "no dataset at 'rrm-test/missing': not a local directory; as a Hub id: "
                         "dataset rrm-test/missing is not in the local Hugging Face cache"),
    ("hf://datasets/rrm-test/missing", "dataset rrm-test/missing is not in the local Hugging "
                                       "Face cache"),
    ("hf://datasets/not/a/repo", "invalid repo id 'not/a/repo'"),
    ("./no/such/dir", "no dataset at './no/such/dir' (not a directory)"),
    ("a/b/c", "no dataset at 'a/b/c' (not a directory)"),
])
def test_bad_references_say_what_is_missing(ref: str, message: str, offline: Path) -> None:
    with pytest.raises(RrmError) as err:
        open_dataset(ref)
    assert message in str(err.value)
    if "cache" in message:
        assert "HF_HUB_OFFLINE is set" in str(err.value)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_render_in_place_refuses_a_hub_dataset(offline: Path, capsys) -> None:
    before = tree(offline)
    assert main(["render", f"data={HUB_REPO}", "camera=corner", "image_size=32"]) == 2
    assert "read from the Hugging Face cache, which rrm-data never modifies" in \
        capsys.readouterr().err
    assert tree(offline) == before


def test_parse_hub_ref() -> None:
    assert parse_hub_ref("org/name@v1").revision == "v1"
    assert parse_hub_ref("hf://datasets/org/name/").repo_id == "org/name"
    assert parse_hub_ref("data") is None  # a bare word is a local path, never a Hub id
    assert parse_hub_ref("/abs/path") is None


@pytest.mark.slow
def test_commands_read_hub_ids_offline(hub_cache: Path, tmp_path: Path) -> None:
    """The real CLI in a fresh process, configured only through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    out, run = tmp_path / "trl.parquet", tmp_path / "run"
    script = ("import sys; from rrm_data.cli import main; "
              f"codes = [main(['validate', 'data={HUB_REPO}']), "
              f"main(['info', 'data=hf://datasets/{HUB_REPO}']), "
              f"main(['export-trl', 'data={HUB_REPO}@main', 'split=test', 'out={out}']), "
              f"main(['train-reward', 'data={HUB_REPO}', 'out={run}', 'model.hidden=16', "
              "'model.members=1', 'trainer.max_steps=2', 'trainer.enable_progress_bar=false']), "
              f"main(['evaluate', 'reward={run}', 'data={HUB_REPO}'])]; "
              "sys.exit(max(codes))")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"ok: {HUB_REPO} is a valid rrm-data/1 dataset" in result.stdout
    assert pq.read_table(out).num_rows > 0
    assert (run / "reward" / "reward.json").is_file()
    assert (run / "eval-bp-prefs-test-oracle" / "report.json").is_file()
