"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class RrmError(Exception):
    """Bad input or an unusable dataset: the message is shown to the user as it is."""
