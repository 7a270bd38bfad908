"""A corruption generator: families of damage done to small real datasets, each at a few
seeded places. `validate` must name each one in one line, and no command that reads datasets
may crash on any of them (one clean line, or success where the damage does not concern it).
A derived value that disagrees with its source (an edited or mis-merged dataset) concerns every
command: each one that checks its dataset up front refuses it with validate's line."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import edit_column, edit_info, one_line_error

from rrm_data.cli import main
from rrm_data.dataset.priors import stored_priors

STEPS = "steps/train-00000-of-00001.parquet"
EPISODES = "episodes/train-00000-of-00001.parquet"
SEGMENTS = "segments/train-00000-of-00001.parquet"
TRAIN = "preferences/train-00000-of-00001.parquet"
TEST = "preferences/test-00000-of-00001.parquet"
TABLE_FILES = (STEPS, EPISODES, SEGMENTS, TRAIN, TEST)
SEEDS = (0, 1, 2)
# A tiny dataset with frames, for the families that damage images.
FRAMES = {"episodes": 4, "episode_steps": 20, "segment_length": 5, "segments_per_episode": 4,
          "pairs": 12, "image_size": 16, "camera": "corner"}
TINY_TRAIN = ["recipe=state_residual", "model.hidden=16", "model.members=1",
              "trainer.max_steps=2", "trainer.enable_progress_bar=false"]

Corrupt = Callable[[Path, np.random.Generator], str]  # damages a dataset; what validate says


@dataclass(frozen=True)
class Family:
    corrupt: Corrupt
    frames: bool = False  # needs a dataset with camera frames
    derived: bool = False  # a derived column edited: every command that checks data refuses


FAMILIES: dict[str, Family] = {}


def family(frames: bool = False, derived: bool = False) -> Callable[[Corrupt], Corrupt]:
    """Register a corruption under its function's name."""
    def add(corrupt: Corrupt) -> Corrupt:
        FAMILIES[corrupt.__name__] = Family(corrupt, frames, derived)
        return corrupt
    return add


def _rows(data: Path, file: str) -> int:
    return pq.read_metadata(data / file).num_rows


def _pick(rng: np.random.Generator, options: tuple | list) -> str:
    return options[int(rng.integers(len(options)))]


def _set_row(data: Path, file: str, column: str, row: int, value: object) -> None:
    def edit(values: np.ndarray) -> None:
        values[row] = value
    edit_column(data / file, column, edit)


def _add_to_row(data: Path, file: str, column: str, row: int, delta: float) -> None:
    def edit(values: np.ndarray) -> None:
        values[row] += delta
    edit_column(data / file, column, edit)


# --- the families ---------------------------------------------------------------------------

@family()
def truncated_parquet(data: Path, rng: np.random.Generator) -> str:
    path = data / _pick(rng, TABLE_FILES)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * rng.uniform(0.2, 0.9))])
    return "unreadable Parquet"


@family()
def garbled_parquet(data: Path, rng: np.random.Generator) -> str:
    """Noise over the footer, over the first column's pages, or a footer length past the file."""
    path = data / _pick(rng, TABLE_FILES)
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little")
    where = _pick(rng, ["footer", "pages", "length"])
    if where == "length":
        raw[-8:-4] = (len(raw) + int(rng.integers(1, 1000))).to_bytes(4, "little")
    else:
        start, stop = (len(raw) - 8 - footer, len(raw) - 8) if where == "footer" else (4, 40)
        raw[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return "unreadable Parquet"


@family()
def wrong_dtype(data: Path, rng: np.random.Generator) -> str:
    file, column, dtype = _pick(rng, [(STEPS, "next.reward", pa.float64()),
                                      (EPISODES, "length", pa.int32()),
                                      (SEGMENTS, "start", pa.float64()),
                                      (TRAIN, "label", pa.float64()),
                                      (TEST, "segment_a", pa.int32())])
    table = pq.read_table(data / file)
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, column, table.column(column).cast(dtype)), data / file)
    return f"{file} column {column}: dtype"


