"""The hook steps a Workflow may have (plain Python: registering a workflow needs them
without loading the API models)."""

from __future__ import annotations

from enum import StrEnum


class Hook(StrEnum):
    """A step that runs once the others are done, its field's name as its value."""

    ON_FAILURE = "onFailure"
    """Runs when a step failed (after its retries); the run stays Failed."""
    ON_SUCCESS = "onSuccess"
    """Runs when no step failed."""
    ON_EXIT = "onExit"
    """Runs last, either way (after onFailure or onSuccess): a finally."""

    @property
    def attribute(self) -> str:
        return {"onFailure": "on_failure", "onSuccess": "on_success", "onExit": "on_exit"}[self]


def why_not(hook: Hook, any_failed: bool, any_cancelled: bool = False) -> str | None:
    """Why a hook does not run once the other steps are done (None: it runs). onFailure
    runs when a step failed, onSuccess when none failed or was cancelled, onExit always
    (last: after the other hooks)."""
    if hook is Hook.ON_FAILURE and not any_failed:
        return "no step failed"
    if hook is Hook.ON_SUCCESS and any_failed:
        return "a step failed"
    if hook is Hook.ON_SUCCESS and any_cancelled:
        return "a step was cancelled"
    return None
