"""`rrm-data merge`: shards collected with `shard=i/N` join into the very dataset (same bytes)
that one unsharded `collect` writes; incomplete or mismatched shards are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SMALL, leftovers, one_line_error, overrides, parquet_bytes

from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    """Shards 0/2 and 1/2 of the small dataset, and shard 0/2 of one with another seed."""
    root = tmp_path_factory.mktemp("shards")
    made = {"0/2": root / "s0", "1/2": root / "s1", "seed1 0/2": root / "other"}
    for name, out in made.items():
        shard, seed = name.split()[-1], 1 if name.startswith("seed1") else 0
        assert main(["collect", *overrides(**{**SMALL, "shard": shard, "seed": seed,
                                              "out": out})]) == 0
    return made


def merge(shards: list[Path], out: Path, **values: object) -> int:
    return main(["merge", *overrides(shards=[str(s) for s in shards], out=out, **values)])


def test_merged_shards_equal_the_unsharded_dataset(shards, small_dataset, tmp_path):
    out = tmp_path / "merged"
    assert merge([shards["1/2"], shards["0/2"]], out) == 0
    assert parquet_bytes(out) == parquet_bytes(small_dataset)
    merged, single = open_dataset(out).info, open_dataset(small_dataset).info
    assert merged.shard is None
    assert merged.collection == single.collection
    assert merged.counts == single.counts
    assert merged.labelling == single.labelling


def test_each_shard_holds_every_other_episode(shards):
    for i, name in enumerate(("0/2", "1/2")):
        data = open_dataset(shards[name])
        assert data.info.shard == name
        episodes = data.table("episodes").column("episode_index").to_pylist()
        assert episodes == list(range(i, SMALL["episodes"], 2))
        assert data.table("segments").num_rows == len(episodes) * SMALL["segments_per_episode"]


def test_merging_again_is_a_no_op_and_another_out_is_refused(shards, tmp_path, capsys):
    out = tmp_path / "merged"
    assert merge([shards["0/2"], shards["1/2"]], out) == 0
    before = parquet_bytes(out)
    assert merge([shards["0/2"], shards["1/2"]], out) == 0
    assert "already holds this dataset" in " ".join(capsys.readouterr().err.split())
    assert merge([shards["0/2"], shards["1/2"]], shards["seed1 0/2"]) == 2
    assert "already holds a different dataset" in capsys.readouterr().err
    assert parquet_bytes(out) == before


@pytest.mark.parametrize(("names", "message"), [
    (["0/2"], "shards missing: 1/2"),
    (["0/2", "0/2", "1/2"], "are both shard 0/2"),
    (["seed1 0/2", "1/2"], "collected with other settings than"),
])
def test_incomplete_or_mismatched_shards_are_refused(names, message, shards, tmp_path, capsys):
    out = tmp_path / "merged"
    assert merge([shards[n] for n in names], out) == 2
    assert message in one_line_error(capsys, "merge")
    assert not out.exists() and leftovers(out) == []


def test_mismatch_names_the_differing_settings(shards, tmp_path, capsys):
    assert merge([shards["seed1 0/2"], shards["1/2"]], tmp_path / "merged") == 2
    assert "(differs in: seed)" in capsys.readouterr().err


@pytest.mark.parametrize("shard_list", ["[]", "[nowhere]"])
def test_missing_shards_are_refused(shard_list, tmp_path, capsys):
    assert main(["merge", f"shards={shard_list}", f"out={tmp_path / 'merged'}"]) == 2
    assert "rrm-data merge: error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_not_made_by_collect_is_refused(small_dataset, tmp_path, capsys):
    fake = tmp_path / "fake"
    (fake / "meta").mkdir(parents=True)
    (fake / "meta" / "info.json").write_text(open_dataset(small_dataset).root.joinpath(
        "meta", "info.json").read_text().replace('"collection"', '"not_collection"'))
    assert main(["merge", f"shards=[{fake}]", f"out={tmp_path / 'merged'}"]) == 2
    assert "was not written by 'rrm-data collect'" in capsys.readouterr().err
