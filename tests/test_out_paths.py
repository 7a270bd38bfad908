"""The output rule applies to the whole path: no `out=` (nor `campaign=`) inside a dataset, a
run, a report or a campaign the command did not make, nor inside one of its inputs; and a
location that cannot be written is one line before any work, never a traceback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import SMALL, TINY_TRAIN, one_line_error, overrides

from rrm_data.annotation.campaign import CampaignSpec, campaign_items, campaign_queues
from rrm_data.annotation.store import Store
from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.io import Kind, check_out, mark_folder


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder under ``root``: what a refused command must leave."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def queried(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small dataset with 5 queried pairs (what a campaign is made from)."""
    data = tmp_path_factory.mktemp("queried") / "data"
    shutil.copytree(small_dataset, data)
    assert main(["query", f"data={data}", "strategy=uniform", "n=5"]) == 0
    return data


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Shards 0/2 and 1/2 of a two-episode collection without pairs (the fastest merge)."""
    root = tmp_path_factory.mktemp("shards")
    made = [root / "s0", root / "s1"]
    for i, out in enumerate(made):
        assert main(["collect", *overrides(episodes=2, episode_steps=20, segment_length=10,
                                           segments_per_episode=2, pairs=0, shard=f"{i}/2",
                                           out=out)]) == 0
    return made


@dataclass
class Where:
    """Copies of what a case may damage, made in the test's own folder."""

    tmp: Path
    data: Path  # a copy of the small dataset
    run: Path  # a copy of the trained reward run
    request: pytest.FixtureRequest

    def campaign(self) -> tuple[Path, Path]:
        """A queried dataset and a real campaign on it (one annotator, no answers)."""
        data = self.tmp / "queried"
        shutil.copytree(self.request.getfixturevalue("queried"), data)
        folder = self.tmp / "campaign"
        folder.mkdir()
        spec = CampaignSpec(("ana",), calibration=1, calibration_first=0, overlap=1)
        items = campaign_items(open_dataset(data), spec)
        store = Store(folder / "store.sqlite")
        store.create(items, campaign_queues(items, spec), {})
        store.close()
        return data, folder

    def shards(self) -> list[Path]:
        made = []
        for shard in self.request.getfixturevalue("shards"):
            shutil.copytree(shard, self.tmp / shard.name)
            made.append(self.tmp / shard.name)
        return made


# Each case: (the command line, the container the refusal must name, its kind).
Case = Callable[[Where], tuple[list[str], Path, str]]
SHARD = "train-00001-of-00002.parquet"  # a new shard file inside the dataset
SUITES = Path(__file__).parent.parent / "benchmarks" / "suites"
SAC = ["task=reach-v3", "steps=200", "eval_every=100", "eval_episodes=1"]


def _annotate_export(w: Where) -> tuple[list[str], Path, str]:
    data, campaign = w.campaign()
    return (["annotate", f"data={data}", f"campaign={campaign}", "export=true",
             f"out={data / 'segments' / 'v2'}"], data, "dataset")


def _export_trl_into_campaign(w: Where) -> tuple[list[str], Path, str]:
    data, campaign = w.campaign()
    return (["export-trl", f"data={data}", f"out={campaign / 'trl.parquet'}"],
            campaign, "annotation campaign")


def _merge(w: Where) -> tuple[list[str], Path, str]:
    s0, s1 = w.shards()
    return (["merge", f"shards=[{s0},{s1}]", f"out={s0 / 'meta' / 'merged'}"], s0, "dataset")


