"""Process-wide set-up for the ``rrm-data`` program; the library itself never changes it.

The CLI (and test suites, which run it in-process) call :func:`configure_process` once,
before anything imports MuJoCo or JAX: the OpenGL backend is chosen when MuJoCo is
imported, JAX reads its compilation cache settings when it is imported.
"""

from __future__ import annotations

import ctypes.util
import os
import warnings
from pathlib import Path

from rrm_data.triton_apart import load_triton_apart


def compilation_cache() -> dict[str, str]:
    """JAX's persistent compilation cache, in the user's cache folder: every run of SAC
    (sbx) compiles the same update functions, which costs each train-sac, train-online or
    grid run tens of seconds on one core, once per set of shapes with the cache
    (``benchmarks/compile_cache.py``). Every compiled function is kept, up to 1 GiB (a SAC
    run's are a few hundred kB); that limit turns on JAX's file lock, so concurrent runs
    never read half an entry. A variable already set wins; ``JAX_COMPILATION_CACHE_DIR=``
    (empty) turns the cache off.
    """
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return {"JAX_COMPILATION_CACHE_DIR": str(home / "rrm-data" / "jax"),
            "JAX_COMPILATION_CACHE_MAX_SIZE": str(2**30),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def configure_process() -> None:
    """Offscreen rendering through OSMesa when it is installed, quiet simulator warnings,
    and JAX's compilation cache (:func:`compilation_cache`) for this process and the runs
    it starts.

    Triton is loaded apart from OSMesa's LLVM (see ``triton_apart``) before any command
    imports Lightning, which imports Triton on import; library code does the same where it
    first builds a torch model or optimizer.
    """
    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("OSMesa"):
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    for name, value in compilation_cache().items():
        os.environ.setdefault(name, value)
    load_triton_apart()
    warnings.filterwarnings("ignore", module=r"gymnasium\..*")
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
    from gymnasium import logger

    logger.min_level = 40
