"""rrm-data benchmark: the suite checked whole before any run, shards that partition the
grid, resume after kill -9, Ray producing the same run folders, and the report's IQM
against its definition."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from rrm_data.benchmark.cores import claimed_core
from rrm_data.benchmark.report import Result, build_report, markdown, plot, trained_on
from rrm_data.benchmark.reward_measures import rank_correlations
from rrm_data.benchmark.runner import (
    COMPILE_CACHE,
    DONE,
    Pace,
    execute,
    job,
    pending,
    progress_state,
    run_ended,
)
from rrm_data.benchmark.suite import load_suite, parse_suite, shard
from rrm_data.cli import main
from rrm_data.io import Kind, mark_folder
from rrm_data.reward.resolve import resolve_reward
from tests.helpers import one_line_error

REPO = Path(__file__).resolve().parents[1]
# A few hundred env steps, tiny networks: a run costs seconds, mostly process start.
TINY_SAC = ["steps=300", "eval_every=150", "eval_episodes=1", "episode_steps=100",
            "checkpoint_every=0", "sac.learning_starts=100", "sac.net_arch=[16,16]",
            "sac.batch_size=32", "sac.device=cpu"]
TINY_SUITE = {"name": "tiny", "tasks": ["reach-v3"], "seeds": 2,
              "defaults": {"train-sac": TINY_SAC},
              "conditions": {"true": "train-sac reward=true",
                             "zero": "train-sac reward=zero"},
              "pairs": [["true", "zero"]]}


def write_suite(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.mark.parametrize(("change", "expected"), [
    ({"tasks": ["reach-v9"]}, "unknown task 'reach-v9'"),
    ({"conditions": {"true": {"run": "train-sac reward=true", "colour": "red"}}},
     "unknown key in condition 'true' 'colour'"),
    ({"seeds": []}, "seeds must be a positive count"),
    ({"conditions": {"true": "train-sac reward=true sac.batch_sise=3"}},
     "unknown config key 'sac.batch_sise'"),
    ({"conditions": {"x": "train-online recipe=rrm feedback=-5"}}, "feedback"),
    ({"pairs": [["true", "nope"]]}, "pairs: unknown condition 'nope'"),
    ({"bogus": 1}, "unknown key in the suite 'bogus'"),
    ({"conditions": {"true": "train-sac reward=true record_out={folder}/r"}},
     "has {folder}; a line may use {task}, {seed}, {run}, {shared}"),
    ({"defaults": {"train-sac": [*TINY_SAC, "record_out={run"]}},
     "defaults: 'record_out={run': expected '}'"),
    ({"conditions": {"shared": "train-sac reward=true"}}, "'shared' names the suite's shared"),
    ({"conditions": {"x": "train-sac reward=true record_out={shared}/r"}},
     "uses {shared} but the suite has no shared: steps"),
    ({"shared": "collect out=x"}, "shared: out= is set per run"),
])
def test_a_bad_suite_is_one_line_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, expected: str) -> None:
    suite = write_suite(tmp_path / "bad.yaml", {**TINY_SUITE, "pairs": [], **change})
    out = tmp_path / "runs"
    assert main(["benchmark", f"suite={suite}", f"out={out}"]) == 2
    assert expected in one_line_error(capsys, "benchmark")
    assert not out.exists()


def test_conditions_run_part_of_the_suite(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "s.yaml", TINY_SUITE)
    out = tmp_path / "runs"
    assert main(["benchmark", f"suite={suite}", f"out={out}", "conditions=[true]",
                 "dry_run=true"]) == 0
    shown = capsys.readouterr()
    listed = [w for w in (shown.out + shown.err).split() if w.startswith("reach-v3/")]
    assert listed == ["reach-v3/true/seed0", "reach-v3/true/seed1"]
    assert main(["benchmark", f"suite={suite}", f"out={tmp_path / 'other'}",
                 "conditions=[true,ture]"]) == 2
    assert "unknown condition 'ture'" in one_line_error(capsys, "benchmark")
    assert main(["benchmark", f"suite={suite}", f"out={tmp_path / 'other'}",
                 "tasks=[drawer-close-v3]"]) == 2
    assert "unknown task of the suite 'drawer-close-v3'" in one_line_error(capsys, "benchmark")
    assert not (tmp_path / "other").exists()
    two = write_suite(tmp_path / "two.yaml", {**TINY_SUITE, "tasks": ["reach-v3", "door-close-v3"]})
    assert main(["benchmark", f"suite={two}", f"out={out}", "tasks=[door-close-v3]",
                 "conditions=[zero]", "dry_run=true"]) == 0
    shown = capsys.readouterr()
    listed = [w for w in (shown.out + shown.err).split() if "/seed" in w]
    assert listed == ["door-close-v3/zero/seed0", "door-close-v3/zero/seed1"]


def test_shards_partition_the_grid() -> None:
    suite = parse_suite({**TINY_SUITE, "tasks": ["reach-v3", "drawer-close-v3"], "seeds": 5})
    runs = suite.runs()
    parts = [shard(runs, i, 3) for i in range(3)]
    ids = [r.id for part in parts for r in part]
    assert sorted(ids) == sorted(r.id for r in runs) and len(set(ids)) == len(runs) == 20
    halves = [{r.id for r in shard(runs, i, 2)} for i in range(2)]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == {r.id for r in runs}
    assert halves == [{r.id for r in shard(list(reversed(runs)), i, 2)} for i in range(2)]


def test_a_pipeline_reads_what_its_previous_step_wrote(tmp_path: Path) -> None:
    suite = parse_suite({**TINY_SUITE, "tasks": {"reach-v3": {"collect": ["episodes=4"]}},
                         "pairs": [],
                         "conditions": {"off": ["collect episodes=2 pairs=5",
                                                "train-reward recipe=state_mlp",
                                                "train-sac"]}})
    run = suite.runs()[0]
    collect, reward, sac = run.argvs(tmp_path)
    folder = tmp_path / "reach-v3" / "off" / "seed0"
    assert collect.index("episodes=4") < collect.index("episodes=2")  # the line's own wins
    assert f"data={folder / '0-collect'}" in reward and "seed=0" in reward
    assert f"reward={folder / '1-train-reward'}" in sac and "threads=1" in sac
    assert "task=reach-v3" in sac and "steps=300" in sac


@pytest.mark.slow
def test_a_step_stopped_in_its_own_folder_is_made_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train-reward trains in its run folder: stopped before its reward is exported, that
    folder exists but holds no reward. The same command again must neither refuse the grid
    (train-sac's check reading that folder as its reward) nor skip the step; it trains the
    reward again and finishes the run."""
    suite = write_suite(tmp_path / "s.yaml", {
        **TINY_SUITE, "seeds": [0], "pairs": [],
        "conditions": {"off": ["collect episodes=4 pairs=20 teachers=[oracle]",
                               "train-reward recipe=state_mlp trainer.max_epochs=1 "
                               "model.hidden=16 model.members=2",
                               "train-sac"]}})
    out = tmp_path / "runs"
    collect, reward, _ = load_suite(suite).runs()[0].argvs(out)
    assert main(collect) == 0 and main(reward) == 0  # the run's first steps, as it makes them
    folder = out / "reach-v3" / "off" / "seed0"
    shutil.rmtree(folder / "1-train-reward" / "reward")  # as if stopped before the export
    mark_folder(out, Kind.BENCHMARK)
    capsys.readouterr()
    assert main(["benchmark", f"suite={suite}", f"out={out}"]) == 0, capsys.readouterr().err
    log = (folder / "log.txt").read_text()
    assert "$ rrm-data collect" not in log  # whole: not made again
    assert log.count("$ rrm-data train-reward") == 1 and log.count("$ rrm-data train-sac") == 1
    assert (folder / "1-train-reward" / "reward" / "reward.json").is_file()
    assert (folder / DONE).is_file()