CASES: dict[str, Case] = {
    "collect": lambda w: (["collect", *overrides(**SMALL, out=w.data / "steps" / "sub")],
                          w.data, "dataset"),
    "merge": _merge,
    "render": lambda w: (["render", f"data={w.data}", "camera=corner",
                          f"out={w.data / 'meta' / 'v2'}"], w.data, "dataset"),
    "query": lambda w: (["query", f"data={w.data}", "strategy=uniform", "n=5",
                         f"out={w.data / 'steps' / 'sub'}"], w.data, "dataset"),
    "train-reward": lambda w: (["train-reward", f"data={w.data}", *TINY_TRAIN,
                                f"out={w.data / 'episodes' / 'run'}"], w.data, "dataset"),
    "evaluate": lambda w: (["evaluate", f"reward={w.run}", f"data={w.data}",
                            f"out={w.data / 'report'}"], w.data, "dataset"),
    "score": lambda w: (["score", f"reward={w.run}", f"data={w.data}",
                         f"out={w.data / 'preferences' / 's.parquet'}"], w.data, "dataset"),
    # a run holds reports on its reward directly (their default place), nothing deeper
    "gallery": lambda w: (["gallery", f"reward={w.run}", f"data={w.data}", "k=1",
                           f"out={w.run / 'checkpoints' / 'g'}"], w.run, "train-reward run"),
    "publish": lambda w: (["publish", f"data={w.data}", "repo_id=a/b", "dry_run=true",
                           f"out={w.data / 'steps' / 'hub'}"], w.data, "dataset"),
    "export-trl": lambda w: (["export-trl", f"data={w.data}",
                              f"out={w.data / 'preferences' / SHARD}"], w.data, "dataset"),
    "export-trl into a campaign": _export_trl_into_campaign,
    "train-sac": lambda w: (["train-sac", "reward=true", *SAC,
                             f"out={w.data / 'episodes' / 'sac'}"], w.data, "dataset"),
    "train-sac into its reward's run": lambda w: (["train-sac", f"reward={w.run}", *SAC,
                                                   "allow_other_task=true", f"out={w.run / 'sac'}"],
                                                  w.run, "train-reward run"),
    "train-online": lambda w: (["train-online", "task=reach-v3", "steps=5000",
                                f"out={w.data / 'online'}"], w.data, "dataset"),
    "train-sac record_out": lambda w: (["train-sac", "reward=true", *SAC, "episode_steps=50",
                                        "record.pairs=20",
                                        f"record_out={w.data / 'steps' / 'replay'}",
                                        f"out={w.tmp / 'sac'}"], w.data, "dataset"),
    "train-offline": lambda w: (["train-offline", f"data={w.data}", "reward=true",
                                 f"out={w.data / 'episodes' / 'iql'}"], w.data, "dataset"),
    "label": lambda w: (["label", f"data={w.data}", "teacher=smooth",
                         f"out={w.data / 'meta' / 'v2'}"], w.data, "dataset"),
    "benchmark": lambda w: (["benchmark", f"suite={SUITES / 'smoke.yaml'}",
                             f"out={w.data / 'steps' / 'grid'}"], w.data, "dataset"),
    "benchmark-report": lambda w: (["benchmark-report", f"runs={w.run}",
                                    f"out={w.data / 'report'}"], w.data, "dataset"),
    "label into a run": lambda w: (["label", f"data={w.data}", "teacher=oracle",
                                    "replace=true", f"out={w.run / 'lab'}"],
                                   w.run, "train-reward run"),
    "annotate export": _annotate_export,
    "annotate campaign in a dataset": lambda w: (["annotate", f"data={w.data}",
                                                  f"campaign={w.data / 'ann'}",
                                                  "annotators=[ana]", "port=0"],
                                                 w.data, "dataset"),
    "annotate campaign in a run": lambda w: (["annotate", f"data={w.data}",
                                              f"campaign={w.run / 'ann'}",
                                              "annotators=[ana]", "port=0"],
                                             w.run, "train-reward run"),
}


@pytest.mark.parametrize("case", CASES)
def test_out_inside_another_output_is_refused(case, small_dataset, trained_reward, tmp_path,
                                              request, capsys):
    where = Where(tmp_path, tmp_path / "data", tmp_path / "run", request)
    shutil.copytree(small_dataset, where.data)
    shutil.copytree(trained_reward, where.run)
    argv, container, kind = CASES[case](where)
    before = tree(tmp_path)
    capsys.readouterr()  # what making the case printed
    assert main(argv) == 2
    line = one_line_error(capsys, argv[0])
    assert f"inside the {kind} {container.resolve()}," in line, line
    assert tree(tmp_path) == before  # nothing written, not even a folder or a lock
    assert main(["validate", f"data={container if kind == 'dataset' else where.data}"]) == 0


