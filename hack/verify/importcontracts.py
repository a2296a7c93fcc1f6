"""import-linter contract type ``only_imports``: an allow-list of what a package may import.

import-linter's own contract types name what must *not* be imported. The rules "the operator
uses only the SDK's API, errors and durations" and "the API types sit at the bottom of the SDK"
are allow-lists: a module added to the SDK tomorrow, or renamed today (``compiler`` ->
``_compiler``), must be off limits without anyone editing a deny-list. Listing every other SDK
module as forbidden, or ignoring the allowed imports in a broad contract, would not say that.

Registered in pyproject.toml's ``[tool.importlinter]`` as ``contract_types``; ``lint-imports``
puts the working directory on ``sys.path``, so it imports this file as
``hack.verify.importcontracts`` when run from the repository's root (``make imports``).

Options:

- ``source_modules``: the packages (with all their descendants) whose imports are checked.
- ``allowed_modules``: the modules (with their descendants) that they may import. A source
  package may always import its own descendants. May be empty: then a source imports nothing of
  the root packages.
- ``broken_contract_guidance``: text printed after the violations (optional).

Only imports of modules inside the root packages count; the standard library and third-party
packages are not restricted. Every direct import counts, wherever it is: at module level, in a
function, under ``if TYPE_CHECKING:``. A source or allowed module missing from the graph is a
configuration error, not a kept contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import grimp
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.imports import Module


def within(module: str, packages: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``packages`` or a descendant of one."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def root_packages(session_options: dict[str, Any]) -> set[str]:
    roots = session_options.get("root_packages") or session_options.get("root_package") or []
    return {roots} if isinstance(roots, str) else set(roots)


def illegal_imports(
    graph: grimp.ImportGraph,
    sources: set[str],
    allowed: set[str],
    roots: set[str],
) -> list[dict[str, Any]]:
    """The direct imports from ``sources`` into ``roots`` that land outside ``allowed``."""
    missing = sorted(m for m in sources | allowed if m not in graph.modules)
    if missing:
        raise ValueError(f"Module(s) not in the import graph: {', '.join(missing)}.")
    permitted = allowed | sources
    found = []
    for importer in sorted(m for m in graph.modules if within(m, sources)):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not within(imported, roots) or within(imported, permitted):
                continue
            details = graph.get_import_details(importer=importer, imported=imported)
            found.append(
                {
                    "importer": importer,
                    "imported": imported,
                    "line_numbers": sorted({d["line_number"] for d in details}),
                }
            )
    return found


def _names(field_value: object) -> set[str]:
    """The module names of a parsed ``SetField(ModuleField())`` (None when not supplied)."""
    return {m.name for m in cast("Iterable[Module] | None", field_value) or ()}


class OnlyImportsContract(Contract):
    type_name = "only_imports"

    source_modules = fields.SetField(subfield=fields.ModuleField())
    allowed_modules = fields.SetField(subfield=fields.ModuleField(), required=False)
    broken_contract_guidance = fields.TextField(required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        sources = _names(self.source_modules)
        allowed = _names(self.allowed_modules)
        found = illegal_imports(graph, sources, allowed, root_packages(self.session_options))
        output.verbose_print(verbose, f"{len(found)} import(s) outside the allow-list.")
        return ContractCheck(
            kept=not found,
            metadata={"illegal_imports": found, "allowed": sorted(allowed | sources)},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error(
            "Only " + ", ".join(check.metadata["allowed"]) + " may be imported, but:", bold=True
        )
        output.new_line()
        for imp in check.metadata["illegal_imports"]:
            lines = ", ".join(f"l.{n}" for n in imp["line_numbers"])
            output.print_error(f"-   {imp['importer']} -> {imp['imported']} ({lines})", bold=False)
        output.new_line()
        if self.broken_contract_guidance:
            output.print(str(self.broken_contract_guidance))
