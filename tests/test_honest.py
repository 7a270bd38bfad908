"""Bad input refused up front in one line, and statistics that count what they claim:
pairs drawn without replacement, validation on held-out episodes, per-teacher agreement."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL, one_line_error, overrides

from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.training.datamodule import PreferenceDataModule
from rrm_data.training.pairs import step_episodes


@pytest.mark.parametrize(("args", "message"), [
    (["segments=-3"], "segments must be at least 1"),
    (["segments=0"], "segments must be at least 1"),
    (["teachers=[]"], "teachers is empty"),
    (["policy=[]"], "policy is empty"),
    (["task=[]"], "task is empty"),
    (["seed=-1"], "seed must be at least 0, got -1"),
    (["teacher_params.mistake.epsilon=abc"], "must be a number in [0, 1], got 'abc'"),
    (["teacher_params.mistake.epsilon=2"], "must be a number in [0, 1], got 2"),
    (["teacher_params.stochastic.beta=.nan"], "teacher_params.stochastic.beta"),
    (["teacher_params.stochastic=5"], "teacher_params.stochastic must hold named parameters"),
    (["teacher_params.myopic.gamma=0"], "must be a number in (0, 1]"),
    (["pairs=100000000000"], "distinct pairs, got 100000000000"),
    (["pairs=2000"], "segments make at most 1770 distinct pairs"),
])
def test_collect_refuses_bad_settings_before_any_rollout(args, message, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["collect", *overrides(**{**SMALL, "out": out}), *args]) == 2
    assert message in one_line_error(capsys, "collect")
    assert list(tmp_path.iterdir()) == []


def test_collect_refuses_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["collect", *overrides(**SMALL), "out=."]) == 2
    assert "current directory" in one_line_error(capsys, "collect")
    assert list(tmp_path.iterdir()) == []


def test_an_unclosed_list_is_one_line(small_dataset, capsys):
    assert main(["evaluate", "reward=[runs/demo", f"data={small_dataset}"]) == 2
    assert "malformed override" in one_line_error(capsys, "evaluate")


def test_pairs_are_distinct_and_too_many_are_refused_with_the_maximum(small_dataset, tmp_path,
                                                                      capsys):
    dataset = open_dataset(small_dataset)
    for split in ("train", "test"):
        prefs = dataset.preferences(split).to_pandas()
        oracle = prefs[prefs.teacher == "oracle"]
        keys = {tuple(sorted(p)) for p in zip(oracle.segment_a, oracle.segment_b, strict=True)}
        assert len(keys) == len(oracle) == dataset.info.counts.pairs[split]
    # 2 held-out episodes × 6 segments make 36 test pairs of different episodes; 45 asked.
    # Known only once segments are cut (after the rollouts, which stay resumable).
    capsys.readouterr()
    assert main(["collect", *overrides(**{**SMALL, "pairs": 225, "out": tmp_path / "d"})]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rrm-data collect: error: 45 test pairs asked for")
    assert "make only 36 distinct pairs" in last


def test_validation_holds_out_training_episodes_by_default(small_dataset):
    dataset = open_dataset(small_dataset)
    dm = PreferenceDataModule(dataset, ["observation.state", "action"], batch_size=8)
    dm.setup("fit")
    assert dm.train_pairs is not None and dm.val_pairs is not None
    assert len(dm.train_pairs) > 0 and len(dm.val_pairs) > 0
    episode = step_episodes(dataset)
    train_eps = set(episode[dm.train_pairs.first].ravel())
    val_eps = set(episode[dm.val_pairs.first].ravel())
    test = set(dataset.info.labelling["test_episodes"])
    held = val_eps - train_eps
    assert held and held.isdisjoint(test) and val_eps.isdisjoint(test)
    assert all(set(pair) & held for pair in map(tuple, episode[dm.val_pairs.first]))
    assert len(dm.train_pairs) + len(dm.val_pairs) == 96


def test_score_prints_agreement_per_teacher(small_dataset, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    assert main(["score", "reward=true", f"data={small_dataset}", "split=train",
                 f"out={out}"]) == 0
    lines = capsys.readouterr().err
    for teacher in ("oracle", "mistake", "stochastic"):
        assert f"true vs {teacher}: agreement on non-tie labels" in lines
    assert "true vs oracle: agreement on non-tie labels 1.000" in lines


def test_a_missing_split_lists_those_that_exist(small_dataset, capsys):
    assert main(["evaluate", "reward=true", f"data={small_dataset}", "split=val"]) == 2
    assert "its splits: test, train" in one_line_error(capsys, "evaluate")


def test_val_split_keeps_test_numbers_apart(small_dataset: Path) -> None:
    dataset = open_dataset(small_dataset)
    default = PreferenceDataModule(dataset, ["action"], batch_size=8)
    test = PreferenceDataModule(dataset, ["action"], batch_size=8, val_split="test")
    default.setup("fit")
    test.setup("fit")
    assert default.val_pairs is not None and test.val_pairs is not None
    assert not np.isin(default.val_pairs.first, test.val_pairs.first).any()


def test_info_counts_distinct_pairs_segments_and_episodes(small_dataset, capsys):
    assert main(["info", f"data={small_dataset}"]) == 0
    out = capsys.readouterr().out
    dataset = open_dataset(small_dataset)
    test = dataset.preferences("test").to_pandas()
    segments = dataset.table("segments").to_pandas().set_index("segment_index")
    used = set(test.segment_a) | set(test.segment_b)
    episodes = set(segments.loc[sorted(used), "episode_index"])
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith("test "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells == ["test", "24", "24", str(len(used)), str(len(episodes))]


def test_agreement_interval_counts_episodes(small_dataset, tmp_path):
    import json

    from rrm_data.evaluation.metrics import episode_bootstrap

    assert main(["evaluate", "reward=prior:gripper_object", f"data={small_dataset}",
                 f"out={tmp_path / 'r'}"]) == 0
    view = json.loads((tmp_path / "r" / "report.json").read_text())["views"]
    agreement = view["prior:gripper_object"]["agreement"]
    boot = agreement["bootstrap"]
    assert boot["episodes"] == 2  # the test split's pairs come from its two held-out episodes
    assert 0.0 <= boot["low"] <= agreement["value"] <= boot["high"] <= 1.0
    # all pairs on one pair of episodes: resampling episodes leaves the value as it is
    same = episode_bootstrap(np.array([1, 0, 1, 1.0]), np.zeros(4, int), np.ones(4, int))
    assert same["low"] == same["high"] == 0.75 and same["episodes"] == 2


def test_help_shows_the_recipe_values(capsys):
    assert main(["train-reward", "--help"]) == 0
    out = capsys.readouterr().out
    assert "'max_epochs': 3" in out  # recipe state_residual, not the dataclass's 20
    assert main(["train-reward", "--help", "recipe=state_mlp"]) == 0
    assert "'max_epochs': 5" in capsys.readouterr().out


def test_help_read_by_head_ends_quietly() -> None:
    """A reader that stops early (`rrm-data train-sac --help | head -1`) is no error to
    print: no traceback on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "rrm_data.cli", "train-sac", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"usage: rrm-data train-sac")
    proc.stdout.close()  # as head does after its line
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr.decode()


