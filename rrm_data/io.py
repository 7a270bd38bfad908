"""Every write of a command's output goes through here, under one rule.

A command writes ``out`` only when it does not exist, or when it holds this command's own
kind of output (recognised by what rrm-data wrote there) and ``overwrite=true``; it never
writes into anything else: not inside another rrm-data output (a dataset, run, report,
campaign), not inside or onto one of its own inputs, nor into the Hugging Face cache.
Output is built in a hidden temporary sibling (same file system) and appears in one
atomic step: a fresh path by one rename, an existing one by an atomic exchange
(``renameat2(RENAME_EXCHANGE)``), so the path always holds the complete old or the
complete new version. A lock refuses a second writer to the same path; what an
interrupted writer left (dead process) is removed by the next.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from rrm_data.errors import RrmError

MARKER = ".rrm-output.json"  # what a directory output says about itself
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


class Kind(StrEnum):
    """What a command writes; an existing ``out`` is replaced only by output of its own kind."""

    DATASET = "dataset"  # recognised by meta/info.json of format rrm-data/1
    REWARD_RUN = "train-reward run"
    SAC_RUN = "train-sac run"
    ONLINE_RUN = "train-online run"
    OFFLINE_RUN = "train-offline run"
    REPORT = "evaluate report"
    GALLERY = "gallery"
    SCORES = "score table"
    TRL_VIEW = "export-trl table"
    HUB_TREE = "publish dry-run tree"
    CAMPAIGN = "annotation campaign"  # recognised by its store (annotate's campaign= folder)
    BENCHMARK = "benchmark grid"  # not recognised: only where it may go is checked
    BENCHMARK_REPORT = "benchmark report"  # likewise


CAMPAIGN_STORE = "store.sqlite"
# A command's input paths by option name (None, or a list for options like shards=[...]).
Inputs = Mapping[str, str | Path | Sequence[str | Path] | None]
RUNS = {Kind.REWARD_RUN, Kind.SAC_RUN, Kind.ONLINE_RUN, Kind.OFFLINE_RUN}
# What a run (or a reward's plain folder) may hold directly: reports on its reward
# (evaluate, score, gallery's default ``out=<run>/<name>``).
IN_RUNS = {Kind.REPORT, Kind.SCORES, Kind.GALLERY}


# ---------------------------------------------------------------------------- recognising


def absolute(path: str | Path) -> Path:
    """``path`` made absolute without resolving links (``out=.`` gets a name)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def output_kind(path: Path) -> Kind | None:
    """The kind of rrm-data output ``path`` holds, or None (not rrm-data's, or unreadable)."""
    if path.is_dir():
        marker = _read_json(path / MARKER)
        if isinstance(marker, dict) and marker.get("kind") in {k.value for k in Kind}:
            return Kind(marker["kind"])
        from rrm_data.dataset.info import read_info_json  # the one reader of that file

        with contextlib.suppress(RrmError):
            info = read_info_json(path)
            if isinstance(info, dict) and str(info.get("format", "")).startswith("rrm-data/"):
                return Kind.DATASET
        if (path / CAMPAIGN_STORE).is_file():
            return Kind.CAMPAIGN
        return None
    if path.suffix == ".parquet":
        with contextlib.suppress(Exception):
            import pyarrow.parquet as pq

            metadata = pq.read_schema(path).metadata or {}
            value = metadata.get(b"rrm_data.output", b"").decode()
            if value in {k.value for k in Kind}:
                return Kind(value)
    return None


def file_metadata(kind: Kind) -> dict[bytes, bytes]:
    """Parquet key-value metadata that marks a single-file output as rrm-data's."""
    return {b"rrm_data.output": kind.value.encode()}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def in_hf_cache(path: Path) -> bool:
    """True when ``path`` lies inside the Hugging Face cache (rrm-data never writes there)."""
    roots = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HF_HOME"),
             os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")]
    with contextlib.suppress(ImportError):
        from huggingface_hub import constants

        roots += [constants.HF_HUB_CACHE, constants.HF_HOME]
    target = path.expanduser().resolve()
    return any(target.is_relative_to(Path(r).expanduser().resolve()) for r in roots if r)


