"""The exception hierarchy: one root, so callers can catch everything kubehatch raises.

Step code raises :class:`TemporaryError` or :class:`PermanentError` to tell the engine
whether a retry can help; the engine raises :class:`StepTimeoutError` and
:class:`StepCancelledError` for runs it stops. Problems found while registering
workflows are collected into a single :class:`RegistrationError`, so that one run of
``kubehatch render`` shows all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta


class KubehatchError(Exception):
    """Root of every error kubehatch raises on purpose."""


class InvalidDurationError(KubehatchError, ValueError):
    """A duration string is malformed (see :mod:`kubehatch.durations`)."""


class TemporaryError(KubehatchError):
    """The step failed but may succeed later; retry it, after ``delay`` if given.

    ``delay`` overrides the step's backoff for this attempt only.
    """

    def __init__(self, message: str, *, delay: timedelta | str | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(KubehatchError):
    """The step failed and retrying cannot help (bad input, a missing record...)."""


class StepTimeoutError(KubehatchError, TimeoutError):
    """The step or its workflow ran longer than its timeout."""


class StepCancelledError(KubehatchError):
    """The run was cancelled while the step was running."""


class InputError(PermanentError, ValueError):
    """Workflow input or a parent's output does not fit the model the step asked for."""


class OutputError(PermanentError, TypeError):
    """A step returned a value that cannot be stored as JSON."""


class OutputTooLargeError(PermanentError):
    """A step's output is larger than its reader accepts: more than a step may return
    (10 MiB of JSON), or more than the operator reads (for a condition). ``size`` and
    ``limit`` are in bytes of JSON; ``size`` is None when it is not known."""

    def __init__(self, message: str, *, size: int | None, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class OutputCorruptError(PermanentError):
    """A stored output cannot be read back: a part is missing, its digest does not match,
    its gzip or JSON is broken."""


class UnknownParentError(KubehatchError, LookupError):
    """A step asked for the output of a step that is not one of its parents."""


class UnknownActionError(KubehatchError, LookupError):
    """An action name ("service:action") is not registered on the worker."""


class WorkerLoadError(KubehatchError, ImportError):
    """A "module:attribute" reference does not lead to a Worker."""


@dataclass(frozen=True)
class Problem:
    """One registration problem: where it was written, what it concerns, what to do."""

    origin: str
    """``file:line`` of the code that declared the offending object."""
    subject: str
    """The object concerned, e.g. ``workflow 'etl', step 'load'``."""
    message: str
    """What is wrong."""
    fix: str = ""
    """How to fix it, when there is an obvious way."""

    def __str__(self) -> str:
        text = f"{self.origin}: {self.subject}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class RegistrationError(KubehatchError):
    """Workflows registered on a worker are invalid; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{count} registration problem{'s' if count != 1 else ''}:\n{lines}")
