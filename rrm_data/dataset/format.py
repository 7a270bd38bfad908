"""Names of the rrm-data/1 format: tables, columns, splits. One place, used by writer and reader."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from rrm_data import FORMAT_VERSION

STATE_DIM = 39
ACTION_DIM = 4
TABLES = ("steps", "episodes", "segments", "preferences")
SPLITS = ("train", "test")
QUERIES = "queries"  # optional table: pairs chosen for labelling by `rrm-data query`
QUERY_STRATEGIES = ("uniform", "disagreement", "entropy")
PRIOR_NAMES = ("object_goal", "gripper_object", "complete")

STATE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
SUCCESS = "next.success"
DONE = "next.done"
SIM_COLUMNS = ("sim.qpos", "sim.qvel", "sim.mocap_pos", "sim.mocap_quat")

# Names of the 39 state entries (Meta-World v3, goal observable).
STATE_NAMES = (
    ["hand_x", "hand_y", "hand_z", "gripper"]
    + [f"obj1_{c}" for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]
    + [f"obj2_{c}" for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]
    + [f"prev_{n}" for n in ["hand_x", "hand_y", "hand_z", "gripper"]]
    + [f"prev_obj1_{c}" for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]
    + [f"prev_obj2_{c}" for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]
    + ["goal_x", "goal_y", "goal_z"]
)
ACTION_NAMES = ["dx", "dy", "dz", "grip"]


def prior_column(name: str) -> str:
    return f"prior.{name}"


def segment_prior_column(name: str) -> str:
    return f"return.prior.{name}"


def image_column(camera: str) -> str:
    return f"observation.images.{camera}"


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


def table_files_glob(table: str, split: str | None = None) -> str:
    """Glob (relative to the dataset root) of one table's Parquet files."""
    return f"{table}/{split or 'train'}-*.parquet"


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
    "ACTION_DIM",
    "ACTION_NAMES",
    "DONE",
    "FORMAT_VERSION",
    "PRIOR_NAMES",
    "QUERIES",
    "QUERY_STRATEGIES",
    "REWARD",
    "SIM_COLUMNS",
    "SPLITS",
    "STATE",
    "STATE_DIM",
    "STATE_NAMES",
    "SUCCESS",
    "TABLES",
    "fixed_list_array",
    "image_column",
    "parquet_options",
    "prior_column",
    "ragged_list_array",
    "segment_prior_column",
    "table_features",
    "table_files_glob",
]