def check_out(out: Path, kind: Kind, overwrite: bool, option: str = "out",
              inputs: Inputs | None = None, reuse: bool = False) -> bool:
    """Refuse, before any work, an ``out`` this command may not write; True if it exists.

    Allowed: a path that does not exist (or an empty directory), or one holding output of
    ``kind`` when ``overwrite`` is set (``reuse``: kept as it is, as annotate's campaign),
    in a writable folder that is no other rrm-data output and none of ``inputs`` (the
    command's input paths by option name).
    """
    check_place(out, kind, option, inputs)
    return _check_replace(absolute(out), kind, overwrite, option, reuse)


def check_place(out: Path, kind: Kind, option: str = "out",
                inputs: Inputs | None = None) -> None:
    """Refuse an ``out`` inside another rrm-data output (a run may hold reports on its
    reward), equal to, inside or holding one of ``inputs``, or where nothing can be written.
    """
    out = absolute(out)
    if Path.cwd().is_relative_to(out):
        raise RrmError(f"{option}={out} is the current directory or holds it; name a new one")
    if in_hf_cache(out):
        raise RrmError(f"{option}={out} is inside the Hugging Face cache, which rrm-data never "
                       "modifies; choose another path")
    target = out.resolve()

    def holds(folder: Path, found: Kind | None) -> bool:
        """Reports lie directly in the run (or plain folder) of the reward they report on."""
        return kind in IN_RUNS and folder == target.parent and (found is None or found in RUNS)

    for folder in target.parents:
        found = output_kind(folder)
        if found is None or (found in RUNS and holds(folder, found)):
            continue
        raise RrmError(f"{option}={out} lies inside the {found.value} {folder}, which this "
                       f"command may not write into; choose a path outside it")
    for name, value in _paths(inputs):
        given = absolute(value).resolve()
        if target == given or given.is_relative_to(target):
            what = "is" if target == given else "holds"
            raise RrmError(f"{option}={out} {what} {name}={value}, an input of this command; "
                           f"choose another {option}=")
        if target.is_relative_to(given) and not holds(given, output_kind(given)):
            raise RrmError(f"{option}={out} lies inside {name}={value}, an input of this "
                           f"command; choose a path outside it")
    check_write_access(out, option)


def _paths(inputs: Inputs | None) -> Iterator[tuple[str, str]]:
    """(option, path) for every input that names an existing path (not reward=true, a Hub
    id), a list option's items each."""
    for name, value in (inputs or {}).items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        for item in values:
            if item is not None and absolute(str(item)).exists():
                yield name, str(item)


