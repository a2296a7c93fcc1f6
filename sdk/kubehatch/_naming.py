"""Names: the rule that turns Python functions into workflow and step names.

Kubernetes names (and so workflow, service, step and action names) are DNS labels:
at most 63 lowercase letters, digits and '-'. A step or workflow declared without an
explicit name gets one derived from the function, by this rule:

* a step is named after the function's qualified name: ``step_one`` -> ``step-one``,
  ``Handlers.on_signup`` -> ``handlers-on-signup``; nested functions and lambdas keep
  their enclosing function: ``build.<locals>.inner`` -> ``build-inner``,
  ``build.<locals>.<lambda>`` -> ``build-lambda``;
* a workflow made of a single function also gets the last part of its module in
  front, because workflow names share a namespace: ``users.jobs.cleanup`` ->
  ``jobs-cleanup``. When run as a script the module is ``__main__``, so the file
  name is used instead: the name is the same however the module was loaded;
* ``_`` and any other character outside ``[a-z0-9]`` become ``-`` (runs collapse);
  names longer than 63 characters are cut and end with 8 hex digits of a hash of the
  full name, so they stay unique;
* when two steps of one workflow derive the same name (two lambdas in one function),
  the second becomes ``name-2``, the third ``name-3``, in declaration order.

Derived names are stable as long as the code keeps its module and function names,
which matters because a step name is also the action the step pod looks up. Use
``Fn(...).set_name(...)`` to pick a name that survives refactoring.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import TypeAdapter

MAX_NAME_LENGTH = 63
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""The rule of :data:`kubehatch.api.fields.DnsLabel` (a unit test keeps the two the same)."""
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
_INVALID_RUNS = re.compile(r"[^a-z0-9]+")


def to_dns_label(text: str) -> str:
    """``text`` made into a DNS label by the rule in the module documentation."""
    label = _INVALID_RUNS.sub("-", text.lower()).strip("-") or "fn"
    if len(label) <= MAX_NAME_LENGTH:
        return label
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{label[: MAX_NAME_LENGTH - 9].rstrip('-')}-{digest}"


def dns_label_error(name: object) -> dict[str, Any] | None:
    """Why ``name`` is not a DNS label, as pydantic's error details; None when it is one.

    A good name, what registering a working worker meets, is told by the rule alone, without
    loading pydantic and the API's field types: every step pod registers its worker. A bad one
    is checked by :data:`kubehatch.api.fields.DnsLabel` itself, for its exact message.
    """
    if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and _DNS_LABEL.fullmatch(name):
        return None
    from pydantic import ValidationError

    try:
        _dns_label_adapter().validate_python(name)
    except ValidationError as error:
        return dict(error.errors()[0])
    return None


@functools.cache
def _dns_label_adapter() -> TypeAdapter[str]:
    from pydantic import TypeAdapter

    from kubehatch.api.fields import DnsLabel

    return TypeAdapter(DnsLabel)


def _target(func: Callable[..., Any]) -> Any:
    """The function whose names are used: partials and callable objects are unwrapped."""
    while isinstance(func, functools.partial):
        func = func.func
    if not hasattr(func, "__qualname__"):  # an instance with __call__
        return type(func)
    return func


def _qualname_words(func: Callable[..., Any]) -> str:
    qualname: str = _target(func).__qualname__
    parts = [part for part in qualname.split(".") if part != "<locals>"]
    return "-".join("lambda" if part == "<lambda>" else part for part in parts)


def _module_word(func: Callable[..., Any]) -> str:
    target = _target(func)
    module = getattr(target, "__module__", None) or "main"
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        code = getattr(target, "__code__", None)
        filename = code.co_filename if code is not None else main_file
        return Path(filename).stem if filename else "main"
    return module.rsplit(".", 1)[-1]


def step_name_for(func: Callable[..., Any]) -> str:
    """The derived name of a step running ``func``."""
    return to_dns_label(_qualname_words(func))


def workflow_name_for(func: Callable[..., Any]) -> str:
    """The derived name of a single-function workflow running ``func``."""
    return to_dns_label(f"{_module_word(func)}-{_qualname_words(func)}")


def dedupe(names: list[str]) -> list[str]:
    """Suffix repeated names with -2, -3... in order (used for derived names only)."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else to_dns_label(f"{name}-{seen[name]}"))
    return result
