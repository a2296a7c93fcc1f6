"""Image references, normalised the way containerd's CRI plugin normalises pod images.

The name an image is imported under must be the name the kubelet asks for, so the
builder normalises every ``--tag`` here instead of trusting it as typed.
"""

from __future__ import annotations

import re

from .errors import BuildError

_DOMAIN_RE = re.compile(r"^(localhost|[^/]*[.:][^/]*)$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def normalize_reference(ref: str) -> tuple[str, str]:
    """Return (full reference, tag) the way containerd's CRI plugin normalises pod images.

    A pod saying ``image: localhost/kubehatch/pause:3.10`` is looked up under exactly that
    name, while ``image: pause:3.10`` is looked up as ``docker.io/library/pause:3.10``; the
    imported name must match, so references are normalised here rather than by hand.
    Digest references are refused: a tag is what ties the pod spec to the import.
    """
    if "@" in ref:
        raise BuildError(f"{ref!r}: digest references cannot be used as image names")
    name, tag = ref, ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    if not tag:
        raise BuildError(f"{ref!r}: give an explicit tag (not latest) so IfNotPresent finds it")
    if not _TAG_RE.match(tag):
        raise BuildError(f"{ref!r}: invalid tag {tag!r}")
    first, _, rest = name.partition("/")
    if rest and _DOMAIN_RE.match(first):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.match(path):
        raise BuildError(f"{ref!r}: invalid repository path {path!r} (lower case, digits, . _ -)")
    return f"{domain}/{path}:{tag}", tag
