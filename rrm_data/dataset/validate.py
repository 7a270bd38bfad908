"""Check a dataset directory against the rrm-data/1 format.

Three stages, each run only when the ones before found nothing, so the first problem
reported is a cause rather than a consequence of one: meta/info.json against its JSON
Schema; every Parquet file's footer and Arrow schema against its table's JSON Schema;
then the values (references between tables, value ranges, counts, and every derived column
against the steps it is computed from), checked on whole columns at once with numpy. Tables are
read through the dataset's one snapshot (dataset/snapshot.py), so a command that checks before
it works reads each file once: the columns the check read are the ones it then uses.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jsonschema import Draft202012Validator, ValidationError
from PIL import Image
from referencing import Registry, Resource

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import pair_keys, positions
from rrm_data.dataset.format import table_features
from rrm_data.dataset.info import DatasetInfo, InfoUnreadable
from rrm_data.dataset.priors import PRIORS
from rrm_data.dataset.snapshot import DatasetFiles, UnreadableParquet
from rrm_data.errors import RrmError, first_line
from rrm_data.resources import resource_dir

INFO = fmt.INFO_FILE
EMBEDDINGS = "embeddings"
LABELS = (0.0, 0.5, 1.0)
NEEDS_ROWS = ("steps", "episodes", "segments")  # tables that are empty only when broken
KNOWN_TABLES = "steps, episodes, segments, preferences, queries, embeddings/<encoder>"
# A derived value agrees with its source when |stored - recomputed| <= ATOL + RTOL * scale, the
# scale being the sum of the terms' magnitudes (|value| for one step's prior). Writers sum float32
# values in float64 and round once, but a sum of n float32 terms accumulated in float32 is off by
# up to (n - 1) * 2^-24 * sum|terms|: 3e-5 for Meta-World's longest episodes (500 steps), so RTOL
# = 1e-4 accepts every honest summation order while an edit of 0.01% of a window's magnitude is
# caught. ATOL covers values near 0: a prior recomputed from the float32 state differs from the
# one written from the float64 observation by ~1e-7 m.
RTOL, ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class Problem:
    """One way a dataset breaks the format, located as precisely as possible."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column {self.column}"
        return f"{where}: {self.message}"


Dataset = str | Path | DatasetFiles  # a path, or a dataset opened once (its reads are shared)


def dataset_problems(data: Dataset, frames: bool = True) -> Iterator[Problem]:
    """Every problem of the dataset, lazily: take the first with ``next``. ``frames=False``
    checks camera frames by their schema only, without decoding them, for commands that never
    read them and for a writer checking frames it has just encoded."""
    dataset = data if isinstance(data, DatasetFiles) else DatasetFiles(Path(data))
    return _Checker(dataset, frames).problems()


def validate_dataset(data: Dataset) -> list[Problem]:
    """All problems of the dataset; empty when it is a valid rrm-data/1 dataset."""
    return list(dataset_problems(data))


def check_dataset(data: Dataset, frames: bool = True) -> None:
    """Raise RrmError naming the first problem (file, row, column) of the dataset."""
    problem = next(dataset_problems(data, frames), None)
    if problem is not None:
        raise RrmError(str(problem))


# --- JSON Schemas ---------------------------------------------------------------------------

@cache
def schema_validator(name: str) -> Draft202012Validator:
    """Validator of ``schemas/<name>.schema.json``; references between schemas go by file name."""
    schemas = {p.name: json.loads(p.read_text())
               for p in resource_dir("schemas").glob("*.schema.json")}
    registry = Registry().with_resources(
        (file, Resource.from_contents(schema)) for file, schema in schemas.items())
    return Draft202012Validator(schemas[f"{name}.schema.json"], registry=registry)


def table_schema_name(table: str) -> str | None:
    """Which table schema a table directory follows (None: no schema, e.g. a tool's extra)."""
    if table in fmt.TABLES or table == fmt.QUERIES:
        return table
    parts = table.split("/")
    return EMBEDDINGS if len(parts) == 2 and parts[0] == EMBEDDINGS else None


def describe_schema(schema: pa.Schema) -> dict[str, dict[str, Any]]:
    """``{column: {dtype, shape, names}}`` of a Parquet file, as meta/info.json describes tables."""
    return table_features(schema.empty_table())


