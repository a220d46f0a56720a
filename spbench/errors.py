"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class SpbenchError(Exception):
    """A problem with the user's input (files, flags, config), not a bug.

    The message must name what is wrong, where, and how to fix it, in one line.
    """
