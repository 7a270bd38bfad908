"""One core per run: each run's child process is pinned to a core that no other run of
any benchmark on this machine holds (a lock file per core), so runs never share a core and
libraries that size their thread pools by the usable cores (XLA's Eigen pool under sbx)
see one, as the grid's "one core per run" promises (``benchmarks/pinning.py`` measures the
throughput of pinned against unpinned runs side by side).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCKS = Path(tempfile.gettempdir()) / "rrm-data-cores"


@contextmanager
def claimed_core(locks: Path | None = None) -> Iterator[int | None]:
    """A core of this process's affinity that no other run holds (a lock in ``locks``,
    default ``LOCKS``), locked while the block runs; None when every one is taken (or the
    locks cannot be made): the run is then not pinned."""
    folder = LOCKS if locks is None else locks
    try:
        folder.mkdir(exist_ok=True)
    except OSError:
        yield None
        return
    for core in sorted(os.sched_getaffinity(0)):
        try:
            handle = (folder / f"core{core}.lock").open("a")
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                yield core
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
    yield None
