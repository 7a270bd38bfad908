"""Every write that must appear whole or not at all goes through here.

Output is built in a hidden temporary sibling of its final path (same file system, so a
rename is atomic) and moved into place only when complete; on any failure or interrupt
the temporary copy is removed and the final path is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_sibling(out: Path, tag: str = "tmp") -> Path:
    """A fresh hidden directory next to ``out`` (same filesystem, so rename is atomic)."""
    tmp = out.with_name(f".{out.name}.{tag}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish_directory(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move a finished temporary directory to ``out``, replacing it only if allowed."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        if not overwrite:
            raise FileExistsError(out)
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(out: Path, overwrite: bool = True, tag: str = "tmp") -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to fill; move it to ``out`` only if all went well."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out, tag)
    try:
        yield tmp
        publish_directory(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(out: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out`` to write; rename it to ``out`` when done."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> None:
    """Pretty, key-sorted JSON (stable bytes for the same content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