@family()
def non_finite(data: Path, rng: np.random.Generator) -> str:
    file, column = _pick(rng, [(STEPS, "observation.state"), (STEPS, "action"),
                               (STEPS, "next.reward"), (STEPS, "prior.gripper_object"),
                               (SEGMENTS, "return"), (EPISODES, "return")])
    value = _pick(rng, [np.nan, np.inf, -np.inf])
    row = int(rng.integers(_rows(data, file)))
    _set_row(data, file, column, row, value)
    return f"{file} row {row} column {column}: {value} is not finite"


@family()
def label_outside_range(data: Path, rng: np.random.Generator) -> str:
    file = _pick(rng, (TRAIN, TEST))
    row, value = int(rng.integers(_rows(data, file))), _pick(rng, [0.3, -1.0, 2.0, 0.25])
    _set_row(data, file, "label", row, value)
    return f"{file} row {row} column label: {value:g} is not one of 0, 0.5, 1"


@family()
def null_value(data: Path, rng: np.random.Generator) -> str:
    file, column = _pick(rng, [(TRAIN, "label"), (TEST, "label"), (SEGMENTS, "start"),
                               (EPISODES, "length"), (STEPS, "frame_index")])
    table = pq.read_table(data / file)
    row = int(rng.integers(table.num_rows))
    mask = np.arange(table.num_rows) == row
    values = pa.array(table.column(column).to_numpy(), table.schema.field(column).type, mask=mask)
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, table.schema.field(column), values), data / file)
    return f"{file} row {row} column {column}: missing value (null)"


@family()
def unknown_teacher(data: Path, rng: np.random.Generator) -> str:
    file = _pick(rng, (TRAIN, TEST))
    row = int(rng.integers(_rows(data, file)))
    _set_row(data, file, "teacher", row, _pick(rng, ["oracel", "human:", "Oracle"]))
    return f"{file} row {row} column teacher:"


@family()
def segment_outside_episode(data: Path, rng: np.random.Generator) -> str:
    """Past the episode's end (reading into the next one), before its start, or empty."""
    row = int(rng.integers(_rows(data, SEGMENTS)))
    column, value = _pick(rng, [("start", 45), ("start", 59), ("start", -1), ("length", 0),
                                ("length", 61)])
    _set_row(data, SEGMENTS, column, row, value)
    return f"{SEGMENTS} row {row} column start: segment"


@family()
def segment_gap(data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(1, _rows(data, SEGMENTS)))
    edit_column(data / SEGMENTS, "segment_index", lambda v: v + (np.arange(len(v)) >= row))
    return f"{SEGMENTS} row {row} column segment_index: {row + 1}, expected {row}"


@family()
def pair_on_missing_segment(data: Path, rng: np.random.Generator) -> str:
    file, column = _pick(rng, [(TRAIN, "segment_a"), (TEST, "segment_b")])
    row, segment = int(rng.integers(_rows(data, file))), int(rng.integers(60, 10_000))
    _set_row(data, file, column, row, segment)
    return f"{file} row {row} column {column}: segment {segment} does not exist"


@family()
def self_pair(data: Path, rng: np.random.Generator) -> str:
    file = _pick(rng, (TRAIN, TEST))
    row = int(rng.integers(_rows(data, file)))
    a = int(pq.read_table(data / file, columns=["segment_a"]).column(0)[row].as_py())
    _set_row(data, file, "segment_b", row, a)
    return f"{file} row {row} column segment_b: segment {a} is paired with itself"


@family()
def train_test_leakage(data: Path, rng: np.random.Generator) -> str:
    """A test pair takes a train pair's segment, or a test segment moves to a train episode."""
    train = pq.read_table(data / TRAIN, columns=["segment_a", "segment_b"])
    used = np.unique(np.concatenate([c.to_numpy() for c in train.columns]))
    test = pq.read_table(data / TEST, columns=["segment_a", "segment_b"])
    row = int(rng.integers(test.num_rows))
    segment = int(test.column("segment_a")[row].as_py())
    if rng.integers(2):
        segment = int(rng.choice(np.setdiff1d(used, [test.column("segment_b")[row].as_py()])))
        pair = pq.read_table(data / TEST, columns=["pair_index"]).column(0).to_numpy()
        edit_column(data / TEST, "segment_a", lambda v: np.where(pair == pair[row], segment, v))
        row = int(np.flatnonzero(pair == pair[row])[0])
    else:
        episode = pq.read_table(data / SEGMENTS, columns=["episode_index"]).column(0).to_numpy()
        _set_row(data, SEGMENTS, "episode_index", segment, int(episode[rng.choice(used)]))
        _sum_segment_again(data, segment)  # its returns follow it: leakage is the one problem
        row = int(np.flatnonzero(np.isin(test.column("segment_a").to_numpy(), segment))[0])
    return f"{TEST} row {row} column segment_a: segment {segment} is"