def test_a_step_reads_what_an_earlier_one_wrote_beside_its_output(tmp_path: Path) -> None:
    """Medium-replay: train-sac records its episodes at {run}/replay, which the next steps
    read; {run} is the run's own folder, so runs never share it."""
    suite = parse_suite({**TINY_SUITE, "pairs": [], "conditions": {"replay": [
        "train-sac reward=true record_out={run}/replay",
        "train-reward recipe=state_mlp data={run}/replay",
        "train-offline data={run}/replay"]}})
    first, second = suite.runs()
    a, b = tmp_path / first.id, tmp_path / second.id
    sac, reward, offline = first.argvs(tmp_path)
    assert f"record_out={a / 'replay'}" in sac
    assert [w for w in reward if w.startswith("data=")] == [f"data={a / 'replay'}"]
    assert [w for w in offline if w.startswith("data=")] == [f"data={a / 'replay'}"]
    assert f"reward={a / '1-train-reward'}" in offline
    assert f"record_out={b / 'replay'}" in second.argvs(tmp_path)[0]


def test_shared_steps_come_before_every_conditions_own(tmp_path: Path) -> None:
    """A suite's shared steps run once per task and seed in <task>/shared/seed<seed>; each
    condition's pipeline reads them as its own earlier steps, and {shared} names them."""
    suite = parse_suite({**TINY_SUITE, "pairs": [], "seeds": 2,
                         "shared": ["collect episodes=2 pairs=5"],
                         "conditions": {
                             "iql": "train-offline reward=true",
                             "mlp": ["train-reward recipe=state_mlp", "train-offline"],
                             "named": "train-offline data={shared}/0-collect reward=zero"}})
    runs = {(r.condition.name, r.seed): r for r in suite.runs()}
    assert len(runs) == 6 and len({r.prerequisite for r in runs.values()}) == 2
    shared = tmp_path / "reach-v3" / "shared" / "seed1"
    assert runs["iql", 1].prerequisite.argvs(tmp_path) == [[
        "collect", "episodes=2", "pairs=5", "seed=1", "task=reach-v3",
        f"out={shared / '0-collect'}"]]
    (offline,) = runs["iql", 1].argvs(tmp_path)
    assert f"data={shared / '0-collect'}" in offline
    reward, offline = runs["mlp", 1].argvs(tmp_path)
    assert f"data={shared / '0-collect'}" in reward
    assert f"reward={tmp_path / 'reach-v3' / 'mlp' / 'seed1' / '0-train-reward'}" in offline
    (named,) = runs["named", 1].argvs(tmp_path)
    assert [w for w in named if w.startswith("data=")] == [f"data={shared / '0-collect'}"]
    _, todo = pending(suite.runs(), tmp_path)  # workers make both seeds' shared steps first
    assert sorted(r.id for r in todo) == sorted(r.id for r in runs.values())
    assert [r.seed for r in todo[:2]] == [0, 1]


