"""The motion teachers (smooth, efficient, safe, quality) and `rrm-data label`, on real data.

Each teacher's labels are checked against the costs recomputed here, step by step from the
steps table and the definitions (not through rrm_data.labels.motion)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from helpers import SMALL, one_line_error, overrides, parquet_bytes

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.labels.teachers import PairRewards, make_teacher

MOTION = ["smooth", "efficient", "safe", "quality"]
RADIUS, FLOOR = 0.1, 0.1
WEIGHTS = {"w_return": 2.0, "w_smooth": 1.0, "w_efficient": 0.5, "w_safe": 1.5}


@pytest.fixture(scope="module")
def motion_data(make_dataset) -> Path:
    """SMALL with the oracle and the four motion teachers (safe's radius 0.1 m)."""
    return make_dataset(teachers="[oracle,smooth,efficient,safe,quality]",
                        **{"teacher_params.safe.radius": RADIUS,
                           "teacher_params.quality.radius": RADIUS,
                           **{f"teacher_params.quality.{k}": v for k, v in WEIGHTS.items()}})


def recomputed_costs(root: Path, radius: float = RADIUS) -> dict[str, np.ndarray]:
    """Every segment's cost per teacher, by loops over steps from the definitions (safe's and
    quality's radius ``radius``)."""
    data = open_dataset(root)
    steps = data.table("steps", columns=["index", fmt.STATE, fmt.REWARD]).to_pandas()
    steps = steps.set_index("index").sort_index()
    state = np.stack(steps[fmt.STATE].to_numpy()).astype(np.float64)
    reward = steps[fmt.REWARD].to_numpy().astype(np.float64)
    episodes = data.table("episodes").to_pandas().set_index("episode_index")
    segments = data.table("segments").to_pandas()
    costs: dict[str, list[float]] = {"smooth": [], "efficient": [], "safe": [], "return": []}
    for _, seg in segments.iterrows():
        first = int(episodes.loc[seg["episode_index"], "index_from"] + seg["start"])
        last = first + int(seg["length"])
        x, obj, r = state[first:last, 0:3], state[first:last, 4:7], reward[first:last]
        jerks = [np.sum((x[t + 3] - 3 * x[t + 2] + 3 * x[t + 1] - x[t]) ** 2)
                 for t in range(len(x) - 3)]
        costs["smooth"].append(float(np.mean(jerks)))
        path = sum(float(np.sqrt(np.sum((x[t + 1] - x[t]) ** 2))) for t in range(len(x) - 1))
        costs["efficient"].append(path / max(float(r.mean()), FLOOR))
        near = [float(np.sqrt(np.sum((x[t + 1] - x[t]) ** 2))) for t in range(len(x) - 1)
                if np.sqrt(np.sum((x[t] - obj[t]) ** 2)) < radius]
        costs["safe"].append(max(near, default=0.0))
        costs["return"].append(float(r.sum()))
    out = {k: np.array(v) for k, v in costs.items()}

    def z(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / v.std()

    out["quality"] = (-WEIGHTS["w_return"] * z(out["return"])
                      + WEIGHTS["w_smooth"] * z(out["smooth"])
                      + WEIGHTS["w_efficient"] * z(out["efficient"])
                      + WEIGHTS["w_safe"] * z(out["safe"]))
    return out


def teacher_rows(root: Path, split: str, teacher: str):
    table = open_dataset(root).preferences(split).to_pandas()
    return table[table["teacher"] == teacher].sort_values("pair_index").reset_index(drop=True)


@pytest.mark.parametrize("teacher", MOTION)
def test_each_teacher_prefers_the_lower_recomputed_cost(motion_data, teacher):
    costs = recomputed_costs(motion_data)[teacher]
    outcomes = []
    for split in fmt.SPLITS:
        rows = teacher_rows(motion_data, split, teacher)
        assert len(rows) == open_dataset(motion_data).info.counts.pairs[split]
        gap = costs[rows["segment_b"]] - costs[rows["segment_a"]]  # > 0: a costs less
        sure = np.abs(gap) > 1e-9 * max(np.abs(costs).max(), 1e-12)  # z-scoring rounds ties
        expected = np.where(gap > 0, 1.0, np.where(gap < 0, 0.0, 0.5))
        assert np.array_equal(rows["label"].to_numpy()[sure], expected[sure])
        assert np.all(rows["label"].to_numpy()[gap == 0] == 0.5)
        outcomes.append(rows["label"].to_numpy())
    labels = np.concatenate(outcomes)
    assert (labels == 1.0).any() and (labels == 0.0).any(), "both outcomes should occur"


def test_safe_is_a_max_near_the_object_not_a_sum(motion_data):
    costs = recomputed_costs(motion_data)["safe"]
    assert (costs == 0).any() and (costs > 0).any(), "some segments near the object, some not"


def test_info_and_card_record_each_formula(motion_data):
    info = open_dataset(motion_data).info
    assert info.teachers["safe"]["radius"] == RADIUS
    assert info.teachers["quality"]["w_return"] == WEIGHTS["w_return"]
    card = (motion_data / "README.md").read_text()
    for name in MOTION:
        formula = info.labelling["teacher_formulas"][name]
        assert formula == make_teacher(name).formula
        assert f"- `{name}`: {formula}" in card


def test_motion_labels_differ_from_the_oracle(motion_data):
    oracle = teacher_rows(motion_data, "train", "oracle")["label"]
    smooth = teacher_rows(motion_data, "train", "smooth")["label"]
    assert (oracle != smooth).any()


# --- rrm-data label ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def oracle_only(make_dataset) -> Path:
    return make_dataset(teachers="[oracle]")


def label(data: Path, out: Path, teacher: str, *extra: str) -> int:
    return main(["label", f"data={data}", f"out={out}", f"teacher={teacher}", *extra])


def test_label_gives_what_collect_gives_and_the_same_each_time(oracle_only, make_dataset,
                                                               tmp_path):
    """The same seeds give the same labels: `label` afterwards equals the teacher in
    collect's list, and two runs write the same bytes."""
    params = ["teacher_params.mistake=0.2", "teacher_params.equal=0.3"]
    assert label(oracle_only, tmp_path / "one", "smooth", *params) == 0
    assert label(oracle_only, tmp_path / "two", "smooth", *params) == 0
    assert parquet_bytes(tmp_path / "one") == parquet_bytes(tmp_path / "two")
    collected = make_dataset(teachers="[oracle,smooth]", **{"teacher_params.smooth.mistake": 0.2,
                                                             "teacher_params.smooth.equal": 0.3})
    for split in fmt.SPLITS:
        ours = teacher_rows(tmp_path / "one", split, "smooth")
        assert ours.equals(teacher_rows(collected, split, "smooth"))
        assert (ours["label"] == 0.5).any(), "equal should give some ties"
    info = open_dataset(tmp_path / "one").info
    assert info.teachers["smooth"]["mistake"] == 0.2
    assert "smooth" in info.labelling["teacher_formulas"]


def test_labelled_version_validates_and_loads(oracle_only, tmp_path):
    out = tmp_path / "safe"
    assert label(oracle_only, out, "safe", f"teacher_params.radius={RADIUS}") == 0
    assert main(["validate", f"data={out}"]) == 0
    loaded = datasets.load_dataset(str(out), "preferences", split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert set(loaded["teacher"]) == {"oracle", "safe"}
    assert loaded.num_rows == 2 * open_dataset(out).info.counts.pairs["train"]
    # In place, with replace=true, a teacher's labels are replaced, not doubled.
    assert main(["label", f"data={out}", "teacher=safe", "replace=true",
                 "teacher_params.radius=0.2"]) == 0
    info = open_dataset(out).info
    assert info.teachers["safe"]["radius"] == 0.2
    assert info.counts.labels["train"]["safe"] == info.counts.pairs["train"]
    assert main(["validate", f"data={out}"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["teacher=psychic"], "unknown teacher 'psychic'"),
    (["teacher=safe", "teacher_params.radius=-1"], "teacher_params.safe.radius"),
    (["teacher=smooth", "teacher_params.gamma=0.9"], "has no parameter 'gamma'"),
    (["teacher=oracle"], "already has labels of teacher 'oracle'; replace=true"),
    ([], "teacher= is required"),
])
def test_label_refuses_bad_input_in_one_line_before_work(oracle_only, tmp_path, capsys, args,
                                                         message):
    out = tmp_path / "out"
    assert main(["label", f"data={oracle_only}", f"out={out}", *args]) == 2
    assert message in one_line_error(capsys, "label")
    assert not out.exists()


def test_too_short_segments_and_train_online_are_refused_before_work(tmp_path, capsys):
    out = tmp_path / "short"
    args = overrides(**{**SMALL, "segment_length": 3, "teachers": ["oracle", "smooth"],
                        "out": out})
    assert main(["collect", *args]) == 2
    assert "teacher 'smooth' needs segments of at least 4 steps" in one_line_error(capsys)
    assert not out.exists()
    assert main(["train-online", "teacher=safe", f"out={tmp_path / 'run'}"]) == 2
    assert "train-online's queries do not carry" in one_line_error(capsys)


def test_a_motion_teacher_without_motion_refuses():
    pairs = PairRewards(np.zeros((2, 5)), np.ones((2, 5)))
    with pytest.raises(RrmError, match="reads the segments' hand positions"):
        make_teacher("smooth").label(pairs, np.random.default_rng(0))