def _sum_segment_again(data: Path, row: int) -> None:
    """Recompute a segment's returns over its (60-step episode's) window of the steps."""
    segment = pq.read_table(data / SEGMENTS).slice(row, 1).to_pylist()[0]
    first = segment["episode_index"] * 60 + segment["start"]
    steps = pq.read_table(data / STEPS).slice(first, segment["length"])
    for column in [c for c in segment if c.startswith("return")]:
        source = "next.reward" if column == "return" else column.removeprefix("return.")
        _set_row(data, SEGMENTS, column, row, sum(steps.column(source).to_pylist()))


@family()
def episode_shifted(data: Path, rng: np.random.Generator) -> str:
    """An episode's rows moved in the steps table, or its steps given to another episode."""
    episode, shift = int(rng.integers(1, 9)), int(rng.choice([-3, 1, 7]))
    if rng.integers(2):
        for column in ("index_from", "index_to"):
            _set_row(data, EPISODES, column, episode, episode * 60 + (60 if column == "index_to"
                                                                      else 0) + shift)
        return f"{EPISODES} row {episode} column index_from"
    edit_column(data / STEPS, "episode_index",
                lambda v: np.where(v == episode, episode + 1, v))
    return f"{STEPS} row {episode * 60} column episode_index: {episode + 1}, expected {episode}"


@family()
def steps_index_gap(data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(1, _rows(data, STEPS)))
    edit_column(data / STEPS, "index", lambda v: v + (np.arange(len(v)) >= row))
    return f"{STEPS} row {row} column index: {row + 1}, expected {row}"


@family()
def pair_index_conflict(data: Path, rng: np.random.Generator) -> str:
    """A pair index reused: across splits, or within a split for other segments."""
    train = pq.read_table(data / TRAIN, columns=["pair_index"]).column(0).to_numpy()
    if rng.integers(2):
        test = pq.read_table(data / TEST, columns=["pair_index"]).column(0).to_numpy()
        moved, into = int(rng.choice(test)), int(rng.choice(train))
        edit_column(data / TEST, "pair_index", lambda v: np.where(v == moved, into, v))
        return f"{TRAIN} row {int(np.flatnonzero(train == into)[0])} column pair_index: pair " \
               f"{into} is also in the test split"
    oracle = np.flatnonzero(pq.read_table(data / TRAIN, columns=["teacher"]).column(0)
                            .to_numpy(zero_copy_only=False) == "oracle")
    row = int(rng.choice(oracle[1:]))
    _set_row(data, TRAIN, "pair_index", row, int(train[oracle[0]]))
    return f"{TRAIN} row {row} column pair_index:"


@family(frames=True)
def undecodable_frame(data: Path, rng: np.random.Generator) -> str:
    """One PNG cut short, filled with noise, emptied, or its header kept over noise."""
    column = "observation.images.corner"
    table = pq.read_table(data / STEPS)
    images = table.column(column).combine_chunks()
    pngs = images.field("bytes").to_pylist()
    row = int(rng.integers(len(pngs)))
    kind = int(rng.integers(4))
    noise = rng.integers(0, 256, len(pngs[row]), dtype=np.uint8).tobytes()
    pngs[row] = [pngs[row][: len(pngs[row]) // 2], noise, b"", pngs[row][:33] + noise][kind]
    struct = pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), images.field("path")],
                                        fields=list(images.type))
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, table.schema.field(column), struct), data / STEPS)
    return f"{STEPS} row {row} column {column}: undecodable frame"