def test_a_campaign_that_is_a_file_is_refused(queried, tmp_path, capsys):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("keep me")
    capsys.readouterr()
    assert main(["annotate", f"data={queried}", f"campaign={not_a_folder}",
                 "annotators=[ana]", "port=0"]) == 2
    assert "holds files rrm-data did not write" in one_line_error(capsys, "annotate")
    assert not_a_folder.read_text() == "keep me"


def test_a_campaign_is_recognised_and_used_again_not_replaced(tmp_path):
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    Store(campaign / "store.sqlite").close()
    assert check_out(campaign, Kind.CAMPAIGN, overwrite=False, option="campaign", reuse=True)
    with pytest.raises(RrmError, match="another kind of output \\(annotation campaign\\)"):
        check_out(campaign, Kind.REPORT, overwrite=True)


def test_a_benchmark_grid_holds_its_runs_and_its_report_and_is_replaced_by_nothing(tmp_path):
    grid = tmp_path / "grid"
    mark_folder(grid, Kind.BENCHMARK)
    assert check_out(grid, Kind.BENCHMARK, overwrite=False, reuse=True)  # resumed, not replaced
    assert not check_out(grid / "reach-v3" / "true" / "seed0" / "sac", Kind.SAC_RUN, False)
    assert not check_out(grid / "report", Kind.BENCHMARK_REPORT, False, inputs={"runs": grid})
    with pytest.raises(RrmError, match="another kind of output \\(benchmark grid\\)"):
        check_out(grid, Kind.REPORT, overwrite=True)
    with pytest.raises(RrmError, match="is runs="):
        check_out(grid, Kind.BENCHMARK_REPORT, True, inputs={"runs": [grid]})


def test_out_inside_or_holding_an_input_is_refused(tmp_path):
    given = tmp_path / "mine"
    given.mkdir()
    with pytest.raises(RrmError, match=f"lies inside data={given}, an input"):
        check_out(given / "sub" / "report", Kind.REPORT, False, inputs={"data": given})
    with pytest.raises(RrmError, match=f"lies inside data={given}, an input"):
        check_out(given / "run", Kind.REWARD_RUN, False, inputs={"data": given})
    with pytest.raises(RrmError, match=f"holds reward={given}, an input"):
        check_out(tmp_path, Kind.REPORT, True, inputs={"data": None, "reward": ["true", given]})
    # a run (or a reward's plain folder) holds reports on its reward: <run>/<name> is their
    # default place
    run = tmp_path / "run"
    run.mkdir()
    (run / ".rrm-output.json").write_text('{"kind": "train-reward run"}')
    assert not check_out(run / "report", Kind.REPORT, False, inputs={"reward": run})
    with pytest.raises(RrmError, match="inside the train-reward run"):
        check_out(run / "report", Kind.SAC_RUN, False, inputs={"reward": run})


def test_a_location_that_cannot_be_written_is_one_line_before_work(small_dataset, tmp_path,
                                                                  capsys):
    """As root no folder refuses writes (chmod does not stop root), so the location is made
    unwritable by a file where a folder should be; as another user also by permissions."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["score", "reward=true", f"data={small_dataset}",
                 f"out={blocker / 'sub' / 's.parquet'}"]) == 2
    assert f"{blocker} is a file, not a folder" in one_line_error(capsys, "score")
    assert blocker.read_text() == "x"
    if os.geteuid() == 0:
        return
    data = tmp_path / "locked" / "data"
    shutil.copytree(small_dataset, data)
    data.parent.chmod(0o555)
    try:
        assert main(["query", f"data={data}", "strategy=uniform", "n=5"]) == 2
        line = one_line_error(capsys, "query")
        assert f"{data.parent} is not writable (permission denied)" in line
    finally:
        data.parent.chmod(0o755)


def test_an_os_error_while_working_is_one_line_naming_the_path(small_dataset, tmp_path, capsys):
    """An error the machine raises (here: a file name longer than the file system allows)
    is one line naming the path; --debug still shows the traceback."""
    out = tmp_path / ("x" * 300 + ".parquet")
    argv = ["export-trl", f"data={small_dataset}", f"out={out}"]
    assert main(argv) == 1
    line = one_line_error(capsys, "export-trl")
    assert str(out) in line and "name too long" in line.lower()
    with pytest.raises(OSError, match="name too long"):
        main([*argv, "--debug"])
