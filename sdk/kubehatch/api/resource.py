"""The top-level object shared by every kind: apiVersion, kind, metadata, spec, status.

Each kind declares its CRD facts (plural, short names, printer columns) next to its
models through :class:`ResourceInfo`, so adding a kind is one module plus one line in
``kubehatch.api.RESOURCES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import ConfigDict, Field, model_validator

from kubehatch.api.common import ApiModel
from kubehatch.api.wire import API_VERSION, GROUP


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of ``kubectl get``."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    """0 shows the column always, 1 only with ``-o wide``."""
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.format:
            column["format"] = self.format
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@dataclass(frozen=True)
class ResourceInfo:
    """What the CRD says about a kind beyond its schema."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    columns: tuple[PrinterColumn, ...] = ()
    categories: tuple[str, ...] = ("kubehatch",)
    selectable: tuple[str, ...] = ()
    """JSON paths served as field selectors (``kubectl get --field-selector``; 1.31+)."""
    scale: bool = False
    """Serve the scale subresource from spec.replicas, status.replicas and status.selector
    (``kubectl scale``, HorizontalPodAutoscaler, KEDA)."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


class Resource(ApiModel):
    """A complete object of one kind; subclasses add typed ``spec`` and ``status``."""

    model_config = ConfigDict(extra="ignore")

    info: ClassVar[ResourceInfo]

    api_version: str = Field(default=API_VERSION, description="Always kubehatch.dev/v1alpha1.")
    kind: str = Field(default="", description="The kind, filled in from the class.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Standard Kubernetes object metadata."
    )

    @model_validator(mode="after")
    def _check_type(self) -> Self:
        """Reject an object of another kind or version instead of misreading it."""
        if self.api_version != API_VERSION:
            raise ValueError(
                f"apiVersion {self.api_version!r} is not supported; use {API_VERSION!r}"
            )
        if self.kind and self.kind != self.info.kind:
            raise ValueError(f"kind {self.kind!r} is not {self.info.kind!r}")
        self.kind = self.info.kind
        return self

    @classmethod
    def new(
        cls,
        name: str,
        spec: Any,
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Self:
        """A new object named ``name`` (metadata built from the keyword arguments)."""
        metadata: dict[str, Any] = {"name": name}
        for key, value in (("namespace", namespace), ("labels", labels)):
            if value:
                metadata[key] = value
        if annotations:
            metadata["annotations"] = annotations
        return cls.model_validate({"metadata": metadata, "spec": spec})

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        return self.metadata.get("namespace")

    def to_manifest(self) -> dict[str, Any]:
        """The object as a dict ready for ``kubectl apply`` or the Kubernetes client."""
        return self.to_dict()