def iqm_by_hand(scores: np.ndarray) -> float:
    """The interquartile mean: the mean of the middle half of the sorted scores (n a
    multiple of 4, so no fractional weights)."""
    ordered = np.sort(scores.ravel())
    n = len(ordered)
    assert n % 4 == 0
    return float(ordered[n // 4: 3 * n // 4].mean())


def test_report_iqm_is_the_interquartile_mean() -> None:
    rng = np.random.default_rng(3)
    table = {"a": rng.uniform(0, 1, (8, 2)), "b": rng.uniform(0, 0.5, (8, 2))}
    jerk = {c: rng.uniform(0, 3e-4, (8, 2)) for c in table}
    results = [Result(task, cond, seed, "steps", np.array([100, 200]),
                      np.array([0.0, table[cond][seed, t]]), None,
                      {"mean_squared_jerk": jerk[cond][seed, t]})
               for cond in table for t, task in enumerate(["t1", "t2"]) for seed in range(8)]
    report = build_report(results, [("a", "b")], reps=500)
    for cond, scores in table.items():
        entry = report["conditions"][cond]
        assert entry["all_tasks"]["iqm"] == pytest.approx(iqm_by_hand(scores))
        assert entry["all_tasks"]["runs"] == 16
        low, high = entry["all_tasks"]["ci"]
        assert low <= iqm_by_hand(scores) <= high
        one = entry["per_task"]["t1"]
        assert one["iqm"] == pytest.approx(iqm_by_hand(scores[:, 0])) and one["runs"] == 8
        assert entry["curve"]["iqm"][1] == pytest.approx(iqm_by_hand(scores))
        for t, task in enumerate(["t1", "t2"]):  # a measure beside success, per task
            other = entry["other"]["mean_squared_jerk"][task]
            assert other["iqm"] == pytest.approx(iqm_by_hand(jerk[cond][:, t]))
            assert other["ci"][0] <= other["iqm"] <= other["ci"][1] and other["runs"] == 8
        assert "true_return" not in entry["other"]  # absent from these runs' eval.csv
    p = report["probability_of_improvement"][0]
    # P(X > Y) by hand, per task over all pairs of runs (ties count a half), then averaged
    by_hand = np.mean([np.mean((table["a"][:, t, None] > table["b"][None, :, t])
                               + 0.5 * (table["a"][:, t, None] == table["b"][None, :, t]))
                       for t in range(2)])
    assert p["p"] == pytest.approx(by_hand) and p["runs"] == [16, 16]
    # scored by the mean of the last two evaluations (0 and the final one): half of it
    averaged = build_report(results, [], reps=100, last=2)
    for cond, scores in table.items():
        assert averaged["conditions"][cond]["all_tasks"]["iqm"] == pytest.approx(
            iqm_by_hand(scores / 2))
    assert "mean success over its last 2 evaluations" in markdown(averaged, "x")


def test_a_method_at_several_budgets_is_one_line_of_the_label_picture(tmp_path: Path) -> None:
    suite = parse_suite({**TINY_SUITE, "pairs": [], "conditions": {
        "true": "train-sac reward=true",
        "rrm-200": "train-online recipe=rrm feedback=200 labels_per_round=20",
        "rrm-500": "train-online recipe=rrm feedback=500 labels_per_round=50",
        "pebble-1000": "train-online recipe=pebble feedback=1000 unsupervised_steps=40",
        "mlp-500": ["train-reward recipe=state_mlp data.num_labels=500", "train-offline"],
        "mlp-2000": ["train-reward recipe=state_mlp data.num_labels=2000", "train-offline"],
        "cpl-500": "train-offline algo=cpl num_labels=500"}})
    rrm = "train-online recipe=rrm"
    mlp = "train-reward recipe=state_mlp → train-offline"
    assert suite.label_budgets() == {
        "rrm-200": (rrm, 200), "rrm-500": (rrm, 500),
        "pebble-1000": ("train-online recipe=pebble unsupervised_steps=40", 1000),
        "mlp-500": (mlp, 500), "mlp-2000": (mlp, 2000),
        "cpl-500": ("train-offline algo=cpl", 500)}
    rng = np.random.default_rng(5)
    table = {c: rng.uniform(0, 1, (4, 1)) for c in suite.label_budgets()}
    results = [Result("t1", cond, seed, "labels", np.array([100]),
                      np.array([table[cond][seed, 0]]), None, {})
               for cond in table for seed in range(4)]
    report = build_report(results, [], reps=200, budgets=suite.label_budgets())
    lines = report["label_efficiency"]
    assert sorted(lines) == [rrm, mlp]  # pebble and CPL ran at one budget each
    assert lines[mlp]["labels"] == [500, 2000]
    assert lines[mlp]["conditions"] == ["mlp-500", "mlp-2000"]
    for method, names in ((rrm, ["rrm-200", "rrm-500"]), (mlp, ["mlp-500", "mlp-2000"])):
        for i, cond in enumerate(names):
            assert lines[method]["iqm"][i] == pytest.approx(iqm_by_hand(table[cond]))
            assert lines[method]["ci"][0][i] <= lines[method]["iqm"][i] <= lines[method]["ci"][1][i]
            assert lines[method]["runs"][i] == 4
    assert "| train-online recipe=rrm | 200 | rrm-200 |" in markdown(report, "x")
    figures = plot(report, tmp_path, "x")
    assert [f.name for f in figures] == ["curves.png", "profiles.png", "label_efficiency.png"]
    assert all(f.stat().st_size for f in figures)


def test_zero_and_random_reward_references(trained_reward: Path) -> None:
    columns = {"observation.state": np.random.default_rng(0).random((6, 1, 39), np.float32),
               "action": np.random.default_rng(1).random((6, 1, 4), np.float32)}
    assert not resolve_reward("zero").score(columns).total.any()
    a, b = (resolve_reward(f"random:state_residual@{s}").score(columns).total for s in (1, 2))
    again = resolve_reward("random:state_residual@1").score(columns).total
    assert np.array_equal(a, again) and not np.allclose(a, b)
    trained = resolve_reward(str(trained_reward))
    untrained = resolve_reward(f"random:{trained_reward}")
    assert untrained.spec.network == trained.spec.network  # same shape, other weights
    assert not np.allclose(untrained.score(columns).total, trained.score(columns).total)


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def snapshot(out: Path) -> dict[str, object]:
    """Each run folder's files (checkpoints and logs aside) and its run.json minus timing."""
    found: dict[str, object] = {}
    for marker in sorted(out.glob(f"*/*/seed*/{DONE}")):
        folder = marker.parent
        record = {k: v for k, v in json.loads(marker.read_text()).items()
                  if k not in ("seconds", "cpu_seconds")}
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                       if p.is_file() and "checkpoints" not in p.parts)
        found[str(folder.relative_to(out))] = (record, files)
    return found


@pytest.fixture(scope="session")
def resumed_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny grid, its benchmark process killed (-9) after the first finished run; the
    runs it had started die with it (nothing is left in its process group). Made once per
    session (its tests share an xdist group, so one worker makes it)."""
    tmp = tmp_path_factory.mktemp("grid")
    suite, out = write_suite(tmp / "tiny.yaml", TINY_SUITE), tmp / "runs"
    kill_benchmark_once(suite, out, f"*/*/seed*/{DONE}")
    return suite, out


def kill_benchmark_once(suite: Path, out: Path, pattern: str) -> list[set[int]]:
    """``benchmark suite= out= workers=1`` killed (-9) once a file matches ``pattern`` under
    ``out``; the runs it had started must die with it (nothing left in its process group).
    Returns the cores each of its child processes could run on just before the kill. Its
    runs keep their compiled functions in the grid's own cache, as a user's grid does."""
    locks = out.parent / "tmp"  # its core locks apart from other tests' and real grids'
    locks.mkdir(exist_ok=True)
    env = {k: v for k, v in cli_env().items() if k != "JAX_COMPILATION_CACHE_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "rrm_data.cli", "benchmark", f"suite={suite}",
                             f"out={out}", "workers=1"], env={**env, "TMPDIR": str(locks)},
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(out.glob(pattern)) and time.monotonic() < deadline:
        assert proc.poll() is None, "the benchmark ended before it was killed"
        time.sleep(0.05)
    children = [os.sched_getaffinity(pid) for pid in group_members(proc.pid) if pid != proc.pid]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = group_alive(proc.pid)
    if orphans:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not orphans, "a run outlived the killed benchmark"
    return children


def group_members(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (field 5 of /proc/PID/stat)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_the_grid_resumes_after_kill_9(resumed_grid: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    suite, out = resumed_grid
    finished = {m: (m.read_bytes(), m.stat().st_mtime_ns) for m in out.glob(f"*/*/seed*/{DONE}")}
    assert len(finished) == 1
    # the finished run's SAC update, compiled once for the grid in its own cache
    assert list((out / COMPILE_CACHE).glob("jit__train-*-cache"))
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    for marker, (data, mtime) in finished.items():  # the finished run was not run again
        assert (marker.read_bytes(), marker.stat().st_mtime_ns) == (data, mtime)
    markers = sorted(out.glob(f"*/*/seed*/{DONE}"))
    assert [str(m.parent.relative_to(out)) for m in markers] == [
        "reach-v3/true/seed0", "reach-v3/true/seed1", "reach-v3/zero/seed0",
        "reach-v3/zero/seed1"]
    for marker in finished:  # its log holds its one try
        assert (marker.parent / "log.txt").read_text().count("$ rrm-data") == 1
    report = out / "report"
    assert main(["benchmark-report", f"runs={out}", "reps=200", f"out={report}"]) == 0
    data = json.loads((report / "report.json").read_text())
    assert data["conditions"]["true"]["all_tasks"]["runs"] == 2
    assert data["probability_of_improvement"][0]["runs"] == [2, 2]
    assert (report / "curves.png").stat().st_size and (report / "profiles.png").stat().st_size
    again = ["benchmark-report", f"runs={out}", "reps=200", f"out={report}"]
    before = (report / "report.json").stat().st_mtime_ns
    assert main(again) == 2  # an earlier report is replaced only when asked
    assert (report / "report.json").stat().st_mtime_ns == before
    assert main([*again, "overwrite=true"]) == 0
    assert json.loads((report / "report.json").read_text()) == data
    # the same runs scored as they stood at 150 env steps, their first evaluation
    assert main(["benchmark-report", f"runs={out}", "reps=100", "until=150",
                 f"out={tmp_path / 'r'}"]) == 0
    early = json.loads((tmp_path / "r" / "report.json").read_text())
    for cond in ("true", "zero"):
        at_150 = []
        for seed in (0, 1):
            with (out / f"reach-v3/{cond}/seed{seed}/0-train-sac/eval.csv").open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["timesteps"]) <= 150]
            at_150.append(float(rows[-1]["success_rate"]))
        entry = early["conditions"][cond]
        # the interquartile mean of two runs trims nothing: their mean
        assert entry["all_tasks"]["iqm"] == pytest.approx(np.mean(at_150))
        assert entry["curve"]["timesteps"][-1] == 150
        # the true return is the final evaluation's, not reported for an earlier one
        assert "true_return" in data["conditions"][cond]["other"]
        assert "true_return" not in entry["other"]
    assert early["until"] == 150
    assert "at or before 150 env steps" in (tmp_path / "r" / "report.md").read_text()
    capsys.readouterr()
    assert main(["benchmark-report", f"runs={out}", "until=150", f"heldout={out}"]) == 2
    assert "give one or the other" in one_line_error(capsys)
    assert main(["benchmark-report", f"runs={out}", "until=100",
                 f"out={tmp_path / 'early'}"]) == 2
    assert "has no evaluation at or before 100 env steps" in one_line_error(capsys)
    assert not (tmp_path / "early").exists()


@pytest.mark.slow
def test_an_interrupted_run_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    """Killed (-9) inside a run's second step after its first checkpoint: the same command
    skips the finished first step and the second resumes from that checkpoint."""
    suite = write_suite(tmp_path / "s.yaml", {
        **TINY_SUITE, "seeds": [0], "pairs": [],
        "conditions": {"off": [
            "collect episodes=4 episode_steps=40 segment_length=10 pairs=10",
            "train-offline reward=true steps=500 eval_every=500 eval_episodes=1 "
            "episode_steps=20 hidden=[16,16] batch_size=16 checkpoint_every=125"]}})
    out = tmp_path / "runs"
    run = out / "reach-v3" / "off" / "seed0"
    children = kill_benchmark_once(  # the published checkpoint, not its temporary sibling
        suite, out, "reach-v3/off/seed0/.1-train-offline*/**/checkpoint/state.pt")
    assert children and all(len(cores) == 1 for cores in children)  # each run on one core
    collected = (run / "0-collect").stat().st_mtime_ns
    assert not (run / DONE).exists() and not (run / "1-train-offline").exists()
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=1"]) == 0
    assert (run / "0-collect").stat().st_mtime_ns == collected
    log = (run / "log.txt").read_text()
    assert log.count("$ rrm-data collect") == 1 and log.count("$ rrm-data train-offline") == 2
    summary = json.loads((run / "1-train-offline" / "summary.json").read_text())
    assert summary["resumed_from"] and summary["resumed_from"][0] >= 125


@pytest.mark.slow
def test_runs_claim_different_cores_and_run_unpinned_when_none_is_free(tmp_path: Path) -> None:
    locks = tmp_path / "locks"  # apart from any real grid's
    free = sorted(os.sched_getaffinity(0))
    with ExitStack() as held:
        claimed = [held.enter_context(claimed_core(locks)) for _ in free]
        assert sorted(claimed) == free  # each core once
        with claimed_core(locks) as extra:
            assert extra is None
    with claimed_core(locks) as again:  # released
        assert again == free[0]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_ray_makes_the_same_run_folders(resumed_grid: tuple[Path, Path], tmp_path: Path) -> None:
    suite, out = resumed_grid
    if not list(out.glob(f"*/*/seed*/{DONE}"))[3:]:
        assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    ray_out = tmp_path / "ray"  # one condition's two runs: two Ray tasks side by side
    assert main(["benchmark", f"suite={suite}", f"out={ray_out}", "launcher=ray",
                 "workers=2", "conditions=[zero]"]) == 0

    def relative(snap: dict[str, object], root: Path) -> str:
        return json.dumps(snap, sort_keys=True).replace(str(root), "OUT")

    local = {run: files for run, files in snapshot(out).items() if "/zero/" in run}
    assert len(local) == 2
    assert relative(snapshot(ray_out), ray_out) == relative(local, out)


def reuse_dry_run(folder: Path, source: Path, capsys: pytest.CaptureFixture[str]
                  ) -> tuple[Path, Path, list[str], str]:
    """The tiny suite's seed 1 under another name, its grid in ``folder`` reusing ``source``:
    its true reward's run is the tiny one's (the same settings spelled otherwise, under
    another condition name), its zero's is not (another discount). The suite, the grid, its
    benchmark options and its dry run's listing."""
    other = write_suite(folder / "other.yaml", {
        **TINY_SUITE, "name": "other", "seeds": [1], "pairs": [],
        "defaults": {"train-sac": TINY_SAC[::-1]},
        "conditions": {"true-reward": "train-sac eval_every=150 reward=true",
                       "zero": "train-sac reward=zero sac.gamma=0.9"}})
    grid = folder / "other"
    reuse = [f"suite={other}", f"out={grid}", f"reuse=[{source}]"]
    capsys.readouterr()
    assert main(["benchmark", *reuse, "dry_run=true"]) == 0
    listing = capsys.readouterr().err
    assert "(0 finished, 1 reused, 1 to run)" in listing
    return other, grid, reuse, listing


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_a_suite_reuses_the_same_runs_of_another_grid(
        resumed_grid: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A run of another grid with the same task, seed and settings (spelled otherwise, under
    another name) is not run again but recorded, and reported under this suite's name; the
    same name with other settings is run."""
    suite, tiny = resumed_grid
    if not list(tiny.glob(f"*/*/seed*/{DONE}"))[3:]:
        assert main(["benchmark", f"suite={suite}", f"out={tiny}", "workers=2"]) == 0
    out = tmp_path / "tiny"  # a copy, whose run this test removes at the end
    shutil.copytree(tiny, out)
    other, grid, reuse, listing = reuse_dry_run(tmp_path, out, capsys)
    assert f"reach-v3/true-reward/seed1 reuses {out}/reach-v3/true/seed1" in listing
    assert "  reach-v3/zero/seed1\n" in listing
    assert not grid.exists()  # a dry run writes nothing
    assert main(["benchmark", *reuse, "conditions=[true-reward]"]) == 0
    folder = grid / "reach-v3/true-reward/seed1"
    assert sorted(p.name for p in folder.iterdir()) == [DONE]  # nothing ran
    source = json.loads((folder / DONE).read_text())["reused"]
    assert not Path(source).is_absolute()  # the two grids move together
    assert (folder / source).resolve() == (out / "reach-v3/true/seed1").resolve()
    capsys.readouterr()
    assert main(["benchmark", *reuse, "conditions=[true-reward]"]) == 0
    assert "(1 finished, 0 reused, 0 to run)" in capsys.readouterr().err
    assert main(["benchmark-report", f"runs={grid}", "reps=100", f"out={tmp_path / 'r'}"]) == 0
    entry = json.loads((tmp_path / "r/report.json").read_text())["conditions"]["true-reward"]
    with (out / "reach-v3/true/seed1/0-train-sac/eval.csv").open() as f:
        final = list(csv.DictReader(f))[-1]
    assert entry["all_tasks"]["runs"] == 1
    assert entry["all_tasks"]["iqm"] == pytest.approx(float(final["success_rate"]))
    assert entry["other"]["true_return"]["reach-v3"]["iqm"] == pytest.approx(
        float(final["true_return"]))
    capsys.readouterr()
    for bad, message in ((grid, "is this grid's own out folder"),
                         (tmp_path / "none", "is no benchmark grid")):
        assert main(["benchmark", f"suite={other}", f"out={grid}", f"reuse=[{bad}]"]) == 2
        assert message in one_line_error(capsys, "benchmark")
    shutil.rmtree(out / "reach-v3/true/seed1")  # the reused run is gone: said, not rerun
    assert main(["benchmark", *reuse, "conditions=[true-reward]"]) == 2
    assert f"remove {folder} to run it here" in one_line_error(capsys, "benchmark")
    assert main(["benchmark-report", f"runs={grid}", f"out={tmp_path / 'r2'}"]) == 2
    assert "which holds no finished run" in one_line_error(capsys, "benchmark-report")


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_a_suite_reuses_the_runs_a_report_of_another_grid_records(
        resumed_grid: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Another suite's grid reported, then its folders gone (another session): a run with
    the same task, seed and settings is taken from the report's record, not run again, and
    reported under this suite's name; a record the report no longer holds is said."""
    suite, tiny = resumed_grid
    if not list(tiny.glob(f"*/*/seed*/{DONE}"))[3:]:
        assert main(["benchmark", f"suite={suite}", f"out={tiny}", "workers=2"]) == 0
    with (tiny / "reach-v3/true/seed1/0-train-sac/eval.csv").open() as f:
        final = list(csv.DictReader(f))[-1]
    out, report = tmp_path / "tiny", tmp_path / "report"
    shutil.copytree(tiny, out, ignore=shutil.ignore_patterns("report*"))
    assert main(["benchmark-report", f"runs={out}", "reps=100", f"out={report}"]) == 0
    shutil.rmtree(out)
    _, grid, reuse, listing = reuse_dry_run(tmp_path, report, capsys)
    assert (f"reach-v3/true-reward/seed1 reuses reach-v3/true/seed1 of the report {report}"
            in listing)
    assert main(["benchmark", *reuse, "conditions=[true-reward]"]) == 0
    folder = grid / "reach-v3/true-reward/seed1"
    assert sorted(p.name for p in folder.iterdir()) == [DONE]  # nothing ran
    reference = json.loads((folder / DONE).read_text())["reused_record"]
    assert reference["run"] == "reach-v3/true/seed1"
    assert (folder / reference["report"]).resolve() == report.resolve()
    assert main(["benchmark-report", f"runs={grid}", "reps=100", f"out={tmp_path / 'r'}"]) == 0
    entry = json.loads((tmp_path / "r/report.json").read_text())["conditions"]["true-reward"]
    assert entry["all_tasks"]["runs"] == 1
    assert entry["all_tasks"]["iqm"] == pytest.approx(float(final["success_rate"]))
    assert entry["other"]["true_return"]["reach-v3"]["iqm"] == pytest.approx(
        float(final["true_return"]))
    lines = (report / "runs.jsonl").read_text().splitlines()
    (report / "runs.jsonl").write_text("".join(
        line + "\n" for line in lines if '"condition": "true", "seed": 1,' not in line))
    capsys.readouterr()
    assert main(["benchmark", *reuse, "conditions=[true-reward]"]) == 2
    assert "which does not record it; remove" in one_line_error(capsys, "benchmark")


def test_time_left_counts_each_run_at_its_conditions_pace(tmp_path: Path) -> None:
    """Conditions far apart in cost (a train-sac cell, a PEBBLE one): each run left counts
    at its condition's median wall time, at every run's median before one of its own
    finished, over the slots; the grid's earlier runs count, a reused run (no time) not."""
    earlier = {"slow/seed0": 100.0, "slow/seed1": 300.0, "fast/seed0": 10.0}
    for run, seconds in earlier.items():
        folder = tmp_path / "reach-v3" / run
        folder.mkdir(parents=True)
        (folder / DONE).write_text(json.dumps({"condition": run.split("/")[0],
                                               "seconds": seconds}))
    reused = tmp_path / "reach-v3" / "fast" / "seed1"
    reused.mkdir()
    (reused / DONE).write_text(json.dumps({"condition": "fast", "reused": "../x"}))
    pace = Pace.of_grid(tmp_path)
    every = float(np.median(list(earlier.values())))  # 100: before "new" has a run of its own
    assert pace.left(["slow", "slow", "fast", "new"], slots=2) == pytest.approx(
        (200 + 200 + 10 + every) / 2)
    pace.add("fast", 30.0)  # a run of this process finished
    assert pace.left(["fast"], slots=1) == pytest.approx(20.0)
    assert Pace({}).left(["slow"], slots=2) is None
    assert progress_state(3, 1, 2, 255.0) == "running 2 · failed 1 · left ~00:04:15"
    assert progress_state(1, 0, 2, None) == "running 1 · failed 0 · left ~?"


@pytest.mark.slow
def test_a_run_another_benchmark_process_runs_is_left_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two benchmark processes on one grid (shards, two terminals): a run whose lock beside
    its folder another process holds is neither run nor marked failed here."""
    suite = write_suite(tmp_path / "s.yaml", {**TINY_SUITE, "seeds": [0], "pairs": []})
    out = tmp_path / "runs"
    folder = out / "reach-v3" / "true" / "seed0"
    folder.parent.mkdir(parents=True)
    mark_folder(out, Kind.BENCHMARK)  # the grid the other process made
    with (folder.parent / ".seed0.lock").open("a") as held:  # the other process's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        capsys.readouterr()
        assert main(["benchmark", f"suite={suite}", f"out={out}", "conditions=[true]"]) == 0
    err = capsys.readouterr().err
    assert "left to the benchmark process running it: reach-v3/true/seed0" in err
    assert "0 runs finished, 1 running in another process, 0 failed" in err
    assert not folder.exists() or not any(folder.iterdir())  # nothing written there


def test_a_run_another_process_finished_since_the_listing_keeps_its_record(
        tmp_path: Path) -> None:
    """Two benchmark processes on one grid: one lists a run as to do, the other finishes it
    before the first gets to it. The first leaves it, and the record the other wrote (its
    cost, which grid_cost reads) is not replaced by one of a run that did nothing."""
    suite = parse_suite({**TINY_SUITE, "seeds": [0], "pairs": []})
    out = tmp_path / "runs"
    [run] = [r for r in suite.runs() if r.condition.name == "true"]
    work = job(run, out)
    marker = Path(work.folder) / work.marker
    marker.parent.mkdir(parents=True)
    record = {**work.record, "rc": 0, "seconds": 400.0, "cpu_seconds": 395.0}
    marker.write_text(json.dumps(record))  # the other process's, written after the listing
    outcome = execute(work)
    assert outcome["busy"] == "finished" and outcome["rc"] == 0
    assert json.loads(marker.read_text()) == record
    assert sorted(p.name for p in marker.parent.iterdir()) == [work.marker]  # nothing ran
    assert run_ended(outcome) == "finished by another benchmark process: reach-v3/true/seed0"


@pytest.mark.slow
def test_a_runs_cost_is_its_cpu_time_not_the_time_its_grid_was_paused(tmp_path: Path) -> None:
    """A grid stopped (SIGSTOP, as a shared machine's user pauses it) for 4 s while its run
    works: the run's wall seconds count the pause, its cpu_seconds do not; its report's
    record keeps them once the grid is gone, and a resumed run's (its last try's) are not
    taken as its cost."""
    suite = write_suite(tmp_path / "s.yaml", {**TINY_SUITE, "seeds": [0], "pairs": [],
                                              "conditions": {"zero": "train-sac reward=zero"}})
    out = tmp_path / "runs"
    locks = tmp_path / "tmp"  # its core locks apart from other tests' and real grids'
    locks.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "rrm_data.cli", "benchmark", f"suite={suite}",
                             f"out={out}", "workers=1"], env={**cli_env(), "TMPDIR": str(locks)},
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = out / "reach-v3" / "zero" / "seed0" / "log.txt"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGSTOP)
    time.sleep(4)
    os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=300) == 0
    record = json.loads((log.parent / DONE).read_text())
    assert record["cpu_seconds"] > 1  # at least the command's start-up (imports)
    assert record["seconds"] - record["cpu_seconds"] >= 4
    report, again, resumed = tmp_path / "report", tmp_path / "again", tmp_path / "resumed"
    assert main(["benchmark-report", f"runs={out}", "reps=10", f"out={report}"]) == 0
    shutil.copytree(out, resumed)
    shutil.rmtree(out)
    assert main(["benchmark-report", f"runs={report}", "reps=10", f"out={again}"]) == 0
    assert json.loads((again / "runs.jsonl").read_text())["cpu_seconds"] == record["cpu_seconds"]
    second_try = resumed / "reach-v3" / "zero" / "seed0" / "log.txt"
    with second_try.open("a") as f:  # what a second try of its command logs
        f.write(second_try.read_text().splitlines()[0] + "\n")
    assert main(["benchmark-report", f"runs={resumed}", "reps=10", f"out={resumed}/r"]) == 0
    assert json.loads((resumed / "r" / "runs.jsonl").read_text())["cpu_seconds"] is None


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_rest_go_on(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "s.yaml", {
        **TINY_SUITE, "seeds": [0], "pairs": [],
        "conditions": {"good": "train-sac reward=zero",
                       "bad": f"train-sac reward={tmp_path / 'missing'}"}})
    out = tmp_path / "runs"
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 2
    err = capsys.readouterr().err
    assert "1 runs failed" in err
    ended = [line.split(" · ")[0] for line in err.splitlines() if line.startswith("[")]
    assert len(ended) == 2, err  # a line per run as it ends, for a log that has no bar
    assert sorted(line[:5] for line in ended) == ["[1/2]", "[2/2]"]
    done, failed_line = sorted(line[6:] for line in ended)
    assert re.fullmatch(r"done: reach-v3/good/seed0 in 00:0\d:\d\d", done)
    assert re.fullmatch(r"failed: reach-v3/bad/seed0 \(rc 2\) after 00:0\d:\d\d, "
                        r"log\.txt there", failed_line)
    failed = json.loads((out / "reach-v3/bad/seed0/failed.json").read_text())
    assert failed["rc"] == 2 and "unknown reward" in "\n".join(failed["log_tail"])
    assert (out / "reach-v3/good/seed0" / DONE).is_file()
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 2
    log = (out / "reach-v3/bad/seed0/log.txt").read_text()
    assert log.count("$ rrm-data") == 1  # a failed run is retried from a clean folder


@pytest.mark.slow
def test_shared_steps_are_made_once_and_read_by_every_run(tmp_path: Path) -> None:
    """Two workers start two runs that need the same shared collect at once: one makes it
    under the lock, the other waits and reads it; a second benchmark makes nothing again,
    and the report reads the runs, not the shared steps."""
    suite = write_suite(tmp_path / "s.yaml", {
        **TINY_SUITE, "seeds": [0], "pairs": [],
        "shared": "collect episodes=4 episode_steps=40 segment_length=10 pairs=10",
        "defaults": {"train-offline": ["steps=20", "eval_every=20", "eval_episodes=1",
                                       "episode_steps=20", "hidden=[16,16]", "batch_size=16",
                                       "checkpoint_every=0"]},
        "conditions": {"true": "train-offline reward=true",
                       "zero": "train-offline reward=zero"}})
    out = tmp_path / "runs"
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    shared = out / "reach-v3" / "shared" / "seed0"
    assert (shared / "log.txt").read_text().count("$ rrm-data collect") == 1
    made = (shared / "shared.json").stat().st_mtime_ns
    for condition in ("true", "zero"):
        record = json.loads((out / "reach-v3" / condition / "seed0" / DONE).read_text())
        assert record["shared"] == "reach-v3/shared/seed0"
        assert "data={shared}/0-collect" in record["commands"][-1]
        assert json.loads((out / "reach-v3" / condition / "seed0" / "0-train-offline" /
                           "summary.json").read_text())
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    assert (shared / "shared.json").stat().st_mtime_ns == made
    report = tmp_path / "report"
    assert main(["benchmark-report", f"runs={out}", "reps=50", f"out={report}"]) == 0
    data = json.loads((report / "report.json").read_text())
    assert sorted(data["conditions"]) == ["true", "zero"]


@pytest.mark.slow
def test_runs_whose_shared_steps_fail_are_recorded_failed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path / "s.yaml", {
        **TINY_SUITE, "seeds": [0], "pairs": [],
        "shared": f"train-sac reward={tmp_path / 'missing'}",
        "conditions": {"a": "train-sac reward=true", "b": "train-sac reward=zero"}})
    out = tmp_path / "runs"
    assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 2
    assert "2 runs failed" in capsys.readouterr().err
    shared = out / "reach-v3" / "shared" / "seed0"
    assert "unknown reward" in (shared / "log.txt").read_text()
    assert not (shared / "shared.json").exists()
    for condition in ("a", "b"):
        failed = json.loads((out / "reach-v3" / condition / "seed0" / "failed.json").read_text())
        assert failed["rc"] == 2
        assert failed["log_tail"] == [f"the shared steps failed (rc 2): {shared}/log.txt"]
    assert not list(out.glob(f"*/*/seed*/{DONE}"))


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(values, kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        r[values == v] = r[values == v].mean()
    return r


def test_rank_correlation_is_spearman_by_its_definition() -> None:
    rng = np.random.default_rng(5)
    success = rng.choice([0.0, 0.3, 0.6, 1.0], 12)
    epic = rng.uniform(0, 1, 12)
    rows = [{"success": s, "agreement": None if i == 3 else s + rng.normal(0, 0.3),
             "epic": e, "starc": None, "value_order": 0.5}
            for i, (s, e) in enumerate(zip(success, epic, strict=True))]
    out = rank_correlations(rows, reps=300, seed=0)
    for measure, keep in (("epic", np.arange(12) >= 0), ("agreement", np.arange(12) != 3)):
        x = np.array([rows[i][measure] for i in np.flatnonzero(keep)])
        by_hand = np.corrcoef(ranks(x), ranks(success[keep]))[0, 1]  # Pearson of the ranks
        assert out[measure]["spearman"] == pytest.approx(by_hand)
        assert out[measure]["runs"] == keep.sum()
        low, high = out[measure]["ci"]
        assert low <= by_hand <= high
    assert out["value_order"]["spearman"] is None  # a constant measure has no ranking
    assert out["starc"]["spearman"] is None and out["starc"]["runs"] == 0
    shuffled = [rows[i] for i in rng.permutation(len(rows))]  # the same runs, another order
    assert rank_correlations(shuffled, reps=300, seed=0) == out


def test_a_runs_reward_is_read_from_its_last_command() -> None:
    folder = Path("/grid/reach-v3/c/seed0")
    assert trained_on([["collect", "out={run}/0-collect"],
                       ["train-reward", "out={run}/1-train-reward"],
                       ["train-sac", "reward={run}/1-train-reward", "out={run}/2-train-sac"]],
                      folder) == f"{folder}/1-train-reward"
    assert trained_on([["train-sac", "steps=9", "out={run}/0-train-sac"]], folder) == "true"
    assert trained_on([["train-online", "recipe=rrm", "out={run}/0-train-online"]],
                      folder) == f"{folder}/0-train-online/reward"
    assert trained_on([["train-offline", "algo=cpl", "out=x"]], folder) is None
    assert trained_on([["train-offline", "reward=prior:gripper_object"]],
                      folder) == "prior:gripper_object"


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_report_measures_each_runs_reward_on_held_out_pairs(
        resumed_grid: tuple[Path, Path], make_dataset, tmp_path: Path) -> None:
    suite, out = resumed_grid
    if not list(out.glob(f"*/*/seed*/{DONE}"))[3:]:
        assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    heldout = make_dataset(task="reach-v3")
    report = tmp_path / "report"
    assert main(["benchmark-report", f"runs={out}", f"heldout={heldout}", "reps=100",
                 f"out={report}"]) == 0
    measures = json.loads((report / "report.json").read_text())["reward_measures"]
    rows = {(r["condition"], r["seed"]): r for r in measures["rows"]}
    assert sorted(rows) == [("true", 0), ("true", 1), ("zero", 0), ("zero", 1)]
    # by hand: the test split's oracle pairs that are not ties, judged by the true returns
    # (agreement 1) and by a reward that ties every pair (a predicted tie counts as wrong)
    pairs = pq.read_table(heldout / "preferences" / "test-00000-of-00001.parquet").to_pandas()
    decided = int(((pairs["teacher"] == "oracle") & (pairs["label"] != 0.5)).sum())
    assert decided > 0
    for seed in (0, 1):
        true, zero = rows[("true", seed)], rows[("zero", seed)]
        assert true["agreement"] == 1.0 and true["agreement_pairs"] == decided
        assert true["epic"] == pytest.approx(0.0, abs=1e-9)
        assert true["starc"] == pytest.approx(0.0, abs=1e-9)
        assert zero["agreement"] == 0.0 and zero["agreement_pairs"] == decided
        assert zero["epic"] is None  # a constant reward has no Pearson distance
        assert zero["starc"] is None  # nor a norm to divide by
        success = float(list(csv.DictReader(
            (out / "reach-v3" / "true" / f"seed{seed}" / "0-train-sac" / "eval.csv").open()
        ))[-1]["success_rate"])
        assert true["success"] == success
    assert "Reward measures on held-out oracle pairs" in (report / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_grid")
def test_a_report_joins_earlier_reports_whose_runs_are_gone(
        resumed_grid: tuple[Path, Path], make_dataset, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Half the grid reported with held-out measures, its run folders then deleted; the
    other half's grid joined to that report in place gives the report of the whole grid, and
    a grid given that report as reported= has nothing left to run."""
    suite, out = resumed_grid
    if not list(out.glob(f"*/*/seed*/{DONE}"))[3:]:
        assert main(["benchmark", f"suite={suite}", f"out={out}", "workers=2"]) == 0
    heldout = make_dataset(task="reach-v3")
    options = [f"heldout={heldout}", "reps=100"]
    whole = tmp_path / "whole"
    assert main(["benchmark-report", f"runs={out}", *options, f"out={whole}"]) == 0
    first, second = tmp_path / "first", tmp_path / "second"
    for grid, gone in ((first, "seed1"), (second, "seed0")):
        shutil.copytree(out, grid, ignore=shutil.ignore_patterns("report*"))
        for folder in grid.glob(f"*/*/{gone}"):
            shutil.rmtree(folder)
    joined = tmp_path / "joined"
    assert main(["benchmark-report", f"runs={first}", *options, f"out={joined}"]) == 0
    shutil.rmtree(first)  # the first half's rewards and eval.csv files are gone
    records = (joined / "runs.jsonl").read_text().splitlines()
    assert len(records) == 2 and all(json.loads(r)["measures"] for r in records)
    again = ["benchmark-report", f"runs=[{joined},{second}]", *options, f"out={joined}"]
    assert main(again) == 2  # replaced only when asked
    assert main([*again, "overwrite=true"]) == 0
    expected, found = (json.loads((folder / "report.json").read_text())
                       for folder in (whole, joined))
    assert found.pop("runs") != expected.pop("runs")
    assert found == expected
    assert len((joined / "runs.jsonl").read_text().splitlines()) == 4
    assert (joined / "suite.yaml").read_text() == suite.read_text()
    again = tmp_path / "again"  # the second half found twice (its grid, the report) joins once
    assert main(["benchmark-report", f"runs=[{joined},{second}]", *options, f"out={again}"]) == 0
    found = json.loads((again / "report.json").read_text())
    found.pop("runs")
    assert found == expected
    # the runs a report records are not run again (another session's grid folder)
    assert main(["benchmark", f"suite={suite}", f"out={tmp_path / 'fresh'}",
                 f"reported={joined}", "dry_run=true"]) == 0
    assert "beside 4 reported (0 finished, 0 to run)" in capsys.readouterr().err
    commented = tmp_path / "commented.yaml"  # a comment edited since: the same grid
    commented.write_text("# runs the tiny grid\n" + suite.read_text())
    assert main(["benchmark", f"suite={commented}", f"out={tmp_path / 'fresh'}",
                 f"reported={joined}", "dry_run=true"]) == 0
    assert "beside 4 reported (0 finished, 0 to run)" in capsys.readouterr().err
    other = write_suite(tmp_path / "tiny.yaml", {**TINY_SUITE, "seeds": 3})
    assert main(["benchmark", f"suite={other}", f"reported={joined}", "dry_run=true"]) == 2
    assert "reports another suite" in one_line_error(capsys, "benchmark")
    lines = [json.loads(r) for r in (joined / "runs.jsonl").read_text().splitlines()]
    changed = next(r for r in lines if r["seed"] == 1)
    changed["success"][-1] = 1.0 - changed["success"][-1]
    (joined / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["benchmark-report", f"runs=[{joined},{second}]", f"out={tmp_path / 'x'}"]) == 2


def test_curves_say_what_their_steps_count() -> None:
    """train-offline's curves count gradient steps, SAC's env steps, a mix says both."""
    suites = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"
    assert load_suite(suites / "offline.yaml").step_unit() == "gradient steps"
    assert load_suite(suites / "main.yaml").step_unit() == "env steps"
    mixed = parse_suite({"tasks": ["reach-v3"], "seeds": 1, "conditions": {
        "sac": "train-sac reward=true", "iql": "train-offline reward=true data=x"}})
    assert mixed.step_unit().startswith("steps (gradient steps for train-offline")


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks" / "suites").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_committed_suite_reads(path: Path) -> None:
    """A committed suite parses (tasks, keys, placeholders, pairs) and names itself after its
    file, so the report and README commands that use it work."""
    suite = load_suite(path)
    assert suite.name == path.stem and suite.runs()