@family()
def info_not_an_object(data: Path, rng: np.random.Generator) -> str:
    (data / "meta" / "info.json").write_text(_pick(rng, ["[1, 2]", '"rrm-data/1"', "42", "null"]))
    return "meta/info.json: expected a JSON object"


@family()
def info_invalid_json(data: Path, rng: np.random.Generator) -> str:
    path = data / "meta" / "info.json"
    text = path.read_text()
    path.write_text(_pick(rng, [text[: len(text) // 2], text + "}", "{'format': 1}", ""]))
    return "meta/info.json: invalid JSON"


@family()
def info_missing_counts(data: Path, rng: np.random.Generator) -> str:
    key = _pick(rng, ["counts", "steps", "pairs", "labels"])
    edit_info(data, lambda info: (info if key == "counts" else info["counts"]).pop(key))
    return "meta/info.json: lacks counts" if key == "counts" else "counts must hold"


@family()
def info_wrong_counts(data: Path, rng: np.random.Generator) -> str:
    key = _pick(rng, ["episodes", "steps", "segments", "successes"])
    delta = int(rng.choice([-2, -1, 1, 3]))
    info = json.loads((data / "meta" / "info.json").read_text())
    value = info["counts"][key] + delta
    edit_info(data, lambda info: info["counts"].update({key: value}))
    return f"meta/info.json: counts.{key} is {value}, but the dataset has"


@family()
def empty_split(data: Path, rng: np.random.Generator) -> str:
    file = _pick(rng, TABLE_FILES)
    table = pq.read_table(data / file)
    pq.write_table(table.slice(0, 0), data / file)
    return f"{file}: no rows"


@family()
def unknown_table(data: Path, rng: np.random.Generator) -> str:
    table = _pick(rng, ["extras", "preferences_v2", "embeddings/enc/old", "embeddings"])
    (data / table).mkdir(parents=True, exist_ok=True)
    pq.write_table(pq.read_table(data / SEGMENTS), data / table / "train-00000-of-00001.parquet")
    return f"{table}/: not a table of the rrm-data/1 format"


@family()
def missing_table_file(data: Path, rng: np.random.Generator) -> str:
    file = _pick(rng, TABLE_FILES)
    (data / file).unlink()
    return f"{file.split('/')[0]}/: no {file.split('/')[1].split('-')[0]}-*.parquet files"


# --- derived columns edited: each no longer agrees with the steps it is computed from --------
# Every edit is far outside validate's float32 tolerance (1e-4 of the window's magnitude).

@family(derived=True)
def episode_return_edited(data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(_rows(data, EPISODES)))
    _add_to_row(data, EPISODES, "return", row, _pick(rng, [1.0, -2.5, 50.0]))
    return f"{EPISODES} row {row} column return: "


@family(derived=True)
def episode_length_edited(data: Path, rng: np.random.Generator) -> str:
    """One step more or fewer than the episode's rows of the steps table (and its bounds)."""
    row, delta = int(rng.integers(_rows(data, EPISODES))), int(_pick(rng, [-1, 1, 5]))
    _add_to_row(data, EPISODES, "length", row, delta)
    return f"{EPISODES} row {row} column length: {60 + delta}, but episode"


@family(derived=True)
def episode_success_flipped(data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(_rows(data, EPISODES)))
    success = bool(pq.read_table(data / EPISODES, columns=["success"]).column(0)[row].as_py())
    _set_row(data, EPISODES, "success", row, not success)
    return f"{EPISODES} row {row} column success: {not success}, but next.success is true at"


@family(derived=True)
def segment_return_edited(data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(_rows(data, SEGMENTS)))
    _add_to_row(data, SEGMENTS, "return", row, _pick(rng, [1.0, -2.5, 50.0]))
    return f"{SEGMENTS} row {row} column return: "


def _step_prior_edited(name: str, data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(_rows(data, STEPS)))
    _add_to_row(data, STEPS, f"prior.{name}", row, _pick(rng, [0.05, -0.2, 1.0]))
    return f"{STEPS} row {row} column prior.{name}: "


def _segment_prior_return_edited(name: str, data: Path, rng: np.random.Generator) -> str:
    row = int(rng.integers(_rows(data, SEGMENTS)))
    _add_to_row(data, SEGMENTS, f"return.prior.{name}", row, _pick(rng, [0.5, -1.0, 3.0]))
    return f"{SEGMENTS} row {row} column return.prior.{name}: "


for _prior in stored_priors():  # one family per stored prior column and per segment prior sum
    FAMILIES[f"step_prior_{_prior}_edited"] = Family(partial(_step_prior_edited, _prior),
                                                     derived=True)
    FAMILIES[f"segment_prior_{_prior}_return_edited"] = Family(
        partial(_segment_prior_return_edited, _prior), derived=True)


CASES = [pytest.param(name, seed, id=f"{name}-{seed}") for name in FAMILIES for seed in SEEDS]


# --- the tests ------------------------------------------------------------------------------

def test_the_generator_is_large_enough() -> None:
    assert len(FAMILIES) >= 12
    assert len(CASES) >= 40


@pytest.fixture(scope="module")
def frames_dataset(make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(**FRAMES)


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[str, Counter[str]]]:
    """Exit codes per command over all cases; printed at the end (pytest -s shows them)."""
    seen: dict[str, Counter[str]] = {}
    yield seen
    for command, codes in seen.items():
        print(f"{command}: {dict(codes)}")


def reading_commands(data: Path, tmp: Path, frames: bool,
                     derived: bool = False) -> dict[str, list[str]]:
    """Every command that reads a dataset, with tiny settings and outputs under ``tmp``; the
    ones that decode frames (embed, gallery) on the datasets that have frames. A derived
    column's damage adds the commands that would work for long on a sound dataset (query,
    render, publish): each must refuse it before any work."""
    commands = {
        "info": ["info", f"data={data}"],
        "train-reward": ["train-reward", f"data={data}", f"out={tmp / 'run'}", *TINY_TRAIN],
        "evaluate": ["evaluate", "reward=true", f"data={data}", f"out={tmp / 'report'}"],
        "score": ["score", "reward=true", f"data={data}", f"out={tmp / 'scores.parquet'}"],
        "export-trl": ["export-trl", f"data={data}", f"out={tmp / 'trl.parquet'}"],
    }
    if frames or derived:
        commands["embed"] = ["embed", f"data={data}"]
        commands["gallery"] = ["gallery", "reward=true", f"data={data}", "k=1", "frames=2",
                               f"out={tmp / 'gallery'}"]
    if derived:
        commands["query"] = ["query", f"data={data}", "strategy=uniform", "n=2",
                             f"out={tmp / 'queried'}"]
        commands["render"] = ["render", f"data={data}", "image_size=16", f"out={tmp / 'rendered'}"]
        commands["publish"] = ["publish", f"data={data}", "repo_id=rrm-test/prefs", "dry_run=true",
                               f"out={tmp / 'published'}"]
    return commands


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_corruption_is_caught_and_no_command_crashes(
        name: str, seed: int, small_dataset: Path, request: pytest.FixtureRequest,
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        outcomes: dict[str, Counter[str]]) -> None:
    spec = FAMILIES[name]
    source = request.getfixturevalue("frames_dataset") if spec.frames else small_dataset
    data = Path(shutil.copytree(source, tmp_path / "data"))
    expected = spec.corrupt(data, np.random.default_rng(seed))
    capsys.readouterr()

    assert main(["validate", f"data={data}"]) == 2
    assert expected in one_line_error(capsys, "validate")
    outcomes.setdefault("validate", Counter())["refused"] += 1

    for command, argv in reading_commands(data, tmp_path / "out", spec.frames,
                                          spec.derived).items():
        code = main(argv)  # a crash raises here: the in-process form of a traceback
        err = capsys.readouterr().err
        assert code in (0, 2), (command, code, err)
        assert code == 2 or not spec.derived or command == "info", (command, err)
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"rrm-data {command}: error: "), lines
            assert command == "info" or expected in lines[0]  # validate's own message
        outcomes.setdefault(command, Counter())["refused" if code else "ran"] += 1
