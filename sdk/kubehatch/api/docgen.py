"""The resource reference (docs/reference.md), generated from the same schemas as the CRDs.

Usage: ``python -m kubehatch.api.docgen [--check] FILE``. With ``--check`` nothing is
written and the exit status is 1 when FILE is stale (a unit test runs this).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kubehatch.api import RESOURCES
from kubehatch.api.crdgen import crd

HEADER = """# Resource reference

Generated from the pydantic API types by `make docs` (`python -m kubehatch.api.docgen`);
do not edit. `kubectl explain workflow.spec.steps` shows the same descriptions.
"""


def _type(schema: dict[str, Any]) -> str:
    kind: str = schema.get("type", "object" if "properties" in schema else "any")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return "JSON"
    if "enum" in schema:
        return " \\| ".join(str(v) for v in schema["enum"])
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return kind


def _rows(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str, str]]:
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        field = f"{path}.{name}"
        description = " ".join(sub.get("description", "").split())
        if name in required:
            description = f"**Required.** {description}"
        yield field, _type(sub), description.replace("|", "\\|")
        nested = sub.get("items", {}) if sub.get("type") == "array" else sub
        if "properties" in nested:
            yield from _rows(nested, f"{field}[]" if sub.get("type") == "array" else field)
        elif isinstance(sub.get("additionalProperties"), dict):
            yield from _rows(sub["additionalProperties"], f"{field}.<key>")


def reference() -> str:
    parts = [HEADER]
    for resource in RESOURCES:
        definition = crd(resource)
        version = definition["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        names = definition["spec"]["names"]
        parts.append(f"\n## {names['kind']}\n")
        parts.append(f"`{definition['spec']['group']}/{version['name']}`, short name "
                     f"`{names['shortNames'][0]}`. {resource.info.description}\n")  # fmt: skip
        parts.append("\n| Field | Type | Description |\n| --- | --- | --- |")
        for section in ("spec", "status"):
            if section in schema.get("properties", {}):
                for field, kind, text in _rows(schema["properties"][section], section):
                    if field.startswith("status.workflowSpec."):
                        continue  # a copy of Workflow spec, documented above
                    parts.append(f"| `{field}` | {kind} | {text} |")
        parts.append("")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubehatch.api.docgen")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        if not args.file.exists() or args.file.read_text() != text:
            print(f"{args.file} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    args.file.parent.mkdir(parents=True, exist_ok=True)
    args.file.write_text(text)
    print(f"wrote {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
