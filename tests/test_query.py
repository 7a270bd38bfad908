"""query: disagreement picks the pairs of largest ensemble spread (checked against a direct
per-segment computation), never a labelled pair; the table validates; bad input, one line."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import one_line_error, retasked_reward

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import validate_dataset
from rrm_data.reward.artifact import load_reward

TINY = ["model.hidden=16", "model.layers=1", "model.members=3", "data.batch_size=32",
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def reward_run(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ensemble"
    assert main(["train-reward", f"data={small_dataset}", f"out={out}", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def single_run(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "single"
    args = [a for a in TINY if not a.startswith("model.members")] + ["model.members=1"]
    assert main(["train-reward", f"data={small_dataset}", f"out={out}", *args]) == 0
    return out


@pytest.fixture
def data(small_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(small_dataset, copy)
    return copy


def labelled(root: Path) -> set[frozenset[int]]:
    dataset = open_dataset(root)
    pairs = set()
    for split in dataset.splits("preferences"):
        t = dataset.preferences(split).to_pydict()
        pairs |= {frozenset(p) for p in zip(t["segment_a"], t["segment_b"], strict=True)}
    return pairs


def direct_spread(root: Path, run: Path) -> dict[frozenset[int], float]:
    """Spread of P(A ≻ B) over members for every unlabelled train pair, segment by segment."""
    dataset, reward = open_dataset(root), load_reward(run)
    seg = dataset.table("segments").to_pandas()
    ep = dataset.table("episodes").to_pandas().set_index("episode_index")
    test = set(dataset.info.labelling["test_episodes"])
    seg = seg[~seg["episode_index"].isin(test)]
    returns = {}
    for row in seg.itertuples():
        first = int(ep.loc[row.episode_index, "index_from"]) + int(row.start)
        rows = np.arange(first, first + int(row.length))
        columns = step_columns(dataset, reward.columns, rows=rows)
        members = reward.score({c: v[:, None] for c, v in columns.items()}).members
        returns[row.segment_index] = members.astype(np.float64).sum(axis=1)
    episode = dict(zip(seg["segment_index"], seg["episode_index"], strict=True))
    done = labelled(root)
    spread = {}
    for a, b in itertools.combinations(returns, 2):
        if episode[a] != episode[b] and frozenset((a, b)) not in done:
            p = 1 / (1 + np.exp(-(returns[a] - returns[b])))
            spread[frozenset((a, b))] = float(p.std())
    return spread


def test_disagreement_picks_the_largest_spread_and_never_a_labelled_pair(
        data: Path, reward_run: Path) -> None:
    spread = direct_spread(data, reward_run)
    before = labelled(data)
    # the pool is every unlabelled pair, so the choice is fully determined
    assert main(["query", f"data={data}", f"reward={reward_run}", "strategy=disagreement",
                 "n=6", f"pool={len(spread)}"]) == 0
    assert validate_dataset(data) == []
    queries = pq.read_table(data / "queries" / "train-00000-of-00001.parquet").to_pydict()
    chosen = [frozenset(p) for p in zip(queries["segment_a"], queries["segment_b"], strict=True)]
    assert not set(chosen) & before
    expected = sorted(spread.values(), reverse=True)[:6]
    np.testing.assert_allclose([spread[p] for p in chosen], expected, rtol=1e-5)
    np.testing.assert_allclose(queries["score"], expected, rtol=1e-4)
    assert queries["strategy"] == ["disagreement"] * 6
    assert open_dataset(data).info.extra["queries"]["strategy"] == "disagreement"


@pytest.mark.parametrize("strategy", ["entropy", "uniform"])
def test_other_strategies_write_a_valid_table(data: Path, reward_run: Path,
                                              strategy: str) -> None:
    assert main(["query", f"data={data}", f"reward={reward_run}", f"strategy={strategy}",
                 "n=5", "pool=30", "seed=3"]) == 0
    assert validate_dataset(data) == []
    t = pq.read_table(next((data / "queries").glob("*.parquet")))
    assert t.num_rows == 5 and not {frozenset(p) for p in zip(
        t["segment_a"].to_pylist(), t["segment_b"].to_pylist(), strict=True)} & labelled(data)
    if strategy == "entropy":
        scores = t["score"].to_numpy()
        assert np.all(np.diff(scores) <= 0) and scores.max() <= np.log(2) + 1e-6


def test_validate_finds_a_self_pair_in_queries(data: Path) -> None:
    assert main(["query", f"data={data}", "strategy=uniform", "n=3", "pool=10"]) == 0
    path = next((data / "queries").glob("*.parquet"))
    t = pq.read_table(path)
    b = t["segment_b"].to_pylist()
    b[1] = t["segment_a"][1].as_py()
    pq.write_table(t.set_column(2, "segment_b", __import__("pyarrow").array(b)), path)
    problems = validate_dataset(data)
    assert problems and "paired with itself" in str(problems[0]) and "row 1" in str(problems[0])


@pytest.mark.parametrize(("extra", "message"), [
    (["strategy=random"], "unknown strategy 'random'"),
    (["strategy=uniform", "n=20", "pool=10"], "n=20 is larger than pool=10"),
    (["strategy=uniform", "n=5", "pool=100000"], "pool=100000 is larger than the"),
    (["strategy=uniform", "n=100000"], "n=100000 asks for more than the"),
    (["strategy=disagreement", "n=5"], "needs reward="),
])
def test_bad_input_exits_2_with_one_line(data: Path, extra: list[str], message: str,
                                         capsys: pytest.CaptureFixture) -> None:
    before = sorted(p.name for p in data.iterdir())
    assert main(["query", f"data={data}", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in data.iterdir()) == before
    assert fmt.QUERIES not in before


def test_disagreement_needs_an_ensemble(data: Path, single_run: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    assert main(["query", f"data={data}", f"reward={single_run}", "n=3"]) == 2
    assert "has one ensemble member" in capsys.readouterr().err
    assert main(["query", f"data={data}", f"reward={single_run}", "strategy=entropy",
                 "n=3"]) == 0


def test_query_refuses_a_reward_of_another_task(data: Path, reward_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    other = retasked_reward(reward_run, tmp_path / "other", "drawer-close-v3")
    before = sorted(p.name for p in data.iterdir())
    assert main(["query", f"data={data}", f"reward={other}", "n=3"]) == 2
    line = one_line_error(capsys, "query")
    assert "drawer-close-v3" in line and "button-press-v3" in line
    assert sorted(p.name for p in data.iterdir()) == before
    assert main(["query", f"data={data}", f"reward={other}", "n=3",
                 "allow_other_task=true"]) == 0


@pytest.mark.parametrize("ref", ["true", "prior:gripper_object"])
def test_query_with_a_fixed_reward_says_it_needs_a_run(data: Path, ref: str,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["query", f"data={data}", f"reward={ref}", "n=3"]) == 2
    line = one_line_error(capsys, "query")
    assert f"query needs a trained reward run; `{ref}` is" in line and "no ensemble" in line
