"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class RrmError(Exception):
    """Bad input or an unusable dataset: the message is shown to the user as it is."""


class Interrupted(Exception):  # noqa: N818 - it is what happened, not an error
    """Ctrl-C, after the command saved what it could: the message says how to go on."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
