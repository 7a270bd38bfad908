"""The one rule for every `out=`: a command writes a path that does not exist, or replaces its
own kind of output with overwrite=true; nothing else is ever deleted or written into."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SMALL, TINY_TRAIN, interruptible, one_line_error, overrides

from rrm_data.cli import main
from rrm_data.io import Kind, atomic_directory, clean_leftovers, output_kind, output_lock


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (what must survive a refused command)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def dataset_copy(small_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    return copy


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Somebody's folder that rrm-data did not make."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    return mine


def test_reports_never_replace_a_folder_they_did_not_write(trained_reward, small_dataset,
                                                          folder, dataset_copy, capsys):
    before_folder, before_data = snapshot(folder), snapshot(dataset_copy)
    for command, extra in (("evaluate", []), ("gallery", ["k=1"])):
        for target in (folder, dataset_copy):
            for overwrite in ("false", "true"):
                assert main([command, f"reward={trained_reward}", f"data={small_dataset}",
                             f"out={target}", f"overwrite={overwrite}", *extra]) == 2
                assert "replaces only an earlier" in one_line_error(capsys, command)
    assert snapshot(folder) == before_folder and snapshot(dataset_copy) == before_data


def test_score_never_overwrites_a_file_it_did_not_write(trained_reward, small_dataset,
                                                        dataset_copy, folder, capsys):
    shard = dataset_copy / "steps" / "train-00000-of-00001.parquet"
    before = snapshot(dataset_copy)
    for target, why in ((shard, "lies inside the dataset"), (folder, "holds")):
        for overwrite in ("false", "true"):
            assert main(["score", "reward=true", f"data={small_dataset}", f"out={target}",
                         f"overwrite={overwrite}"]) == 2
            assert why in one_line_error(capsys, "score")
    assert snapshot(dataset_copy) == before and (folder / "notes.txt").read_text() == "keep me"


def test_train_reward_never_writes_into_or_deletes_a_dataset(dataset_copy, capsys):
    before = snapshot(dataset_copy)
    for extra in ([], ["overwrite=true"]):
        assert main(["train-reward", f"data={dataset_copy}", f"out={dataset_copy}",
                     *TINY_TRAIN, *extra]) == 2
        assert "an input of this command" in one_line_error(capsys, "train-reward")
    assert snapshot(dataset_copy) == before


def test_own_output_is_replaced_only_with_overwrite(trained_reward, small_dataset, tmp_path,
                                                    capsys):
    out = tmp_path / "report"
    args = ["evaluate", f"reward={trained_reward}", f"data={small_dataset}", f"out={out}"]
    assert main(args) == 0
    assert output_kind(out) is Kind.REPORT
    capsys.readouterr()
    assert main(args) == 2
    assert "pass overwrite=true" in one_line_error(capsys, "evaluate")
    (out / "report.md").write_text("old")
    assert main([*args, "overwrite=true"]) == 0
    assert (out / "report.md").read_text() != "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no leftovers


def test_default_report_paths_name_dataset_split_and_teacher(trained_reward, small_dataset,
                                                             tmp_path):
    second = tmp_path / "second"
    shutil.copytree(small_dataset, second)
    for data in (small_dataset, second):
        for split, teacher in (("test", "oracle"), ("train", "mistake")):
            assert main(["evaluate", f"reward={trained_reward}", f"data={data}",
                         f"split={split}", f"teacher={teacher}", "overwrite=true"]) == 0
    assert {p.name for p in trained_reward.glob("eval-*")} >= {
        f"eval-{d.name}-{s}-{t}" for d in (small_dataset, second)
        for s, t in (("test", "oracle"), ("train", "mistake"))}


def test_publish_dry_run_tree_does_not_share_files_with_the_dataset(dataset_copy, tmp_path):
    tree = tmp_path / "tree"
    assert main(["publish", f"data={dataset_copy}", "repo_id=me/data", "dry_run=true",
                 f"out={tree}"]) == 0
    shard = "steps/train-00000-of-00001.parquet"
    assert (tree / shard).read_bytes() == (dataset_copy / shard).read_bytes()
    assert os.stat(tree / shard).st_ino != os.stat(dataset_copy / shard).st_ino
    (tree / shard).write_bytes(b"edited")
    assert (dataset_copy / shard).read_bytes() != b"edited"


def test_replacing_is_one_atomic_exchange_and_leaves_nothing(tmp_path):
    out = tmp_path / "report"
    for version in ("old", "new"):
        with atomic_directory(out, Kind.REPORT, overwrite=True) as tmp:
            (tmp / "version").write_text(version)
            assert (out / "version").read_text() == "old" if out.exists() else True
    assert (out / "version").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_failed_write_leaves_the_old_version(tmp_path):
    out = tmp_path / "report"
    with atomic_directory(out, Kind.REPORT) as tmp:
        (tmp / "version").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(out, Kind.REPORT, overwrite=True) as tmp:
        (tmp / "version").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "version").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_leftovers_of_dead_writers_are_cleaned_by_the_next(tmp_path):
    out = tmp_path / "report"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [out.with_name(f".report.tmp-{dead}"), out.with_name(f".report.old-{dead}")]
    for path in stale:
        path.mkdir()
        (path / "half").write_text("x")
    live = out.with_name(f".report.tmp-{os.getpid()}")
    live.mkdir()
    assert sorted(clean_leftovers(out)) == sorted(stale)
    assert live.exists()
    live.rmdir()
    with atomic_directory(out, Kind.REPORT) as tmp:
        (tmp / "x").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_second_writer_to_a_busy_path_is_refused(tmp_path, capsys):
    out = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from rrm_data.io import output_lock\n"
         f"with output_lock(Path({str(out)!r})):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["collect", *overrides(**{**SMALL, "out": out})]) == 2
        assert "is busy" in one_line_error(capsys, "collect")
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # a killed holder's lock is free again
        pass
    assert not out.exists()


def test_nothing_is_written_into_the_hugging_face_cache(small_dataset, tmp_path, monkeypatch,
                                                        capsys):
    cache = tmp_path / "hf-cache"
    snapshot_dir = cache / "datasets--me--data" / "snapshots" / "abc"
    shutil.copytree(small_dataset, snapshot_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    before = snapshot(cache)
    assert main(["render", f"data={snapshot_dir}", "camera=corner"]) == 2
    assert "Hugging Face" in one_line_error(capsys, "render")
    assert main(["evaluate", "reward=true", f"data={small_dataset}",
                 f"out={cache / 'report'}"]) == 2
    assert "Hugging Face cache" in one_line_error(capsys, "evaluate")
    assert snapshot(cache) == before


@pytest.mark.slow
def test_train_reward_saves_a_checkpoint_on_ctrl_c_and_resumes(small_dataset, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rrm_data.cli", "train-reward", f"data={small_dataset}",
               f"out={out}", *TINY_TRAIN[:-2], "trainer.max_epochs=400",
               "trainer.enable_progress_bar=false"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").exists():  # a checkpoint every epoch
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert "resume=true" in last and "interrupted in epoch" in last
    assert not (out / "reward").exists()
    epoch = int(last.split("interrupted in epoch ")[1].split(";")[0])
    resumed = [a for a in command[4:] if not a.startswith("trainer.max_epochs")]
    assert main(["train-reward", *resumed, f"trainer.max_epochs={epoch + 1}", "resume=true"]) == 0
    assert (out / "reward" / "reward.json").is_file()


def test_resume_refuses_changed_settings(trained_reward, small_dataset, capsys):
    before = snapshot(trained_reward)
    assert main(["train-reward", f"data={small_dataset}", f"out={trained_reward}",
                 *TINY_TRAIN, "data.teacher=mistake", "resume=true"]) == 2
    assert "data.teacher" in one_line_error(capsys, "train-reward")
    assert snapshot(trained_reward) == before
