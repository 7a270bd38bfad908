"""The exception type the CLI turns into a single clear line and a non-zero exit, and the
OS errors (permission, disk full...) it shows as one line too."""

import errno
import os


class RrmError(Exception):
    """Bad input or an unusable dataset: the message is shown to the user as it is."""


class Interrupted(Exception):  # noqa: N818 - it is what happened, not an error
    """Ctrl-C, after the command saved what it could: the message says how to go on."""


# What the machine, not the program, got wrong: shown as one line naming the path.
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                errno.EDQUOT, errno.EFBIG, errno.EIO, errno.ENOTDIR,
                                errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE})


def environment_error(exc: OSError) -> str | None:
    """One line for an OS error the machine raised (no permission, read-only, disk full...),
    naming the path where the error knows it (pyarrow's messages name it themselves); None
    for any other error, which stays a traceback: likely a bug."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
