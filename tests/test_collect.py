"""`rrm-data collect`: same bytes for the same seed, resume after interrupts, workers, quality
of the policy mixture, and clear refusals of bad input that leave nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import SMALL, interruptible, leftovers, one_line_error, overrides, parquet_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

import rrm_data.collection.collector as collector
from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import open_dataset
from rrm_data.sim.policies import parse_policy
from rrm_data.workflows.collect import DEFAULT_POLICIES


def run_collect(out: Path, **values: object) -> int:
    return main(["collect", *overrides(**{**SMALL, **values, "out": out})])


def test_same_seed_gives_identical_bytes(small_dataset, tmp_path):
    assert run_collect(tmp_path / "again") == 0
    assert parquet_bytes(tmp_path / "again") == parquet_bytes(small_dataset)


@pytest.mark.slow
def test_other_seed_gives_other_steps(small_dataset, tmp_path):
    assert run_collect(tmp_path / "seed1", seed=1) == 0
    ours, theirs = parquet_bytes(tmp_path / "seed1"), parquet_bytes(small_dataset)
    assert ours.keys() == theirs.keys()
    steps = "steps/train-00000-of-00001.parquet"
    assert ours[steps] != theirs[steps]
    # After a seed-0 run in this process, seed 1 gives what a fresh process gives.
    fresh = tmp_path / "fresh"
    command = [sys.executable, "-m", "rrm_data.cli", "collect",
               *overrides(**{**SMALL, "seed": 1, "out": fresh})]
    subprocess.run(command, check=True, capture_output=True)
    assert parquet_bytes(fresh) == ours


@pytest.mark.slow
def test_two_workers_give_the_same_bytes_as_one(small_dataset, tmp_path):
    assert run_collect(tmp_path / "workers2", workers=2) == 0
    assert parquet_bytes(tmp_path / "workers2") == parquet_bytes(small_dataset)


# --- interrupt and resume ------------------------------------------------------------------

RESUME = {"episodes": 8, "episode_steps": 150, "policy": ["expert:0.5", "random"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("uninterrupted") / "data"
    assert run_collect(out, **RESUME) == 0
    return parquet_bytes(out)


def interrupt(out: Path, sig: signal.Signals, after_episodes: int = 2) -> list[str]:
    """Start collect in a subprocess, send ``sig`` once some episodes are done; return them."""
    command = [sys.executable, "-m", "rrm_data.cli", "collect",
               *overrides(**{**SMALL, **RESUME, "out": out})]
    episodes = out.with_name(f".{out.name}.partial") / "episodes"
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while len(list(episodes.glob("*.arrow"))) < after_episodes:
        assert proc.poll() is None, f"collect ended before it was interrupted: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "collect made no progress"
        assert not out.exists(), "out appeared before collect finished"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
    if sig == signal.SIGINT:
        assert "interrupted; run the same command again to resume" in stderr
    assert not out.exists()
    return sorted(p.name for p in episodes.glob("*.arrow"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_collect_resumes_to_the_same_dataset(sig, uninterrupted, tmp_path,
                                                         monkeypatch):
    out = tmp_path / "data"
    done = interrupt(out, sig)
    assert 2 <= len(done) < RESUME["episodes"]

    rollouts = []
    original = collector.rollout

    def counted_rollout(env, plan, *args):
        rollouts.append(plan.index)
        return original(env, plan, *args)

    monkeypatch.setattr(collector, "rollout", counted_rollout)
    assert run_collect(out, **RESUME) == 0
    assert len(rollouts) == RESUME["episodes"] - len(done), "finished episodes were redone"
    assert parquet_bytes(out) == uninterrupted
    assert not out.with_name(f".{out.name}.partial").exists()
    assert leftovers(out) == []


def test_failure_while_writing_leaves_nothing_at_out_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "data"

    def broken_card(*args, **kwargs) -> str:
        raise OSError("disk full")

    monkeypatch.setattr("rrm_data.dataset.writer.render_card", broken_card)
    with pytest.raises(OSError, match="disk full"):
        run_collect(out, episodes=4, pairs=0, test_fraction=0)
    assert not out.exists() and leftovers(out) == []
    monkeypatch.undo()
    assert run_collect(out, episodes=4, pairs=0, test_fraction=0) == 0
    assert open_dataset(out).info.counts.episodes == 4


def test_same_command_twice_is_a_no_op(small_dataset, capsys):
    before = parquet_bytes(small_dataset)
    assert main(["collect", *overrides(**{**SMALL, "out": small_dataset})]) == 0
    assert "already holds this dataset" in " ".join(capsys.readouterr().err.split())
    assert parquet_bytes(small_dataset) == before


# --- quality of the policy mixture -----------------------------------------------------------

def test_expert_succeeds_and_random_does_not(make_dataset):
    # The noise-free expert presses the button within about 60 steps.
    data = open_dataset(make_dataset(episodes=20, episode_steps=120, policy=["expert:0", "random"]))
    episodes = data.table("episodes").to_pandas()
    by_policy = episodes.groupby("policy")
    success, mean_return = by_policy["success"].mean(), by_policy["return"].mean()
    assert (by_policy.size() == 10).all()
    assert success["expert"] >= 0.9
    assert success["random"] <= 0.1
    assert mean_return["expert"] > mean_return["random"]
    assert set(episodes["policy_noise"]) == {0.0}


def test_epsilon_replaces_that_share_of_the_experts_actions(make_dataset):
    from metaworld.policies import ENV_POLICY_MAP

    data = open_dataset(make_dataset(episodes=4, episode_steps=100, pairs=10,
                                     policy=["epsilon:0.5"]))
    episodes = data.table("episodes").to_pandas()
    assert set(episodes["policy"]) == {"epsilon"}
    assert set(episodes["policy_noise"]) == {0.5}
    steps = data.table("steps", columns=[fmt.STATE, fmt.ACTION])
    states = np.asarray(steps.column(fmt.STATE).to_pylist())
    actions = np.asarray(steps.column(fmt.ACTION).to_pylist())
    expert = ENV_POLICY_MAP["button-press-v3"]()
    experts = np.stack([np.clip(expert.get_action(s), -1, 1) for s in states])
    from_expert = np.isclose(actions, experts, atol=1e-3).all(axis=1).mean()
    # 400 steps, each the expert's with probability 0.5: within 4 binomial sd (±0.1)
    assert abs(from_expert - 0.5) < 0.1
    assert (np.abs(actions) <= 1).all()


def test_policy_and_noise_are_recorded_per_episode(small_dataset):
    episodes = open_dataset(small_dataset).table("episodes").to_pandas()
    mixture = [parse_policy(p) for p in DEFAULT_POLICIES]
    expected = [(mixture[i % len(mixture)].kind, mixture[i % len(mixture)].noise)
                for i in range(SMALL["episodes"])]
    recorded = list(zip(episodes["policy"], episodes["policy_noise"], strict=True))
    assert recorded == [(kind, pytest.approx(noise)) for kind, noise in expected]


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["task=button-pres-v3"],
     "unknown task 'button-pres-v3'; known: the 50 Meta-World v3 tasks; "
     "did you mean button-press-v3"),
    (["teachers=[oracle,psychic]"], "unknown teacher 'psychic'"),
    (["policy=[expert:0,greedy]"], "unknown policy 'greedy'"),
    (["policy=[expert:lots]"], "noise must be a number"),
    (["policy=[epsilon:1.5]"], "noise must lie in [0, 1]"),
    (["episodes"], "malformed override 'episodes'"),
    (["episodes=abc"], "invalid config value"),
    (["episods=10"], "did you mean: episodes"),
    (["size=84"], "did you mean: image_size"),
    (["shard=2/2"], "need 0 <= i < N"),
    (["episodes=3"], "too few to sample pairs from"),
    (["segment_length=80", "episode_steps=60"], "exceeds episode_steps"),
])
def test_bad_input_gets_one_clear_line(args, message, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["collect", *args, f"out={out}"]) == 2
    assert message in one_line_error(capsys, "collect")
    assert list(tmp_path.iterdir()) == []


def test_out_holding_another_dataset_is_refused_unless_overwrite(small_dataset, tmp_path,
                                                                 capsys):
    out = tmp_path / "data"
    assert run_collect(out, episodes=4, pairs=0, test_fraction=0) == 0
    before = parquet_bytes(out)
    assert run_collect(out, episodes=4, pairs=0, test_fraction=0, seed=1) == 2
    assert "already holds a different dataset" in capsys.readouterr().err
    assert parquet_bytes(out) == before

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    assert run_collect(tmp_path / "notes", episodes=4, pairs=0, test_fraction=0) == 2
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"

    assert run_collect(out, episodes=4, pairs=0, test_fraction=0, seed=1, overwrite=True) == 0
    assert parquet_bytes(out) != before
    assert open_dataset(out).info.collection["seed"] == 1
    assert leftovers(out) == []


def test_shard_does_not_pass_for_another_shard(tmp_path, capsys):
    out = tmp_path / "shard"
    assert run_collect(out, shard="0/2") == 0
    assert run_collect(out, shard="1/2") == 2
    assert "already holds a different dataset" in capsys.readouterr().err


def test_the_work_folder_of_another_config_is_not_reused(tmp_path):
    out = tmp_path / "data"
    partial = out.with_name(f".{out.name}.partial")
    (partial / "episodes").mkdir(parents=True)
    (partial / "collection.json").write_text('{"seed": 123}')
    (partial / "episodes" / "episode-0000000.arrow").write_bytes(b"not arrow")
    assert run_collect(out, episodes=4, pairs=0, test_fraction=0) == 0
    assert not partial.exists()
    lengths = open_dataset(out).table("episodes").column("length").to_numpy()
    assert np.all(lengths == SMALL["episode_steps"])
    assert os.listdir(tmp_path) == ["data"]


def test_pairs_the_segments_cannot_make_are_refused_before_any_rollout(tmp_path, capsys):
    """10 episodes of 1 segment, test_fraction 0.2: 2 test episodes make 1 test pair of
    different episodes. pairs=8 asks round(1.6) = 2 test pairs: refused up front (no work
    folder); pairs=7 asks round(1.4) = 1 and is collected."""
    small = {"episodes": 10, "segments_per_episode": 1, "episode_steps": 20, "segment_length": 10}
    out = tmp_path / "data"
    assert run_collect(out, **small, pairs=8) == 2
    line = one_line_error(capsys, "collect")
    assert "2 test pairs asked for, but its 2 segments make only 1 distinct pairs" in line
    assert sorted(os.listdir(tmp_path)) == []  # no rollout happened
    assert run_collect(out, **small, pairs=7) == 0
    assert open_dataset(out).info.counts.pairs == {"train": 6, "test": 1}


def test_segments_longer_than_meta_worlds_episodes_are_refused(tmp_path, capsys):
    """Meta-World ends every episode at 500 steps, whatever episode_steps asks."""
    from rrm_data.sim.envs import EPISODE_LIMIT, make_env, sawyer_env
    assert sawyer_env(make_env("button-press-v3", 0)).max_path_length == EPISODE_LIMIT
    assert run_collect(tmp_path / "d", episodes=2, pairs=0, test_fraction=0, episode_steps=600,
                       segment_length=550) == 2
    assert "segment_length=550 exceeds 500 steps" in one_line_error(capsys, "collect")
    assert os.listdir(tmp_path) == []


@settings(max_examples=60, deadline=None)
@given(episodes=st.integers(1, 9), per_episode=st.integers(1, 4),
       segments=st.one_of(st.none(), st.integers(1, 20)), pairs=st.integers(0, 40),
       test_fraction=st.sampled_from([0.0, 0.2, 0.5]), distinct=st.booleans(),
       seed=st.integers(0, 3))
def test_the_up_front_pair_check_agrees_with_the_sampler(episodes, per_episode, segments, pairs,
                                                        test_fraction, distinct, seed):
    """check_pair_budget refuses exactly the settings build_tables refuses after rollouts
    (episodes of 12 steps, rewards of no consequence)."""
    from rrm_data.errors import RrmError
    from rrm_data.labels.tables import LabelSpec, build_tables, check_pair_budget

    spec = LabelSpec(seed=seed, segment_length=4, segments_per_episode=per_episode,
                     segments=segments, pairs=pairs, test_fraction=test_fraction,
                     distinct_episodes=distinct)
    steps = [pa.table({fmt.REWARD: pa.array(np.arange(12, dtype=np.float32) + e)})
             for e in range(episodes)]
    rows = [{"episode_index": e, "seed": 100 + e, "length": 12, "task": "reach-v3",
             "rand_vec": [0.0], "policy": "random", "policy_noise": 0.0, "return": 0.0,
             "success": False} for e in range(episodes)]

    def refusal(check) -> str | None:
        try:
            check()
        except RrmError as exc:
            return str(exc)
        return None

    assert refusal(lambda: check_pair_budget(np.arange(episodes), spec)) == \
        refusal(lambda: build_tables(steps, rows, spec))
