"""The receiver's configuration: its sources, read from a YAML or JSON file.

The chart renders ``webhooks.sources`` (values.yaml) into a ConfigMap mounted as that
file; a developer can write one by hand and run ``kubehatch webhook serve --config FILE``.
Field names are camelCase as in the chart's values::

    maxBodyBytes: 1048576
    sources:
      - name: github                      # POST /webhooks/github
        secret: {name: github-webhook}    # a Secret in the receiver's namespace; key "secret"
        signature: github                 # X-Hub-Signature-256: sha256=<hex>
        key: {header: X-GitHub-Event}     # the event key: push, pull_request, ...
        keyPrefix: "github:"              # ... becomes github:push
      - name: stripe
        secret: {name: stripe-webhook}
        signature: stripe                 # Stripe-Signature: t=<ts>,v1=<hex>, 5 min tolerance
        key: {jsonPath: $.type}           # invoice.paid, ...
        namespace: billing                # where its events go (default: the receiver's)
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, model_validator

from kubehatch.api.common import ApiModel
from kubehatch.api.fields import DnsLabel
from kubehatch.errors import KubehatchError

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: what GitHub sends at most (25 MB payloads are capped there, then dropped), and
about the largest event payload the API server keeps (a run's input is a ConfigMap)."""
DEFAULT_TOLERANCE_SECONDS = 300
"""Stripe's own libraries' default: a signed request older (or newer) than this is refused."""

_SECRET_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an HTTP token (RFC 9110)
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")

PathStep = str | int


class Scheme(StrEnum):
    """How a sender signs its requests (HMAC-SHA256 in every case)."""

    GITHUB = "github"
    """``X-Hub-Signature-256: sha256=<hex of HMAC(secret, body)>``."""
    STRIPE = "stripe"
    """``Stripe-Signature: t=<unix time>,v1=<hex of HMAC(secret, "<t>.<body>")>``."""
    HMAC_SHA256 = "hmac-sha256"
    """``<signatureHeader>: <signaturePrefix><hex or base64 of HMAC(secret, body)>``."""


def parse_json_path(path: str) -> tuple[PathStep, ...]:
    """``$.data.object['id']`` or ``$.items[0].name`` as its steps; ValueError if malformed.

    A small subset of JSONPath: one value, reached by member names and list indexes.
    """
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with '$', e.g. '$.type'")
    steps: list[PathStep] = []
    at = 1
    while at < len(path):
        match = _PATH_STEP.match(path, at)
        if match is None:
            raise ValueError(
                f"JSON path {path!r}: cannot read {path[at:]!r}; "
                "write members and indexes like $.data.object.id, $.items[0] or $['a-b']"
            )
        name, index, quoted, double = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else quoted if quoted is not None else double)
        at = match.end()
    if not steps:
        raise ValueError(f"JSON path {path!r} names no member, e.g. '$.type'")
    return tuple(steps)


class SecretRef(ApiModel):
    """A key of a Secret in the receiver's namespace, holding the signing secret."""

    name: Annotated[str, Field(pattern=_SECRET_NAME, max_length=253)] = Field(
        description="The Secret's name."
    )
    key: str = Field(default="secret", min_length=1, description="The key in its data.")


class Pick(ApiModel):
    """Where a value comes from: exactly one of a fixed value, a header or a JSON path."""

    value: str | None = Field(default=None, min_length=1, description="A fixed value.")
    header: Annotated[str, Field(pattern=_HEADER_NAME)] | None = Field(
        default=None, description="A request header, e.g. X-GitHub-Event."
    )
    json_path: str | None = Field(
        default=None, description="A JSON path into the body, e.g. $.type or $.data.object.id."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Pick:
        given = [f for f in ("value", "header", "json_path") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of value, header or jsonPath")
        if self.json_path is not None:
            parse_json_path(self.json_path)
        return self

    @property
    def steps(self) -> tuple[PathStep, ...]:
        return parse_json_path(self.json_path) if self.json_path is not None else ()

    def describe(self) -> str:
        if self.header is not None:
            return f"header {self.header}"
        return f"JSON path {self.json_path}" if self.json_path is not None else "fixed value"


class Source(ApiModel):
    """One sender: ``POST /webhooks/<name>`` signed with its secret becomes a WorkflowEvent."""

    name: DnsLabel = Field(description="The source, and the last part of its URL.")
    secret: SecretRef = Field(description="The signing secret (shared with the sender).")
    signature: Scheme = Field(description="The signature scheme: github, stripe or hmac-sha256.")
    signature_header: Annotated[str, Field(pattern=_HEADER_NAME)] = Field(
        default="X-Signature-256", description="hmac-sha256: the header holding the signature."
    )
    signature_prefix: str = Field(
        default="", description="hmac-sha256: text before the digest, e.g. 'sha256='."
    )
    signature_encoding: str = Field(
        default="hex", pattern="^(hex|base64)$", description="hmac-sha256: hex or base64."
    )
    tolerance_seconds: int = Field(
        default=DEFAULT_TOLERANCE_SECONDS,
        gt=0,
        description="stripe: how far the signed timestamp may be from now.",
    )
    key: Pick = Field(description="Where the event key comes from.")
    key_prefix: str = Field(default="", description="Put before the key, e.g. 'github:'.")
    delivery: Pick | None = Field(
        default=None,
        description="The sender's delivery id, kept in the event's additional metadata "
        "(default: header X-GitHub-Delivery for github, $.id for stripe).",
    )
    namespace: DnsLabel | None = Field(
        default=None, description="Where its events are created (default: the receiver's)."
    )

    @property
    def delivery_pick(self) -> Pick | None:
        if self.delivery is not None:
            return self.delivery
        if self.signature is Scheme.GITHUB:
            return Pick(header="X-GitHub-Delivery")
        return Pick(json_path="$.id") if self.signature is Scheme.STRIPE else None


class WebhookConfig(ApiModel):
    """The whole file."""

    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, gt=0, description="Larger bodies get 413."
    )
    sources: list[Source] = Field(default_factory=list, description="The senders.")

    @model_validator(mode="after")
    def _unique_names(self) -> WebhookConfig:
        names = [s.name for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"source names must be unique; given twice: {', '.join(twice)}")
        return self

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)


def parse_config(data: Any, where: str = "the webhook configuration") -> WebhookConfig:
    """The configuration from parsed YAML/JSON; KubehatchError naming each problem."""
    try:
        return WebhookConfig.model_validate(data if data is not None else {})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in err.errors()
        )
        raise KubehatchError(f"{where} is invalid: {problems}") from err


def load_config(path: Path) -> WebhookConfig:
    """Read and check the configuration file (YAML, so JSON too)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise KubehatchError(f"cannot read {str(path)!r}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise KubehatchError(f"{str(path)!r} is not valid YAML: {err}") from err
    return parse_config(data, repr(str(path)))
