"""The builder's one exception type, kept apart so every module can raise it.

`cli.main` prints a `BuildError` as a one-line message instead of a traceback, so raise it
for anything the user can fix (a bad flag, a missing file, an unusable base image).
"""


class BuildError(Exception):
    """A user-facing error: printed without a traceback."""
