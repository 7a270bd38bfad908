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


EPISODES = "episodes/train-00000-of-00001.parquet"


def _message(data: Path, capsys: pytest.CaptureFixture) -> str:
    code, out = validate(data, capsys)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    return out


def test_derived_values_are_recomputed_from_their_source(data: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """The expected values in validate's lines agree with an independent computation: a
    prior by numpy's norm over the state's object and goal, an episode's return by Python's
    sum of its rewards, its success by any()."""
    steps = pq.read_table(data / STEPS, columns=["observation.state", "next.reward",
                                                 "next.success"])
    state = np.stack(steps.column("observation.state").to_pylist()).astype(np.float64)
    reward = steps.column("next.reward").to_pylist()
    original = {p: p.read_bytes() for p in (data / STEPS, data / EPISODES)}

    _set(data / STEPS, "prior.object_goal", 70, 0.0)
    object_goal = -np.linalg.norm(state[70, 4:7] - state[70, 36:39])
    assert (f"{STEPS} row 70 column prior.object_goal: 0, but its formula -||obs[4:7] - "
            f"obs[36:39]|| over observation.state gives {object_goal:.6g}"
            in _message(data, capsys))
    (data / STEPS).write_bytes(original[data / STEPS])

    _set(data / EPISODES, "return", 3, 1e4)
    assert (f"{EPISODES} row 3 column return: 10000, but the episode's next.reward sum to "
            f"{sum(reward[180:240]):.6g}" in _message(data, capsys))
    (data / EPISODES).write_bytes(original[data / EPISODES])

    success = any(steps.column("next.success").to_pylist()[120:180])
    _set(data / EPISODES, "success", 2, not success)
    assert (f"{EPISODES} row 2 column success: {not success}, but next.success is true at "
            f"{sum(steps.column('next.success').to_pylist()[120:180])} of its steps"
            in _message(data, capsys))


def _set(path: Path, column: str, row: int, value: object) -> None:
    def edit(v: np.ndarray) -> None:
        v[row] = value
    edit_column(path, column, edit)


def test_float32_sums_are_tolerated_and_edits_are_not(data: Path) -> None:
    """Segment returns summed in float32, one step after another (the least accurate honest
    order), pass; an edit of 1e-3 of the window's magnitude (10x the tolerance) is refused."""
    reward = pq.read_table(data / STEPS, columns=["next.reward"]).column(0).to_numpy()
    segments = pq.read_table(data / SEGMENTS, columns=["episode_index", "start", "length",
                                                       "return"])
    first = (segments.column("episode_index").to_numpy() * 60
             + segments.column("start").to_numpy())  # 60-step episodes, in order
    windows = [reward[f:f + n] for f, n in zip(first, segments.column("length").to_numpy(),
                                               strict=True)]
    float32_sums = np.array([np.cumsum(w, dtype=np.float32)[-1] for w in windows])
    assert (float32_sums != segments.column("return").to_numpy()).any()  # some differ
    edit_column(data / SEGMENTS, "return", lambda v: float32_sums)
    assert validate_dataset(data) == []

    scale = np.abs(windows[4]).astype(np.float64).sum()
    edit_column(data / SEGMENTS, "return",
                lambda v: np.where(np.arange(len(v)) == 4, v + 1e-3 * scale, v))
    assert [str(p).split(":")[0] for p in validate_dataset(data)] == [
        f"{SEGMENTS} row 4 column return"]


def test_a_prior_without_a_formula_is_refused(data: Path) -> None:
    table = pq.read_table(data / STEPS)
    pq.write_table(table.append_column("prior.nothing", table.column("prior.complete")),
                   data / STEPS)
    edit_info(data, lambda info: info["features"]["steps"].update(
        {"prior.nothing": info["features"]["steps"]["prior.complete"]}))
    with pytest.raises(Exception, match=r"column prior.nothing: unknown prior 'nothing'"):
        check_dataset(data)


def test_a_segment_prior_return_without_its_steps_column_is_refused(data: Path) -> None:
    table = pq.read_table(data / SEGMENTS)
    pq.write_table(table.append_column("return.prior.nothing", table.column("return")),
                   data / SEGMENTS)
    edit_info(data, lambda info: info["features"]["segments"].update(
        {"return.prior.nothing": info["features"]["segments"]["return"]}))
    with pytest.raises(Exception, match=r"row 0 column return.prior.nothing: the steps table has "
                                        r"no prior.nothing column"):
        check_dataset(data)
