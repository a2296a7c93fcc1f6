"""The generated resource reference stays in step with the API types."""

from __future__ import annotations

from pathlib import Path

from kubehatch.api.docgen import main, reference

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "reference.md"


def test_reference_is_up_to_date() -> None:
    assert main(["--check", str(REFERENCE)]) == 0, "run `make docs`"


def test_reference_covers_every_kind_and_nested_fields() -> None:
    text = reference()
    for kind in ("Workflow", "WorkflowRun", "WorkflowEvent"):
        assert f"\n## {kind}\n" in text
    assert "| `spec.steps[].parents` | []string |" in text
    assert "| `status.steps.<key>.phase` |" in text
    assert "status.workflowSpec.steps" not in text  # the snapshot is documented once


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "reference.md"
    stale.write_text("old")
    assert main(["--check", str(stale)]) == 1
