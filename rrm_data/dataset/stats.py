"""``meta/stats.json``: per-feature statistics of the steps table (LeRobot's stats file)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rrm_data.dataset import format as fmt


def feature_stats(table: pa.Table) -> dict[str, dict[str, list[float]]]:
    """Per-feature mean / std / min / max of numeric step columns (LeRobot's meta/stats.json)."""
    stats = {}
    for f in table.schema:
        if f.name in fmt.SIM_COLUMNS or f.name == "index":
            continue
        if pa.types.is_fixed_size_list(f.type):
            values = np.asarray(table.column(f.name).combine_chunks().flatten()).reshape(
                table.num_rows, f.type.list_size)
        elif pa.types.is_floating(f.type) or pa.types.is_boolean(f.type):
            values = table.column(f.name).to_numpy().astype(np.float64)[:, None]
        else:
            continue
        values = values.astype(np.float64)
        stats[f.name] = {k: getattr(np, k)(values, axis=0).tolist()
                         for k in ("mean", "std", "min", "max")}
    return stats