def _column_error(error: ValidationError, table: str) -> tuple[str | None, str]:
    """(column, message) of a table-schema error, in words a user can act on."""
    # jsonschema types these as possibly unset; a table-schema error about the columns object
    # has its schema (a mapping), the columns object itself and the keyword's value
    if error.validator == "required":
        required = cast(list[str], error.validator_value)
        columns = cast(Mapping[str, Any], error.instance)
        missing = next(c for c in required if c not in columns)
        return missing, f"missing (the {table} table requires it)"
    if error.validator == "additionalProperties":
        schema = cast(Mapping[str, Any], error.schema)
        columns = cast(Mapping[str, Any], error.instance)
        patterns = schema.get("patternProperties", {})
        extra = next(c for c in columns if c not in schema.get("properties", {})
                     and not any(re.search(p, c) for p in patterns))
        return extra, f"not a column of the {table} table"
    column, *rest = error.absolute_path
    column = str(column)  # the path starts at a column name (the columns object's key)
    field = ".".join(map(str, rest))
    if error.validator == "const":
        return column, (f"{field} {json.dumps(error.instance)}, "
                        f"expected {json.dumps(error.validator_value)}")
    return column, f"{field}: {error.message}"


def _kind(feature: dict[str, Any] | None) -> str:
    return "absent" if feature is None else f"{feature['dtype']}{feature['shape']}"


# --- the tables as files --------------------------------------------------------------------

@dataclass(frozen=True)
class TablePart:
    """One split of one table: its Parquet files, read as one sequence of rows."""

    dataset: DatasetFiles
    files: list[Path]
    offsets: np.ndarray  # first row of each file, then the total
    schema: pa.Schema

    def relative(self, path: Path) -> str:
        return path.relative_to(self.dataset.root).as_posix()

    def problem(self, row: int, column: str | None, message: str) -> Problem:
        """A problem at a row of the whole split, located in the file that holds it."""
        i = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return Problem(self.relative(self.files[i]), message, int(row - self.offsets[i]), column)

    def shard(self, i: int) -> TablePart:
        """The rows of file ``i`` as a part of their own, to read a large column file by file."""
        return TablePart(self.dataset, self.files[i:i + 1],
                         self.offsets[i:i + 2] - self.offsets[i], self.schema)

    def read(self, columns: list[str], keep: bool = True) -> pa.Table:
        """Columns of the split, through the dataset's reads (``keep=False``: read from the
        files and not kept, for large columns checked a file at a time)."""
        try:
            if keep:
                return self.dataset.read(self.files, columns)
            return pa.concat_tables(self.dataset.parquet_file(path).read(columns=columns)
                                    for path in self.files)
        except (pa.ArrowException, OSError) as exc:  # read from a file, not kept
            raise _Unreadable(Problem(self.relative(self.files[0]), _unreadable(exc))) from None
        except UnreadableParquet as exc:
            raise _Unreadable(Problem(self.relative(exc.path), exc.reason)) from None


class _Unreadable(Exception):
    """A Parquet file whose footer was fine failed while its values were read."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _unreadable(exc: Exception) -> str:
    return f"unreadable Parquet ({first_line(exc)})"


def _layout(dataset: DatasetFiles) -> dict[tuple[str, str], list[Path]]:
    """Parquet files by (table directory, split), e.g. ('embeddings/enc', 'train')."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in dataset.snapshot.files:
        split = fmt.shard_split(path.name) or path.stem
        groups[(path.parent.relative_to(dataset.root).as_posix(), split)].append(path)
    return dict(groups)


# --- column helpers -------------------------------------------------------------------------

