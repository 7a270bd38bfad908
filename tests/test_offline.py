"""train-offline: IQL on the true reward and CPL on the labels end to end, the saved policy
rolled out by collect, resume after kill -9 with the weights of an uninterrupted run, the CPL
loss and reward scaling against independent computations, and one-line errors before any
work. Runs are tiny (a few hundred gradient steps of small networks on SMALL)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import edit_info, one_line_error, overrides, retasked_reward

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.dataset.reader import open_dataset
from rrm_data.rl.offline.cpl import CPL, CPLSettings
from rrm_data.rl.offline.data import SegmentPairs, normalize_rewards
from rrm_data.rl.offline.losses import cpl_loss
from rrm_data.rl.offline.networks import GaussianActor
from rrm_data.rl.offline.policy import load_offline_policy
from rrm_data.rl.sac import EVAL_SEED_OFFSET, evaluate
from rrm_data.rl.wrapper import task_env
from rrm_data.sim.policies import make_policy, parse_policy

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
# Small networks, short evaluation episodes: seconds on 2 cores.
QUICK = {"hidden": [32, 32], "batch_size": 32, "cpl.batch_size": 8, "eval_episodes": 1,
         "episode_steps": 30}


def _eval_rows(run: Path) -> list[dict[str, str]]:
    with (run / "eval.csv").open() as f:
        return list(csv.DictReader(f))


def test_iql_true_reward_end_to_end(small_dataset: Path, tmp_path: Path) -> None:
    """IQL on the stored true reward trains, evaluates on train-sac's fixed episodes, and
    saves a policy that collect rolls out and that re-evaluates to the same numbers."""
    out = tmp_path / "iql"
    assert main(["train-offline", *overrides(**QUICK, data=small_dataset, steps=200,
                                             eval_every=100, out=out)]) == 0
    rows = _eval_rows(out)
    assert [int(r["timesteps"]) for r in rows] == [100, 200]
    summary = json.loads((out / "summary.json").read_text())
    stored = step_columns(open_dataset(small_dataset), [fmt.REWARD])[fmt.REWARD]
    assert summary["transitions"] == len(stored) and summary["steps"] == 200
    assert summary["reward_scale"] == pytest.approx({"min": stored.min(), "max": stored.max()})
    # the saved policy is the trained one: evaluating it again gives the final row
    policy = load_offline_policy(out)
    task, seed = summary["task"], EVAL_SEED_OFFSET
    again = evaluate(policy, task_env(task, seed, 30), 1, seed)
    assert again["true_return"] == pytest.approx(float(rows[-1]["true_return"]))
    acting = make_policy(task, parse_policy(f"offline:{out}"))
    action = acting.act(np.zeros(39), np.random.default_rng(0))
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)


def test_cpl_end_to_end(small_dataset: Path, tmp_path: Path) -> None:
    """CPL trains on the train split's oracle pairs and evaluates."""
    out = tmp_path / "cpl"
    assert main(["train-offline", *overrides(**QUICK, algo="cpl", data=small_dataset,
                                             steps=100, out=out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    prefs = open_dataset(small_dataset).preferences("train").to_pandas()
    assert summary["pairs"] == int((prefs["teacher"] == "oracle").sum())
    assert summary["segment_length"] == 20 and summary["steps"] == 100
    assert [int(r["timesteps"]) for r in _eval_rows(out)] == [100]


def test_td3bc_end_to_end(small_dataset: Path, tmp_path: Path) -> None:
    """TD3+BC trains on the same transitions and reward as IQL, its actor stepping every
    second update, and saves a policy collect rolls out."""
    out = tmp_path / "td3bc"
    assert main(["train-offline", *overrides(**QUICK, algo="td3bc", data=small_dataset,
                                             steps=101, eval_every=0, out=out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    stored = step_columns(open_dataset(small_dataset), [fmt.REWARD])[fmt.REWARD]
    assert summary["algo"] == "td3bc" and summary["transitions"] == len(stored)
    assert set(summary["losses"]) == {"loss_qvalue"}  # step 101: a Q-only step
    assert [int(r["timesteps"]) for r in _eval_rows(out)] == [101]
    torch.manual_seed(0)  # the actor train-offline seed=0 starts from: the saved one moved
    start = GaussianActor(STATE_DIM, ACTION_DIM, QUICK["hidden"]).state_dict()
    saved = _weights(out)
    assert start.keys() == saved.keys()
    assert not all(torch.equal(start[k], saved[k]) for k in start)
    action = make_policy(summary["task"], parse_policy(f"offline:{out}")).act(
        np.zeros(39), np.random.default_rng(0))
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)


def test_cpl_loss_against_numpy() -> None:
    """Eq. (5) with bias λ, discount and BC mix, recomputed with numpy from its definition."""
    rng = np.random.default_rng(0)
    lp = rng.normal(-2, 1, (5, 2, 7))
    label = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    alpha, bias, gamma, beta = 0.1, 0.5, 0.9, 0.25
    adv = alpha * (lp * gamma ** np.arange(7)).sum(-1)
    a, b = adv[:, 0], adv[:, 1]
    p_a = np.exp(a) / (np.exp(a) + np.exp(bias * b))  # preferred a: exp A⁺ / (exp A⁺ + exp λA⁻)
    p_b = np.exp(b) / (np.exp(b) + np.exp(bias * a))
    cpl = np.mean(-label * np.log(p_a) - (1 - label) * np.log(p_b))
    expected = (1 - beta) * cpl + beta * np.mean(-lp)
    got = cpl_loss(torch.tensor(lp), torch.tensor(label), alpha, bias, gamma, beta)
    assert float(got["loss"]) == pytest.approx(expected, rel=1e-9)
    assert float(got["loss_cpl"]) == pytest.approx(cpl, rel=1e-9)


def test_cpl_fits_bc_then_cpl_with_a_fresh_adam() -> None:
    """CPL's schedule against plain torch: BC (log π = −‖tanh(loc) − a‖²) for the pretrain
    share, then the CPL loss with a new Adam whose rate rises linearly; the actor's scale
    rows never move (log π does not read them)."""
    gen = torch.Generator().manual_seed(0)
    pairs = SegmentPairs(rows=torch.randint(0, 40, (6, 2, 5), generator=gen),
                         label=torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 1.0]),
                         observation=torch.randn(40, STATE_DIM, generator=gen),
                         action=torch.rand(40, ACTION_DIM, generator=gen) * 2 - 1)
    settings = CPLSettings(pretrain=0.5, warmup=0.25, alpha=0.5)
    torch.manual_seed(0)
    actor = GaussianActor(STATE_DIM, ACTION_DIM, [16])
    reference = GaussianActor(STATE_DIM, ACTION_DIM, [16])
    reference.load_state_dict(actor.state_dict())
    start = {k: v.clone() for k, v in actor.state_dict().items()}
    learner = CPL(actor, pairs, settings, learning_rate=1e-2, steps=8)
    batches = [torch.randint(0, 6, (4,), generator=gen) for _ in range(8)]

    def log_probs(rows: torch.Tensor) -> torch.Tensor:
        steps = pairs.rows[rows]
        mean = torch.tanh(reference.net(pairs.observation[steps])[..., :ACTION_DIM])
        return -((mean - pairs.action[steps]) ** 2).sum(-1)

    adam = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for k, rows in enumerate(batches):
        if k == 4:
            adam = torch.optim.Adam(reference.parameters(), lr=1e-2)
        if k < 4:
            loss = -log_probs(rows).mean()
        else:
            lp = log_probs(rows)
            a, b = (0.5 * lp.sum(-1)).unbind(-1)
            y = pairs.label[rows]
            loss = (y * torch.nn.functional.softplus(-(a - 0.5 * b))
                    + (1 - y) * torch.nn.functional.softplus(-(b - 0.5 * a))).mean()
            for group in adam.param_groups:
                group["lr"] = 1e-2 * min(1.0, (k - 3) / 2)
        adam.zero_grad()
        loss.backward()
        adam.step()
        learner.update(rows)
        for name, value in reference.state_dict().items():
            assert torch.allclose(actor.state_dict()[name], value, atol=1e-6), (k, name)
    last = actor.state_dict()
    assert torch.equal(last["net.2.weight"][ACTION_DIM:], start["net.2.weight"][ACTION_DIM:])
    assert not torch.equal(last["net.2.weight"][:ACTION_DIM], start["net.2.weight"][:ACTION_DIM])


def test_reward_scaling() -> None:
    scaled, scale = normalize_rewards(np.array([2.0, 4.0, 3.0]))
    assert scaled.tolist() == [0.0, 1.0, 0.5] and scale == {"min": 2.0, "max": 4.0}
    assert normalize_rewards(np.zeros(4))[0].tolist() == [0.0] * 4  # zero stays zero


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "policy.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("algo", ["iql", "td3bc", "cpl"])
def test_resume_after_kill_9(algo: str, small_dataset: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after its first checkpoint, the same command resumes there and ends with the
    weights (and evaluations) of an uninterrupted run (TD3+BC: its actor's delay phase
    included, the checkpoints fall on odd steps; CPL: its switch from BC to CPL, at step
    120, falls after the first checkpoint); other settings are refused and keep the
    checkpoint."""
    every = 101 if algo == "td3bc" else 100
    values = {**QUICK, "algo": algo, "data": small_dataset, "steps": 3 * every,
              "checkpoint_every": every, "eval_every": every}
    whole = tmp_path / "whole"
    assert main(["train-offline", *overrides(**values, out=whole)]) == 0

    out = tmp_path / "run"
    args = [sys.executable, "-m", "rrm_data.cli", "train-offline", *overrides(**values, out=out)]
    state = out.with_name(f".{out.name}.offline") / "checkpoint" / "state.pt"
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not state.exists():
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert state.exists() and not out.exists()
    saved = state.read_bytes()
    capsys.readouterr()
    assert main(["train-offline", *overrides(**{**values, "seed": 1}, out=out)]) == 2
    assert "holds a checkpoint of a run with other settings (seed)" in one_line_error(
        capsys, "train-offline")
    assert state.read_bytes() == saved
    assert main(args[3:]) == 0  # the same command, in this process
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] and every <= summary["resumed_from"][0] < 3 * every
    resumed, uninterrupted = _weights(out), _weights(whole)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    assert _eval_rows(out) == _eval_rows(whole)
    assert not out.with_name(f".{out.name}.offline").exists()


def _no_sim(dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "no-sim"
    shutil.copytree(dataset, copy)
    edit_info(copy, lambda info: [info["features"]["steps"].pop(c) for c in fmt.SIM_COLUMNS])
    return copy


@pytest.mark.parametrize("case", ["unknown reward", "no physics state", "other task",
                                  "empty split", "no such split"])
def test_bad_input_one_line(case: str, small_dataset: Path, trained_reward: Path,
                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    given: dict[str, object] = {"data": small_dataset}
    expected = {"unknown reward": "unknown reward 'nonsense'",
                "no physics state": "steps have no sim.",
                "other task": "was trained on reach-v3",
                "empty split": "no labels of teacher 'human'",
                "no such split": "no 'valid' preferences"}[case]
    if case == "unknown reward":
        given["reward"] = "nonsense"
    elif case == "no physics state":
        given["data"] = _no_sim(small_dataset, tmp_path)
    elif case == "other task":
        given["reward"] = retasked_reward(trained_reward, tmp_path / "r", "reach-v3")
    elif case == "empty split":
        given.update(algo="cpl", teacher="human")
    else:
        given.update(algo="cpl", split="valid")
    out = tmp_path / "out"
    started = time.perf_counter()
    assert main(["train-offline", *overrides(**QUICK, **given, out=out)]) == 2
    assert expected in one_line_error(capsys, "train-offline")
    assert time.perf_counter() - started < 30  # refused before any training
    assert not out.exists() and not out.with_name(f".{out.name}.offline").exists()


def test_offline_suite_wiring(tmp_path: Path) -> None:
    """benchmarks/suites/offline.yaml checks whole, as `benchmark dry_run=true` does; every
    condition of a task and seed reads the one shared collect, train-offline the last
    train-reward's reward, and CPL (no train-reward step) gets no reward."""
    from rrm_data.benchmark.suite import check_commands, load_suite
    from rrm_data.cli import command_config

    suite = load_suite(ROOT / "benchmarks" / "suites" / "offline.yaml")
    runs = suite.runs()
    assert len(suite.tasks) >= 2 and len(suite.seeds) >= 5
    check_commands(suite, runs, tmp_path, command_config)
    by_name = {r.condition.name: r for r in runs if r.seed == 0 and r.task == suite.tasks[0]}
    residual = by_name["iql-residual-500"]
    assert residual.prerequisite is not None
    (collect,) = residual.prerequisite.argvs(tmp_path)
    dataset = tmp_path / residual.task / "shared" / "seed0" / "0-collect"
    assert collect[0] == "collect" and f"out={dataset}" in collect
    reward, offline = residual.argvs(tmp_path)
    assert f"data={dataset}" in reward and f"data={dataset}" in offline
    assert f"reward={tmp_path / residual.id / '0-train-reward'}" in offline
    assert "threads=1" in offline
    (cpl,) = by_name["cpl-500"].argvs(tmp_path)
    assert f"data={dataset}" in cpl and not any(a.startswith("reward=") for a in cpl)
    replay = load_suite(ROOT / "benchmarks" / "suites" / "offline_replay.yaml")
    check_commands(replay, replay.runs(), tmp_path, command_config)
    run = next(r for r in replay.runs() if r.condition.name == "iql-residual-500")
    shared = tmp_path / run.task / "shared" / f"seed{run.seed}"
    assert run.prerequisite is not None
    (sac,) = run.prerequisite.argvs(tmp_path)
    assert sac[0] == "train-sac" and f"record_out={shared / 'replay'}" in sac
    reward, offline = run.argvs(tmp_path)
    assert f"data={shared / 'replay'}" in reward and f"data={shared / 'replay'}" in offline
