"""Process-wide set-up for the ``rrm-data`` program; the library itself never changes it.

The CLI (and test suites, which run it in-process) call :func:`configure_process` once,
before anything imports MuJoCo: the OpenGL backend is chosen when MuJoCo is imported.
"""

from __future__ import annotations

import ctypes.util
import os
import warnings

from rrm_data.triton_apart import load_triton_apart


def configure_process() -> None:
    """Offscreen rendering through OSMesa when it is installed, and quiet simulator warnings.

    Triton is loaded apart from OSMesa's LLVM (see ``triton_apart``) before any command
    imports Lightning, which imports Triton on import; library code does the same where it
    first builds a torch model or optimizer.
    """
    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("OSMesa"):
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    load_triton_apart()
    warnings.filterwarnings("ignore", module=r"gymnasium\..*")
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
    from gymnasium import logger

    logger.min_level = 40