def test_without_a_test_split_the_message_does_not_blame_test_fraction(tmp_path, capsys):
    argv = overrides(**{**SMALL, "pairs": 1700, "test_fraction": 0, "out": tmp_path / "d"})
    assert main(["collect", *argv]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1700 train pairs asked for" in last and "test_fraction" not in last


def test_training_on_small_data_keeps_lightning_warnings_out(small_dataset, tmp_path):
    """The program's real stderr, in its own process: pytest's warning capture and filters
    would hide a warning that a user sees."""
    command = [sys.executable, "-m", "rrm_data.cli", "train-reward", f"data={small_dataset}",
               f"out={tmp_path / 'run'}", "model.hidden=16", "model.members=1",
               "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "smaller than the logging interval" not in result.stderr
    assert "Warning" not in result.stderr, result.stderr[-2000:]
    # nor any other notice a library raises (printed as "<file>.py:<line>: <message>")
    assert not re.search(r"\.py:\d+: ", result.stderr), result.stderr[-2000:]


def test_a_resumed_bar_counts_only_this_runs_items():
    import time

    from rich.progress import Progress

    from rrm_data.progress import _RateColumn

    with Progress(disable=True) as bar:  # 6 episodes restored, 2 done now, in about 10 s
        task_id = bar.add_task("collect", total=10, completed=6, extra=0, done_before=6,
                               started=time.monotonic() - 10.0)
        bar.update(task_id, advance=2)
        text = _RateColumn("completed", "episodes").render(bar.tasks[0]).plain
    assert 0.19 < float(text.split()[0]) <= 0.2  # 2 / 10 s, not 8 / 10 s


def test_overwriting_an_output_file_leaves_no_old_copy(small_dataset, tmp_path):
    out = tmp_path / "scores.parquet"
    for extra in ([], ["overwrite=true"]):
        assert main(["score", "reward=true", f"data={small_dataset}", f"out={out}",
                     *extra]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
