"""Torch and MuJoCo's offscreen renderer in one process, in any import order.

OSMesa (Debian's libosmesa6) and Triton each carry their own LLVM; once OSMesa's is loaded,
importing Triton (which torch does lazily, e.g. at the first Adam step) resolves Triton's
LLVM calls into OSMesa's copy and segfaults. Loading Triton with ``RTLD_DEEPBIND`` makes it
bind its own symbols first, whichever library came first. The dlopen flags are restored
right after, so nothing else in the process changes. It is called at first use (where
networks, encoders and SAC agents are built), never at import, so importing rrm_data
changes no process state. Lightning imports Triton on import, so the CLI calls it first
(``process.configure_process``).
"""

from __future__ import annotations

import contextlib
import os
import sys


def load_triton_apart() -> None:
    """Import Triton with its own symbols bound first, when OSMesa may share the process."""
    if "triton" in sys.modules or os.environ.get("MUJOCO_GL") != "osmesa":
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        with contextlib.suppress(ImportError):
            import triton  # noqa: F401
    finally:
        sys.setdlopenflags(flags)