def check_write_access(out: Path, option: str = "out") -> None:
    """Refuse an ``out`` whose nearest existing folder cannot take a new entry (a file on the
    way, no write permission, a read-only file system): one line before any work."""
    out = absolute(out)
    folder = next(p for p in out.parents if p.exists() or p.is_symlink())
    if not folder.is_dir():
        raise RrmError(f"{option}={out} cannot be written: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(folder) else "permission denied"
        raise RrmError(f"{option}={out} cannot be written: {folder} is not writable ({reason})")


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _check_replace(out: Path, kind: Kind, overwrite: bool, option: str = "out",
                   reuse: bool = False) -> bool:
    """The part of the rule about what ``out`` holds (checked again under the lock)."""
    if not out.exists() and not out.is_symlink():
        return False
    if out.is_dir() and not any(out.iterdir()):
        return False
    found = output_kind(out)
    if found is not kind:
        what = (f"another kind of output ({found.value})" if found
                else "files rrm-data did not write")
        verb = "uses" if reuse else "replaces"
        raise RrmError(f"{option}={out} holds {what}; this command {verb} only an earlier "
                       f"{kind.value}{'' if reuse else ' (with overwrite=true)'}: choose "
                       f"another {option}=")
    if not overwrite and not reuse:
        raise RrmError(f"{option}={out} already holds an earlier {kind.value}; pass "
                       f"overwrite=true to replace it, or choose another {option}=")
    return True


# ---------------------------------------------------------------------------- writing


_HELD: set[Path] = set()  # locks this process holds (a command's steps share its lock)


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` next to ``out``: a second writer to the same path is refused."""
    out = absolute(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_name(f".{out.name}.lock").resolve()
    if lock in _HELD:
        yield
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RrmError(f"{out} is busy: another rrm-data process is writing it; wait for it "
                           "to finish or choose another path") from None
        if _same_file(fd, lock):
            break
        os.close(fd)  # got the file a finishing writer had just removed: open the new one
    _HELD.add(lock)
    try:
        clean_leftovers(out)
        yield
    finally:
        _HELD.discard(lock)
        lock.unlink(missing_ok=True)  # still held: a writer waiting on it fails, not races
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def clean_leftovers(out: Path) -> list[Path]:
    """Remove what interrupted writers of ``out`` left: ``.<name>.tmp-PID`` / ``.old-PID``
    siblings whose process is gone. Returns what was removed."""
    removed = []
    for path in out.parent.glob(f".{out.name}.*-*"):
        tag, _, pid = path.name.rpartition("-")
        if not pid.isdigit() or not tag.endswith((".tmp", ".old", ".partial")) or _alive(int(pid)):
            continue  # collect's resumable work folder ``.<name>.partial`` has no pid: kept
        _remove(path)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                      _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def publish(tmp: Path, out: Path) -> None:
    """Make ``tmp`` appear at ``out`` in one step; the old version (if any) is then removed."""
    try:
        os.rename(tmp, out)  # out absent (or an empty directory)
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
    exchange(tmp, out)  # tmp now holds the old version
    _remove(tmp)


def temporary_sibling(out: Path, directory: bool = True) -> Path:
    """A fresh hidden sibling of ``out`` (same file system, so a rename is atomic)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    _remove(tmp)
    if directory:
        tmp.mkdir(parents=True)
    return tmp


@contextmanager
def atomic_directory(out: Path, kind: Kind, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to fill; it replaces ``out`` in one step when the
    block succeeds, and is removed when it fails (``out`` is then untouched)."""
    out = absolute(out)
    with output_lock(out):
        _check_replace(out, kind, overwrite)
        tmp = temporary_sibling(out)
        try:
            yield tmp
            if kind is not Kind.DATASET:
                write_json(tmp / MARKER, {"kind": kind.value})
            publish(tmp, out)
        except BaseException:
            _remove(tmp)
            raise


@contextmanager
def replaced_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``, a folder inside a work folder the command owns
    (no output rule, no lock): it replaces ``path`` in one step when the block succeeds, and
    is removed when it fails. What a killed writer left goes with ``clean_leftovers(path)``."""
    path = absolute(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_file(out: Path, kind: Kind | None = None, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``out`` to write; it replaces ``out`` in one step.

    With ``kind``, ``out`` follows the output rule (a command's output file); without, it is a
    file inside a folder the caller owns (a work folder's episode).
    """
    out = absolute(out)
    lock = output_lock(out) if kind is not None else contextlib.nullcontext()
    with lock:
        if kind is not None:
            _check_replace(out, kind, overwrite)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(out, directory=False)
        try:
            yield tmp
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)


def remove_owned(path: Path) -> None:
    """Remove a folder the command itself made (a finished collection's work folder)."""
    _remove(path)


def write_json(path: Path, payload: Any) -> None:
    """Pretty, key-sorted JSON (stable bytes for the same content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def saved_policy_file(path: str | Path, name: str, kind: str, command: str) -> Path:
    """The file ``name`` that ``command`` saved: ``path`` itself or inside a run directory."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / name
    if not file.is_file():
        raise RrmError(f"no saved {kind} policy at {path} (expected a {name} or a {command} "
                       "run directory)")
    return file
