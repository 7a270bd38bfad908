"""Names of the rrm-data/1 format: tables, columns, splits. One place, used by writer and reader."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from rrm_data import FORMAT_VERSION
from rrm_data.dataset.info import INFO_FILE

STATS_FILE = "meta/stats.json"
TABLES = ("steps", "episodes", "segments", "preferences")
SPLITS = ("train", "test")
QUERIES = "queries"  # optional table: pairs chosen for labelling by `rrm-data query`
QUERY_STRATEGIES = ("uniform", "disagreement", "entropy")
# Human labels: teacher ``human:<annotator>`` per person, ``human`` for their aggregate.
HUMAN = "human"
HUMAN_PREFIX = "human:"
ANNOTATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

STATE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
SUCCESS = "next.success"
DONE = "next.done"
SIM_COLUMNS = ("sim.qpos", "sim.qvel", "sim.mocap_pos", "sim.mocap_quat")

def human_teacher(annotator: str) -> str:
    """The teacher name of one annotator's labels."""
    return f"{HUMAN_PREFIX}{annotator}"


def is_human_teacher(name: str) -> bool:
    """``human`` or ``human:<annotator>`` with a valid annotator name."""
    annotator = name.removeprefix(HUMAN_PREFIX)
    return name == HUMAN or (annotator != name and ANNOTATOR_NAME.fullmatch(annotator) is not None)


def prior_column(name: str) -> str:
    return f"prior.{name}"


def prior_name(column: str) -> str:
    """``gripper_object`` of ``prior.gripper_object``."""
    return column.removeprefix(prior_column(""))


def prior_columns(columns: Iterable[str]) -> list[str]:
    """The ``prior.<name>`` columns among ``columns``, in their order."""
    return [c for c in columns if c.startswith(prior_column(""))]


def segment_prior_column(name: str) -> str:
    return f"return.prior.{name}"


def image_column(camera: str) -> str:
    return f"observation.images.{camera}"


def is_image_column(name: str) -> bool:
    """``observation.images.<camera>``: a camera's frames (PNG structs, ``datasets`` Image)."""
    return name.startswith(image_column(""))


def _item(dtype: pa.DataType) -> pa.Field:
    """List items named as Parquet names them, so a table is the same whether it went
    through a Parquet file (merge) or not (collect)."""
    return pa.field("element", dtype)


def fixed_list_array(values: np.ndarray, dtype: pa.DataType) -> pa.FixedSizeListArray:
    """Rows of a 2-D array as fixed_size_list<dtype>[width]."""
    flat = pa.array(np.ascontiguousarray(values).ravel(), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, type=pa.list_(_item(dtype), values.shape[1]))


def ragged_list_array(values: np.ndarray) -> pa.ListArray:
    """Rows of a 2-D array as list<float64> (lengths differ between tasks, hence not fixed)."""
    offsets = pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).ravel()),
                                    type=pa.list_(_item(pa.float64())))


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How tables are written: only text columns dictionary-encoded. Numbers (mostly distinct
    floats) as PLAIN write 3x and read ~10% faster than as dictionaries, and take less room."""
    text = [f.name for f in schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return {"use_dictionary": text}


# Each table split is stored as ``<table>/<split>-NNNNN-of-NNNNN.parquet`` shards.
SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")


def shard_name(split: str, i: int, n: int) -> str:
    """File name of shard ``i`` of ``n`` of a table split."""
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


def shard_split(file_name: str) -> str | None:
    """The split a shard file belongs to; None if the name is not a shard's."""
    match = SHARD_NAME.match(file_name)
    return match["split"] if match else None


def table_files_glob(table: str, split: str = "train") -> str:
    """Glob (relative to the dataset root) of one table split's Parquet shards."""
    return f"{table}/{split}-*.parquet"


def table_features(table: pa.Table, names: dict[str, list[str]] | None = None) -> dict:
    """``{column: {dtype, shape, names}}`` of a table, for meta/info.json."""
    features = {}
    for f in table.schema:
        dtype, shape = f.type, []
        while pa.types.is_fixed_size_list(dtype) or pa.types.is_list(dtype):
            shape.append(dtype.list_size if pa.types.is_fixed_size_list(dtype) else None)
            dtype = dtype.value_type
        label = "image" if pa.types.is_struct(dtype) else str(dtype)
        features[f.name] = {"dtype": label, "shape": shape or [1],
                            "names": (names or {}).get(f.name)}
    return features


__all__ = [
    "ACTION",
    "DONE",
    "FORMAT_VERSION",
    "ANNOTATOR_NAME",
    "HUMAN",
    "HUMAN_PREFIX",
    "INFO_FILE",
    "QUERIES",
    "QUERY_STRATEGIES",
    "REWARD",
    "SHARD_NAME",
    "SIM_COLUMNS",
    "SPLITS",
    "STATE",
    "SUCCESS",
    "TABLES",
    "fixed_list_array",
    "human_teacher",
    "is_human_teacher",
    "image_column",
    "is_image_column",
    "parquet_options",
    "prior_column",
    "prior_columns",
    "prior_name",
    "ragged_list_array",
    "segment_prior_column",
    "shard_name",
    "shard_split",
    "table_features",
    "table_files_glob",
]
