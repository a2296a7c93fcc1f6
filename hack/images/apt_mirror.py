#!/usr/bin/env python3
"""Print the Debian mirror URL that apt is configured to use for a suite.

debootstrap needs a mirror URL, and on this project's machines the only reachable
Debian mirror is the one apt is already configured with (possibly a local proxy or
snapshot). Reading it from apt's own sources, instead of hard-coding a host, keeps
debootstrap on the same path apt uses. Reads one-line ``.list`` files and deb822
``.sources`` files; entries that are disabled (``Enabled: no``, other file suffixes)
are ignored, as apt ignores them. Security mirrors are skipped: debootstrap wants the
main archive.

Usage: apt_mirror.py SUITE [--root /]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) from sources.list syntax, options in [..] skipped."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            yield words[0], [words[1]], words[2:]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) from deb822 stanzas of Types: deb."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def find_mirror(suite: str, root: Path = Path("/")) -> str | None:
    """The first configured URI serving SUITE with component main, security excluded."""
    apt = root / "etc/apt"
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.name == "sources.list" or path.suffix == ".list":
            entries = _one_line_entries(text)
        elif path.suffix == ".sources":
            entries = _deb822_entries(text)
        else:
            continue
        for uri, suites, components in entries:
            if suite in suites and "main" in components and "security" not in uri:
                return uri.rstrip("/")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--root", default="/", type=Path)
    args = parser.parse_args()
    mirror = find_mirror(args.suite, args.root)
    if mirror is None:
        print(
            f"apt_mirror: no apt source for suite {args.suite!r} with component main in"
            f" {args.root / 'etc/apt'}; add one (see sources.list(5)) or set DEBIAN_MIRROR",
            file=sys.stderr,
        )
        return 1
    print(mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main())
