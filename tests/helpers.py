"""Helpers the test modules share: tiny settings, override strings, byte snapshots of
datasets, a Hugging Face cache built by hand, and the one-line error assertion."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# A small real collection: 10 episodes of 60 steps (seconds to collect on 2 cores).
SMALL = {"episodes": 10, "episode_steps": 60, "segment_length": 20, "segments_per_episode": 6,
         "pairs": 120}
# A small real reward model: trains in a few seconds on SMALL.
TINY_TRAIN = ["model.hidden=16", "model.layers=2", "model.members=2", "trainer.max_epochs=2",
              "trainer.enable_progress_bar=false"]
HUB_REPO = "rrm-test/bp-prefs"
HUB_SHA = "0123456789abcdef0123456789abcdef01234567"


def interruptible() -> None:
    """Popen ``preexec_fn``: a shell's background job starts with SIGINT ignored, and Python
    then keeps it ignored; give the child the default so Ctrl-C tests see KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def overrides(**values: object) -> list[str]:
    """``key=value`` strings, lists in Hydra's ``[a,b]`` syntax."""
    def text(v: object) -> str:
        if isinstance(v, list | tuple):
            return "[" + ",".join(map(str, v)) + "]"
        return str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{k}={text(v)}" for k, v in values.items()]


def one_line_error(capsys: pytest.CaptureFixture[str], command: str | None = None) -> str:
    """The command's error output, asserted to be exactly one line (and no traceback)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    if command is not None:
        assert lines[0].startswith(f"rrm-data {command}: error: "), lines[0]
    return lines[0]


def parquet_bytes(root: Path) -> dict[str, bytes]:
    """Every Parquet file of a dataset, by relative path."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}
    assert files, f"no Parquet files under {root}"
    return files


def leftovers(out: Path) -> list[str]:
    """Hidden temporary siblings of ``out`` (the resumable .partial folder is not one)."""
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*")
                  if not p.name.endswith(".partial"))


def build_hub_cache(dataset: Path, cache: Path, repo: str = HUB_REPO) -> Path:
    """A Hugging Face hub cache holding ``dataset`` as ``repo`` at refs/main; its snapshot."""
    storage = cache / f"datasets--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / HUB_SHA
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(dataset)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(HUB_SHA)
    return snapshot


def edit_column(path: Path, column: str, edit: Callable[[np.ndarray], np.ndarray | None]) -> None:
    """Rewrite one column of a Parquet file through numpy (vectors as (rows, size) arrays)."""
    table = pq.read_table(path)
    field = table.schema.field(column)
    vector = pa.types.is_fixed_size_list(field.type)
    chunked = table.column(column).combine_chunks()
    if vector:
        values = chunked.flatten().to_numpy().reshape(len(chunked), field.type.list_size).copy()
    else:
        values = chunked.to_numpy(zero_copy_only=False).copy()
    result = edit(values)
    values = values if result is None else result
    if vector:
        array = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), field.type.list_size)
    else:
        array = pa.array(values, type=field.type)
    table = table.set_column(table.schema.get_field_index(column), field, array)
    pq.write_table(table, path)


def edit_info(data: Path, edit: Callable[[dict], None]) -> None:
    path = data / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


def retasked_reward(run: Path, out: Path, task: str) -> Path:
    """A copy of a run's reward artifact whose record says it was trained on ``task``."""
    shutil.copytree(run / "reward" if (run / "reward").is_dir() else run, out)
    spec = json.loads((out / "reward.json").read_text())
    spec["training"] = {**spec["training"], "tasks": [task]}
    (out / "reward.json").write_text(json.dumps(spec))
    return out
