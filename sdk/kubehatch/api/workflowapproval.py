"""The WorkflowApproval kind: a person's answer to a step that waits for approval.

A small object of its own, rather than a field of the run, so that approving needs less
than editing the run: RBAC on ``workflowapprovals`` (create) decides who may approve. An
answer is final: its spec cannot change (a CEL transition rule); a new answer is a new
object, and the latest one created while the step waits wins. ``spec.approver`` says
who answered; the chart's admission policy requires it to be the user who creates the
object, so that it can be trusted (``kubehatch approve`` fills it in from
``kubectl auth whoami``).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from kubehatch.api.common import ApiModel, StatusModel, cel_rule, cel_rules
from kubehatch.api.fields import DnsLabel, DnsSubdomain
from kubehatch.api.resource import AGE_COLUMN, PrinterColumn, Resource, ResourceInfo

WORKFLOW_APPROVALS = "workflowapprovals"
"""The plural (the API's resource name): RBAC rules and the operator's watch name it."""
MAX_COMMENT = 1024
MAX_APPROVER = 512


class RunRef(ApiModel):
    """The WorkflowRun answered, in the approval's namespace."""

    name: DnsSubdomain = Field(description="Name of the WorkflowRun.")


class WorkflowApprovalSpec(ApiModel):
    """Who answered which step of which run, and how. Final once created."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            cel_rule(
                "self == oldSelf",
                "an answer is final: create a new WorkflowApproval instead of changing one",
            )
        )
    )

    run_ref: RunRef = Field(description="The run whose step is answered.")
    step: DnsLabel = Field(description="The step that waits for approval.")
    approved: bool = Field(
        default=True, description="true approves (the run goes on), false rejects (it fails)."
    )
    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT,
        description="Why; part of the step's output, or of its message when rejected.",
    )
    approver: str = Field(
        min_length=1,
        max_length=MAX_APPROVER,
        description=(
            "Who answered: the creating user's name (kubectl auth whoami). Where the chart's "
            "admission policies are installed, any other name is refused."
        ),
    )


class WorkflowApprovalStatus(StatusModel):
    """Nothing yet: the operator reads approvals, it does not write them."""


class WorkflowApproval(Resource):
    """An approval or a rejection of a waiting step (``kubehatch approve``)."""

    info = ResourceInfo(
        kind="WorkflowApproval",
        plural=WORKFLOW_APPROVALS,
        short_names=("wfa",),
        description="A person's answer to a workflow step that waits for approval.",
        columns=(
            PrinterColumn("Run", "string", ".spec.runRef.name"),
            PrinterColumn("Step", "string", ".spec.step"),
            PrinterColumn("Approved", "boolean", ".spec.approved"),
            PrinterColumn("Approver", "string", ".spec.approver"),
            PrinterColumn("Comment", "string", ".spec.comment", priority=1),
            AGE_COLUMN,
        ),
    )

    spec: WorkflowApprovalSpec = Field(description="The answer.")
    status: WorkflowApprovalStatus | None = Field(default=None, description="Unused.")