def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column as a (rows, width) array: width 1 for scalars, the list size for vectors."""
    if pa.types.is_fixed_size_list(column.type):
        flat = column.combine_chunks().flatten()
        return flat.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
    return column.to_numpy()[:, None]


def _first(mask: np.ndarray) -> int | None:
    rows = np.flatnonzero(mask)
    return int(rows[0]) if rows.size else None


def _repeated(keys: np.ndarray) -> np.ndarray:
    """True at every occurrence of a key after its first."""
    order = np.argsort(keys, kind="stable")
    mask = np.zeros(len(keys), bool)
    mask[order[1:][keys[order][1:] == keys[order][:-1]]] = True
    return mask


def _nulls(part: TablePart, table: pa.Table) -> Iterator[Problem]:
    for name in table.column_names:
        if table.column(name).null_count:
            row = _first(pc.is_null(table.column(name)).to_numpy(zero_copy_only=False))
            assert row is not None  # the column has nulls
            yield part.problem(row, name, "missing value (null)")
            return


def _non_finite(part: TablePart, table: pa.Table, columns: list[str]) -> Iterator[Problem]:
    for name in columns:
        values = _numbers(table.column(name))
        bad = ~np.isfinite(values)
        row = _first(bad.any(axis=1))
        if row is not None:
            j = int(np.flatnonzero(bad[row])[0])
            element = f" (element {j})" if values.shape[1] > 1 else ""
            yield part.problem(row, name, f"{values[row, j]} is not finite{element}")


# --- the checks -----------------------------------------------------------------------------

class _Checker:
    """Runs the stages in order over one dataset directory."""

    def __init__(self, dataset: DatasetFiles, frames: bool = True) -> None:
        self.dataset = dataset
        self.root = dataset.root
        self.frames = frames
        self.info: DatasetInfo  # the typed description, set once its schema is checked
        self.parts: dict[tuple[str, str], TablePart] = {}

    def problems(self) -> Iterator[Problem]:
        for stage in (self._info_problems, self._file_problems, self._value_problems):
            found = False
            for problem in stage():
                found = True
                yield problem
            if found:
                return

    # stage 1
    def _info_problems(self) -> Iterator[Problem]:
        raw = self.dataset.snapshot.info
        if isinstance(raw, InfoUnreadable):
            yield Problem(INFO, raw.reason)
            return
        errors = sorted(schema_validator("info").iter_errors(raw), key=lambda e: e.json_path)
        for error in errors:
            at = ".".join(map(str, error.absolute_path)) or "top level"
            yield Problem(INFO, f"at {at}: {error.message}")
        if not errors:
            self.info = self.dataset.info

    # stage 2
    def _file_problems(self) -> Iterator[Problem]:
        layout = _layout(self.dataset)
        for table in fmt.TABLES:
            for split in sorted({"train", *self.info.splits.get(table, [])}):
                if (table, split) not in layout:
                    yield Problem(f"{table}/", f"no {split}-*.parquet files")
        for table in sorted({table for table, _ in layout}):
            if table_schema_name(table) is None:
                yield Problem(f"{table}/", f"not a table of the rrm-data/1 format (known: "
                                           f"{KNOWN_TABLES})")
        for (table, split), files in layout.items():
            rows, schema = [0], None
            for path in files:
                relative = path.relative_to(self.root).as_posix()
                handle = self.dataset.snapshot.files[path]
                if isinstance(handle, UnreadableParquet):
                    yield Problem(relative, handle.reason)
                    continue
                metadata = handle.metadata
                schema = metadata.schema.to_arrow_schema()
                rows.append(rows[-1] + metadata.num_rows)
                yield from self._schema_problems(relative, table, describe_schema(schema))
            if schema is not None and len(rows) == len(files) + 1:
                self.parts[(table, split)] = TablePart(self.dataset, files, np.array(rows), schema)
                yield from self._empty_problems(table, split, files[0], rows[-1])

    def _empty_problems(self, table: str, split: str, first: Path,
                        rows: int) -> Iterator[Problem]:
        """A split without rows where the format needs some: every later check (and every
        command) would otherwise work on nothing."""
        relative = first.relative_to(self.root).as_posix()
        if rows == 0 and table in NEEDS_ROWS:
            yield Problem(relative, f"no rows: the {table} table needs at least one")
        pairs = self.info.counts.pairs.get(split, 0)
        if rows == 0 and table == "preferences" and pairs > 0:
            yield Problem(relative, f"no rows, but {INFO} counts.pairs.{split} is {pairs}")

    def _schema_problems(self, relative: str, table: str,
                         description: dict[str, Any]) -> Iterator[Problem]:
        name = table_schema_name(table)
        if name is None:
            return
        errors = schema_validator(name).iter_errors(description)
        for error in sorted(errors, key=lambda e: e.json_path):
            column, message = _column_error(error, table)
            yield Problem(relative, message, column=column)
        declared = self.info.features.get(table)
        if declared is None:
            return
        for column in sorted(set(declared) | set(description)):
            have, said = description.get(column), declared.get(column)
            if _kind(have) != _kind(said):
                yield Problem(relative, f"{_kind(have)}, but {INFO} features say {_kind(said)}",
                              column=column)

    # stage 3
    def _value_problems(self) -> Iterator[Problem]:
        try:
            yield from self._check_values()
        except _Unreadable as exc:
            yield exc.problem

    def _check_values(self) -> Iterator[Problem]:
        steps_part = self.parts[("steps", "train")]
        episodes_part = self.parts[("episodes", "train")]
        segments_part = self.parts[("segments", "train")]
        priors = [n for n in steps_part.schema.names if n.startswith("prior.")]
        steps = steps_part.read(["index", "episode_index", "frame_index", fmt.STATE, fmt.ACTION,
                                 fmt.REWARD, fmt.SUCCESS, *priors])
        episodes = episodes_part.read(["episode_index", "length", "index_from", "index_to",
                                       "return", "success"])
        segment_priors = [n for n in segments_part.schema.names if n.startswith("return.")]
        segments = segments_part.read(["segment_index", "episode_index", "start", "length",
                                       "return", *segment_priors])
        preferences = {split: (part, part.read(["pair_index", "segment_a", "segment_b", "label",
                                                "teacher"]))
                       for (table, split), part in sorted(self.parts.items())
                       if table == "preferences"}
        confidence = {split: part.read(["confidence"]).column("confidence")
                      for (table, split), part in self.parts.items()
                      if table == "preferences" and "confidence" in part.schema.names}
        preferences = {split: (part, table.append_column("confidence", confidence[split])
                               if split in confidence else table)
                       for split, (part, table) in preferences.items()}
        nulls = (problem for part, table in [(steps_part, steps), (episodes_part, episodes),
                                             (segments_part, segments), *preferences.values()]
                 for problem in _nulls(part, table.drop_columns(
                     [c for c in ["confidence"] if c in table.column_names])))
        sound = True
        for problem in chain(
                nulls,
                _steps_problems(steps_part, steps, [fmt.STATE, fmt.ACTION, fmt.REWARD, *priors]),
                _image_problems(steps_part) if self.frames else (),
                _non_finite(episodes_part, episodes, ["return"]),
                _non_finite(segments_part, segments, ["return", *segment_priors]),
                _episode_problems(episodes_part, episodes, steps_part, steps),
                _segment_problems(segments_part, segments, episodes)):
            sound = False
            yield problem
        if sound:  # derived values are recomputed over sound tables only
            yield from _derived_problems(steps_part, steps, episodes_part, episodes,
                                         segments_part, segments)
        yield from _preference_problems(preferences, segments.column("segment_index").to_numpy(),
                                        segments.column("episode_index").to_numpy(),
                                        list(self.info.teachers))
        if (fmt.QUERIES, "train") in self.parts:
            yield from _query_problems(self.parts[(fmt.QUERIES, "train")],
                                       segments.column("segment_index").to_numpy())
        yield from self._extra_table_problems(steps.num_rows)
        yield from self._count_problems(steps, episodes, segments,
                                        {s: t for s, (_, t) in preferences.items()})

    def _extra_table_problems(self, n_steps: int) -> Iterator[Problem]:
        """Tables beyond the four (embeddings, tools' extras) point at steps that exist."""
        for (table, _), part in sorted(self.parts.items()):
            if table in fmt.TABLES or "index" not in part.schema.names:
                continue
            is_embedding = table_schema_name(table) == EMBEDDINGS
            values = part.read(["index", "features"] if is_embedding else ["index"])
            yield from _nulls(part, values)
            index = values.column("index").to_numpy()
            row = _first((index < 0) | (index >= n_steps))
            if row is not None:
                yield part.problem(row, "index", f"step {index[row]} does not exist "
                                                 f"(the steps table has {n_steps} rows)")
            if is_embedding:
                yield from _non_finite(part, values, ["features"])

    def _count_problems(self, steps: pa.Table, episodes: pa.Table, segments: pa.Table,
                        preferences: dict[str, pa.Table]) -> Iterator[Problem]:
        counts = dataclasses.asdict(self.info.counts)
        actual = {"episodes": episodes.num_rows, "steps": steps.num_rows,
                  "segments": segments.num_rows,
                  "successes": int(np.sum(episodes.column("success").to_numpy()))}
        for key, value in actual.items():
            if counts[key] != value:
                yield Problem(INFO, f"counts.{key} is {counts[key]}, but the dataset has {value}")
        for split in sorted(set(preferences) | set(counts["labels"])):
            teachers = preferences[split]["teacher"] if split in preferences else pa.array([])
            rows = {c["values"]: c["counts"] for c in pc.value_counts(teachers).to_pylist()}
            said = counts["labels"].get(split, {})
            skipped = counts["skipped"].get(split, {})
            pairs = counts["pairs"].get(split, 0)
            for teacher in sorted(set(rows) | set(said)):
                if rows.get(teacher, 0) != said.get(teacher, 0):
                    yield Problem(INFO, f"counts.labels.{split}.{teacher} is "
                                        f"{said.get(teacher, 0)}, but preferences/{split} has "
                                        f"{rows.get(teacher, 0)} rows of teacher {teacher}")
                elif fmt.is_human_teacher(teacher):
                    continue  # people label the queried pairs they were shown, not every pair
                elif said.get(teacher, 0) + skipped.get(teacher, 0) != pairs:
                    yield Problem(INFO, f"counts.labels.{split}.{teacher} + counts.skipped."
                                        f"{split}.{teacher} != counts.pairs.{split} ({pairs})")


def _steps_problems(part: TablePart, steps: pa.Table, numeric: list[str]) -> Iterator[Problem]:
    index = steps.column("index").to_numpy()
    row = _first(index != np.arange(len(index)))
    if row is not None:
        yield part.problem(row, "index", f"{index[row]}, expected {row}: index numbers the steps "
                                         "0, 1, 2, ... in row order")
    yield from _non_finite(part, steps, numeric)


def _image_problems(part: TablePart) -> Iterator[Problem]:
    """Every stored camera frame decodes as an image (a file at a time, to bound memory);
    a header check is not enough, a frame cut short only fails when its pixels are read."""
    cameras = [n for n in part.schema.names if n.startswith(fmt.image_column(""))]
    for column in cameras:
        for i in range(len(part.files)):
            values = part.shard(i).read([column], keep=False).column(column).combine_chunks()
            pngs = values.field("bytes")
            row = _first(pc.is_null(pngs).to_numpy(zero_copy_only=False)
                         | pc.is_null(values).to_numpy(zero_copy_only=False))
            if row is not None:
                yield part.problem(int(part.offsets[i]) + row, column, "frame without image bytes")
                return
            for row, data in enumerate(pngs.to_pylist()):
                message = _undecodable(data)
                if message is not None:
                    yield part.problem(int(part.offsets[i]) + row, column,
                                       f"undecodable frame ({message})")
                    return


def _undecodable(data: bytes) -> str | None:
    """Why a frame's bytes are not an image (None: they decode)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:  # what PIL raises on broken data
        return first_line(exc)
    return None


def _episode_problems(part: TablePart, episodes: pa.Table, steps_part: TablePart,
                      steps: pa.Table) -> Iterator[Problem]:
    """Episodes are unique and tile the steps table; each step's episode and frame agree."""
    ids, length, start, stop = (episodes.column(c).to_numpy()
                                for c in ("episode_index", "length", "index_from", "index_to"))
    at = positions(ids, steps.column("episode_index").to_numpy())
    owned = np.bincount(at[at >= 0], minlength=len(ids))  # the steps rows of each episode
    # index_to - index_from != length: length is the odd one out when the steps agree with the
    # bounds, so it is named, as the derived column it is
    wrong_length = (stop - start != length) & (stop - start == owned)
    checks = [
        ("episode_index", _repeated(ids), lambda r: f"episode {ids[r]} appears more than once"),
        ("length", length < 1, lambda r: f"{length[r]}: an episode has at least one step"),
        ("length", wrong_length,
         lambda r: f"{length[r]}, but episode {ids[r]} has {owned[r]} steps (index_from "
                   f"{start[r]} to index_to {stop[r]}, and its rows of the steps table)"),
        ("index_to", (stop - start != length) & ~wrong_length,
         lambda r: f"{stop[r]}, expected index_from + length = {start[r] + length[r]}"),
    ]
    order = np.argsort(start, kind="stable")
    expected_start = np.empty_like(start)
    expected_start[order] = np.cumsum(length[order]) - length[order]
    checks.append(("index_from", start != expected_start,
                   lambda r: f"{start[r]}, expected {expected_start[r]}: episodes must tile the "
                             "steps table in order"))
    broken = False
    for column, mask, message in checks:
        row = _first(mask)
        if row is not None:
            broken = True
            yield part.problem(row, column, message(row))
    if broken:
        return
    total = int(length.sum())
    if total < steps.num_rows:
        yield steps_part.problem(total, "episode_index", f"step {total} belongs to no episode "
                                                         f"(episodes cover {total} steps)")
        return
    if total > steps.num_rows:
        yield part.problem(int(order[-1]), "index_to", f"{stop[order[-1]]}, but the steps table "
                                                       f"has {steps.num_rows} rows")
        return
    owner = np.repeat(ids[order], length[order])
    frame = np.arange(steps.num_rows) - np.repeat(start[order], length[order])
    for column, expected in (("episode_index", owner), ("frame_index", frame)):
        values = steps.column(column).to_numpy()
        row = _first(values != expected)
        if row is not None:
            yield steps_part.problem(row, column, f"{values[row]}, expected {expected[row]}: "
                                                  f"episodes put step {row} at frame {frame[row]} "
                                                  f"of episode {owner[row]}")


def _derived_problems(steps_part: TablePart, steps: pa.Table, episodes_part: TablePart,
                      episodes: pa.Table, segments_part: TablePart,
                      segments: pa.Table) -> Iterator[Problem]:
    """Every derived value agrees with what it is computed from: each stored ``prior.<name>``
    with its formula over ``observation.state``; an episode's ``return`` and ``success`` with
    its steps' rewards and success flags; a segment's ``return`` and ``return.prior.<name>``
    with the sums over its window. The structure (tiling, segments inside episodes) is sound."""
    state = _numbers(steps.column(fmt.STATE))
    for column in fmt.prior_columns(steps.column_names):
        name = fmt.prior_name(column)
        if name not in PRIORS:
            yield steps_part.problem(0, column, f"{PRIORS.unknown(name)} (its values cannot be "
                                                "checked against a formula)")
            continue
        stored = steps.column(column).to_numpy().astype(np.float64)
        expected = np.asarray(PRIORS.get(name)(state), np.float64)
        row = _first(~_agrees(stored, expected, np.abs(expected)))
        if row is not None:
            yield steps_part.problem(row, column, f"{stored[row]:.6g}, but its formula "
                                                  f"{PRIORS.get(name).formula} over "
                                                  f"{fmt.STATE} gives {expected[row]:.6g}")
    start, length, success = (episodes.column(c).to_numpy()
                              for c in ("index_from", "length", "success"))
    reward = steps.column(fmt.REWARD).to_numpy()
    yield from _sum_problems(episodes_part, episodes.column("return").to_numpy(), reward,
                             start, length, "return", f"the episode's {fmt.REWARD}")
    successes = _window_sums(steps.column(fmt.SUCCESS).to_numpy(zero_copy_only=False),
                             start, length)
    row = _first(success != (successes > 0))
    if row is not None:
        yield episodes_part.problem(row, "success", f"{success[row]}, but {fmt.SUCCESS} is true "
                                                    f"at {successes[row]:g} of its steps")
    seg_start, seg_length, seg_episode = (segments.column(c).to_numpy()
                                          for c in ("start", "length", "episode_index"))
    first = start[positions(episodes.column("episode_index").to_numpy(), seg_episode)] + seg_start

    def window(r: int) -> str:
        return f" over steps [{seg_start[r]}, {seg_start[r] + seg_length[r]}) of episode " \
               f"{seg_episode[r]}"

    for column in ["return", *(c for c in segments.column_names if c.startswith("return."))]:
        source = fmt.REWARD if column == "return" else column.removeprefix("return.")
        if source not in steps.column_names:
            yield segments_part.problem(0, column, f"the steps table has no {source} column "
                                                   "to sum it from")
            continue
        yield from _sum_problems(segments_part, segments.column(column).to_numpy(),
                                 steps.column(source).to_numpy(), first, seg_length, column,
                                 source, window)


def _sum_problems(part: TablePart, stored: np.ndarray, values: np.ndarray, first: np.ndarray,
                  length: np.ndarray, column: str, source: str,
                  window: Callable[[int], str] = lambda row: "") -> Iterator[Problem]:
    """The first row whose stored sum disagrees with its window of ``values`` (``source``,
    and the ``window`` of a row, name them in the message)."""
    expected = _window_sums(values, first, length)
    scale = _window_sums(np.abs(values), first, length)
    row = _first(~_agrees(stored.astype(np.float64), expected, scale))
    if row is not None:
        yield part.problem(row, column, f"{stored[row]:.6g}, but {source}{window(row)} sum to "
                                        f"{expected[row]:.6g}")


def _window_sums(values: np.ndarray, first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``values[first:first + length].sum()`` of each window (length >= 1) in float64, in one
    ``reduceat`` over the window bounds (the sums between windows are dropped)."""
    padded = np.append(values.astype(np.float64), 0.0)  # a window may end at the last value
    return np.add.reduceat(padded, np.stack([first, first + length], axis=1).ravel())[::2]


def _agrees(stored: np.ndarray, expected: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Where a stored derived value equals its recomputation up to float32 rounding."""
    return np.abs(stored - expected) <= ATOL + RTOL * scale


def _segment_problems(part: TablePart, segments: pa.Table,
                      episodes: pa.Table) -> Iterator[Problem]:
    """Segments are unique, belong to an existing episode and lie inside it."""
    ids, episode, start, length = (segments.column(c).to_numpy()
                                   for c in ("segment_index", "episode_index", "start", "length"))
    row = _first(_repeated(ids))
    if row is not None:
        yield part.problem(row, "segment_index", f"segment {ids[row]} appears more than once")
    row = _first(ids != np.arange(len(ids)))
    if row is not None:
        yield part.problem(row, "segment_index", f"{ids[row]}, expected {row}: segment_index "
                                                 "numbers the segments 0, 1, 2, ... in row order")
    at = positions(episodes.column("episode_index").to_numpy(), episode)
    row = _first(at < 0)
    if row is not None:
        yield part.problem(row, "episode_index", f"episode {episode[row]} does not exist")
    episode_length = np.where(at >= 0, episodes.column("length").to_numpy()[at], 0)
    outside = (at >= 0) & ((start < 0) | (length < 1) | (start + length > episode_length))
    row = _first(outside)
    if row is not None:
        yield part.problem(row, "start", f"segment [{start[row]}, {start[row] + length[row]}) "
                                         f"lies outside episode {episode[row]} of length "
                                         f"{episode_length[row]}")


def _preference_problems(preferences: dict[str, tuple[TablePart, pa.Table]],
                         segment_ids: np.ndarray, segment_episodes: np.ndarray,
                         teachers: list[str]) -> Iterator[Problem]:
    """Labels are valid, teachers are those meta/info.json declares (or people's), pairs point
    at segments, test pairs are oracle-labelled, pair indices are consistent."""
    segments_of = {}
    for split, (part, table) in preferences.items():
        label = table.column("label").to_numpy()
        row = _first(~np.isin(label, LABELS))
        if row is not None:
            yield part.problem(row, "label", f"{label[row]:g} is not one of 0, 0.5, 1")
        teacher = table.column("teacher").to_numpy(zero_copy_only=False)
        unknown = [t for t in np.unique(teacher)
                   if t not in teachers and not fmt.is_human_teacher(t)]
        row = _first(np.isin(teacher, unknown))
        if row is not None:
            yield part.problem(row, "teacher", f"'{teacher[row]}' is not a known teacher "
                                               f"({INFO} teachers: {', '.join(teachers)}; "
                                               "people: human, human:<annotator>)")
        if "confidence" in table.column_names:
            yield from _confidence_problems(part, table)
        a, b = (table.column(c).to_numpy() for c in ("segment_a", "segment_b"))
        yield from _pair_problems(part, a, b, segment_ids)
        segments_of[split] = np.concatenate([a, b])
        if split == "test":
            yield from _oracle_problems(part, table)
        yield from _pair_index_problems(part, table)
    yield from _shared_pair_problems(preferences)
    if "test" in segments_of and "train" in segments_of:
        yield from _leakage_problems(preferences["test"], segments_of, segment_ids,
                                     segment_episodes)


def _leakage_problems(test: tuple[TablePart, pa.Table], segments_of: dict[str, np.ndarray],
                      segment_ids: np.ndarray, segment_episodes: np.ndarray) -> Iterator[Problem]:
    """Test pairs share neither a segment nor an episode with train pairs: overlapping
    windows of one episode would let a model be tested on what it was trained on."""
    part, table = test
    at = {split: positions(segment_ids, ids) for split, ids in segments_of.items()}
    if (at["test"] < 0).any() or (at["train"] < 0).any():
        return  # a missing segment is already reported
    train_episodes = segment_episodes[at["train"]]
    for shared, why in ((np.isin(segments_of["test"], segments_of["train"]), "segment {s} is"),
                        (np.isin(segment_episodes[at["test"]], train_episodes),
                         "segment {s} is of episode {e}, which is")):
        row = _first(shared)
        if row is not None:
            e = segment_episodes[at["test"][row]]
            column = "segment_a" if row < table.num_rows else "segment_b"
            row %= table.num_rows
            s = table.column(column)[row]
            yield part.problem(row, column, why.format(s=s, e=e) + " also in a train pair; "
                               "test pairs must not share segments or episodes with train pairs")
            return


def _pair_index_problems(part: TablePart, table: pa.Table) -> Iterator[Problem]:
    """Within a split, a pair has one row per teacher and one pair of segments. Gaps are
    allowed: a pair every teacher skipped has no rows."""
    pair, a, b = (table.column(c).to_numpy() for c in ("pair_index", "segment_a", "segment_b"))
    row = _first(pair < 0)
    if row is not None:
        yield part.problem(row, "pair_index", f"{pair[row]} is negative")
        return
    teacher = pc.dictionary_encode(table.column("teacher")).combine_chunks().indices.to_numpy()
    row = _first(_repeated(pair * (1 << 20) + teacher))
    if row is not None:
        yield part.problem(row, "pair_index", f"pair {pair[row]} has two rows of teacher "
                                              f"{table.column('teacher')[row]}")
    order = np.argsort(pair, kind="stable")
    first = order[np.searchsorted(pair[order], pair)]  # the first row of each row's pair
    row = _first((a != a[first]) | (b != b[first]))
    if row is not None:
        yield part.problem(row, "pair_index", f"pair {pair[row]} is segments {a[row]} and "
                                              f"{b[row]} here, but {a[first[row]]} and "
                                              f"{b[first[row]]} in row {first[row]}")


def _shared_pair_problems(preferences: dict[str, tuple[TablePart, pa.Table]]
                          ) -> Iterator[Problem]:
    """A pair index belongs to one split."""
    seen: dict[str, np.ndarray] = {}
    for split, (part, table) in sorted(preferences.items()):
        pair = table.column("pair_index").to_numpy()
        for other, pairs in seen.items():
            row = _first(np.isin(pair, pairs))
            if row is not None:
                yield part.problem(row, "pair_index", f"pair {pair[row]} is also in the {other} "
                                                      "split")
                return
        seen[split] = pair


def _pair_problems(part: TablePart, a: np.ndarray, b: np.ndarray,
                   segment_ids: np.ndarray) -> Iterator[Problem]:
    """Both segments of every pair exist, and no segment is paired with itself."""
    for column, values in (("segment_a", a), ("segment_b", b)):
        row = _first(positions(segment_ids, values) < 0)
        if row is not None:
            yield part.problem(row, column, f"segment {values[row]} does not exist")
    row = _first(a == b)
    if row is not None:
        yield part.problem(row, "segment_b", f"segment {b[row]} is paired with itself")


def _confidence_problems(part: TablePart, table: pa.Table) -> Iterator[Problem]:
    """Confidence is 1-3 on human rows and null on scripted ones."""
    teacher = table.column("teacher").to_numpy(zero_copy_only=False)
    human = np.isin(teacher, [t for t in np.unique(teacher) if fmt.is_human_teacher(t)])
    confidence = table.column("confidence")
    missing = pc.is_null(confidence).to_numpy(zero_copy_only=False)
    value = pc.fill_null(confidence, 2.0).to_numpy()
    for mask, message in ((human & missing, "missing on a human label"),
                          (~human & ~missing, "set on a scripted teacher's label (must be null)"),
                          (~missing & ((value < 1) | (value > 3)), "outside 1-3")):
        row = _first(mask)
        if row is not None:
            yield part.problem(row, "confidence", message)


def _query_problems(part: TablePart, segment_ids: np.ndarray) -> Iterator[Problem]:
    """Queries name known strategies and distinct pairs of existing, different segments."""
    table = part.read(["query_index", "segment_a", "segment_b", "strategy", "score"])
    yield from _nulls(part, table)
    yield from _non_finite(part, table, ["score"])
    index = table.column("query_index").to_numpy()
    row = _first(_repeated(index))
    if row is not None:
        yield part.problem(row, "query_index", f"query {index[row]} appears more than once")
    strategy = table.column("strategy").to_numpy(zero_copy_only=False)
    row = _first(~np.isin(strategy, fmt.QUERY_STRATEGIES))
    if row is not None:
        yield part.problem(row, "strategy", f"'{strategy[row]}' is not one of "
                                            f"{', '.join(fmt.QUERY_STRATEGIES)}")
    a, b = (table.column(c).to_numpy() for c in ("segment_a", "segment_b"))
    yield from _pair_problems(part, a, b, segment_ids)
    row = _first(_repeated(pair_keys(a, b)))
    if row is not None:
        yield part.problem(row, "segment_b", f"the pair of segments {a[row]} and {b[row]} is "
                                             "queried more than once")


def _oracle_problems(part: TablePart, table: pa.Table) -> Iterator[Problem]:
    pair = table.column("pair_index").to_numpy()
    is_oracle = pc.equal(table.column("teacher"), "oracle").to_numpy(zero_copy_only=False)
    row = _first(~np.isin(pair, pair[is_oracle]))
    if row is not None:
        yield part.problem(row, "pair_index", f"test pair {pair[row]} has no oracle label "
                                              "(the test split carries oracle labels)")


__all__ = ["Problem", "check_dataset", "dataset_problems", "describe_schema", "schema_validator",
           "table_schema_name", "validate_dataset"]
