"""rrm-data validate: a fresh dataset passes; each corruption is named by file, row and column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import edit_column, edit_info
from jsonschema import Draft202012Validator

from rrm_data.cli import main
from rrm_data.dataset.validate import check_dataset, schema_validator, validate_dataset
from rrm_data.resources import resource_dir

STEPS = "steps/train-00000-of-00001.parquet"
SEGMENTS = "segments/train-00000-of-00001.parquet"
TRAIN = "preferences/train-00000-of-00001.parquet"
TEST = "preferences/test-00000-of-00001.parquet"


@pytest.fixture
def data(small_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset, free to corrupt."""
    return Path(shutil.copytree(small_dataset, tmp_path / "data"))


def validate(data: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["validate", f"data={data}"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_fresh_dataset_is_valid(small_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    assert validate_dataset(small_dataset) == []
    code, out = validate(small_dataset, capsys)
    assert code == 0
    assert f"ok: {small_dataset} is a valid rrm-data/1 dataset (10 episodes, 600 steps" in out


def test_schemas_are_valid_draft_2020_12() -> None:
    names = sorted(p.name for p in resource_dir("schemas").glob("*.schema.json"))
    assert names == [f"{n}.schema.json" for n in ("columns", "embeddings", "episodes", "info",
                                                   "preferences", "queries", "segments", "steps")]
    for name in names:
        Draft202012Validator.check_schema(json.loads((resource_dir("schemas") / name).read_text()))


def test_info_features_satisfy_the_table_schemas(small_dataset: Path) -> None:
    info = json.loads((small_dataset / "meta" / "info.json").read_text())
    for table, features in info["features"].items():
        assert not list(schema_validator(table).iter_errors(features))
    broken = {**info["features"]["steps"], "observation.state": {"dtype": "float", "shape": [38]}}
    assert list(schema_validator("steps").iter_errors(broken))


def _truncate(data: Path) -> None:
    path = data / STEPS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _label(data: Path) -> None:
    def edit(v: np.ndarray) -> None:
        v[17] = 0.3
    edit_column(data / TRAIN, "label", edit)


def _missing_segment(data: Path) -> None:
    def edit(v: np.ndarray) -> None:
        v[3] = 999
    edit_column(data / TRAIN, "segment_b", edit)


def _nan_state(data: Path) -> None:
    def edit(v: np.ndarray) -> None:
        v[5, 7] = np.nan
    edit_column(data / STEPS, "observation.state", edit)


def _segment_outside(data: Path) -> None:
    def edit(v: np.ndarray) -> None:
        v[2] = 55  # 20-step segment in a 60-step episode
    edit_column(data / SEGMENTS, "start", edit)


def _no_info(data: Path) -> None:
    (data / "meta" / "info.json").unlink()


def _unknown_teacher(data: Path) -> None:
    edit_column(data / TRAIN, "teacher", lambda v: np.where(np.arange(len(v)) == 4, "oracel", v))


def _test_without_oracle(data: Path) -> None:
    table = pq.read_table(data / TEST)
    pq.write_table(table.filter(pc.not_equal(table["teacher"], "oracle")), data / TEST)


def _frame_index(data: Path) -> None:
    def edit(v: np.ndarray) -> None:
        v[70] = 3
    edit_column(data / STEPS, "frame_index", edit)


def _action_dtype(data: Path) -> None:
    table = pq.read_table(data / STEPS)
    action = table.column("action").cast(pa.list_(pa.float64(), 4))
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", action),
                   data / STEPS)


def _steps_count(data: Path) -> None:
    edit_info(data, lambda info: info["counts"].update(steps=601))


def _info_type(data: Path) -> None:
    edit_info(data, lambda info: info.update(fps="fast"))


CORRUPTIONS = {
    "truncated parquet": (_truncate, f"{STEPS}: unreadable Parquet"),
    "label 0.3": (_label, f"{TRAIN} row 17 column label: 0.3 is not one of 0, 0.5, 1"),
    "missing segment": (_missing_segment,
                        f"{TRAIN} row 3 column segment_b: segment 999 does not exist"),
    "nan state": (_nan_state,
                  f"{STEPS} row 5 column observation.state: nan is not finite (element 7)"),
    "segment outside episode": (_segment_outside, f"{SEGMENTS} row 2 column start: segment "
                                                  "[55, 75) lies outside episode"),
    "no info.json": (_no_info, "is not an rrm-data dataset (no meta/info.json)"),
    "unknown teacher": (_unknown_teacher,
                        f"{TRAIN} row 4 column teacher: 'oracel' is not a known teacher"),
    "test pair without oracle": (_test_without_oracle, "has no oracle label"),
    "frame index": (_frame_index, f"{STEPS} row 70 column frame_index: 3, expected 10"),
    "action dtype": (_action_dtype, f'{STEPS} column action: dtype "double", expected "float"'),
    "count": (_steps_count, "meta/info.json: counts.steps is 601, but the dataset has 600"),
    "info type": (_info_type, "meta/info.json: at fps: 'fast' is not of type 'number'"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_reported(name: str, data: Path, capsys: pytest.CaptureFixture) -> None:
    corrupt, expected = CORRUPTIONS[name]
    corrupt(data)
    code, out = validate(data, capsys)
    assert code == 2
    assert out.startswith("rrm-data validate: error: ")
    assert expected in out
    assert len(out.strip().splitlines()) == 1


def test_all_problems_are_listed(data: Path) -> None:
    _label(data)
    _missing_segment(data)
    messages = [str(p) for p in validate_dataset(data)]
    assert any("column label: 0.3" in m for m in messages)
    assert any("segment 999 does not exist" in m for m in messages)


def test_embeddings_table_is_checked(data: Path) -> None:
    """An embeddings table keyed by step index validates, and must point at existing steps."""
    path = data / "embeddings" / "tf_efficientnet_lite0" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    features = np.random.default_rng(0).normal(size=(600, 8)).astype(np.float32)
    table = pa.table({"index": pa.array(np.arange(600, dtype=np.int64)),
                      "features": pa.FixedSizeListArray.from_arrays(pa.array(features.ravel()), 8)})
    pq.write_table(table, path)
    assert validate_dataset(data) == []

    def edit(v: np.ndarray) -> None:
        v[9] = 600
    edit_column(path, "index", edit)
    with pytest.raises(Exception, match=r"train-00000-of-00001.parquet row 9 column index: "
                                        r"step 600 does not exist"):
        check_dataset(data)


@pytest.mark.parametrize("collect", [{"test_fraction": 0},
                                     {"teachers": ["skip"], "teacher_params.skip.epsilon": 1}],
                         ids=["no test pairs", "skipped pairs"])
def test_valid_edge_cases_pass(make_dataset, collect: dict) -> None:
    """What the new checks must not refuse: an empty test split when counts.pairs.test is 0,
    and gaps in pair_index where a teacher skipped every label of a pair."""
    data = make_dataset(**collect)
    assert validate_dataset(data) == []
    pairs = pq.read_table(data / TRAIN, columns=["pair_index"]).column(0).to_numpy()
    if "teachers" in collect:
        assert len(np.unique(pairs)) < pairs.max() + 1  # the gaps are there
    else:
        assert pq.read_metadata(data / TEST).num_rows == 0
