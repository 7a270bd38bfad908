"""Process-wide set-up for the ``rrm-data`` program; the library itself never changes it.

The CLI (and test suites, which run it in-process) call :func:`configure_process` once,
before anything imports MuJoCo: the OpenGL backend is chosen when MuJoCo is imported.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import sys
import warnings


def configure_process() -> None:
    """Offscreen rendering through OSMesa when it is installed, and quiet simulator warnings.

    OSMesa's LLVM and Triton's clash: importing Triton (which torch does lazily, e.g. when an
    optimizer is built) after MuJoCo has loaded OSMesa segfaults; loading it first is safe.
    """
    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("OSMesa"):
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if os.environ.get("MUJOCO_GL") == "osmesa" and "mujoco" not in sys.modules:
        with contextlib.suppress(ImportError):
            import triton  # noqa: F401
    warnings.filterwarnings("ignore", module=r"gymnasium\..*")
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
    from gymnasium import logger

    logger.min_level = 40
