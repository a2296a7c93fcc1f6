"""Edits to an image config (env, workdir, entrypoint, cmd, user, labels), Docker-style.

Both CLI subcommands that write an image end by applying the same ``--env``/``--label``/...
flags on top of the base's config; the merge rules (which mirror a Dockerfile's) live here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from .errors import BuildError


def parse_kv(items: Iterable[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` strings as an ordered dict (a repeated key keeps its place, last wins)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BuildError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def merge_env(base: Iterable[str], updates: Iterable[str]) -> list[str]:
    """Docker-style env merge: a new K=V replaces the base's K in place, new keys append."""
    merged = parse_kv([*base, *updates], "environment entry")
    return [f"{k}={v}" for k, v in merged.items()]


def json_list(text: str, flag: str) -> list[str]:
    """Parse a JSON array of strings; a plain string becomes ``["/bin/sh", "-c", text]``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BuildError(f"{flag} must be a JSON array of strings, got {text!r}")
    return value


@dataclasses.dataclass
class ConfigChanges:
    """Config edits applied on top of the base image's config."""

    env: list[str] = dataclasses.field(default_factory=list)
    workdir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def apply_changes(config: dict[str, Any], changes: ConfigChanges) -> None:
    """Edit an image config in place.

    Like Dockerfile ENTRYPOINT, setting an entrypoint clears an inherited Cmd (which was
    meant as arguments for the old entrypoint) unless a Cmd is given too.
    """
    cfg = config.setdefault("config", {})
    if changes.env:
        cfg["Env"] = merge_env(cfg.get("Env") or [], changes.env)
    if changes.workdir is not None:
        if not changes.workdir.startswith("/"):
            raise BuildError("--workdir must be an absolute path")
        cfg["WorkingDir"] = changes.workdir
    if changes.entrypoint is not None:
        cfg["Entrypoint"] = changes.entrypoint
        if changes.cmd is None:
            cfg.pop("Cmd", None)
    if changes.cmd is not None:
        cfg["Cmd"] = changes.cmd
    if changes.user is not None:
        cfg["User"] = changes.user
    if changes.labels:
        labels = dict(cfg.get("Labels") or {})
        labels.update(changes.labels)
        cfg["Labels"] = labels
