"""Build OCI image layout tarballs without Docker, a registry or any third-party package.

Standard library only, so the cluster scripts run it with a bare python3
(`hack/images/ocibuild.py`), and `kubehatch image build` uses it as a package.
Modules: `oci` (spec names, platform), `references`, `blobs`, `layers` (layer tars),
`image` (the in-memory image), `imageconfig` (config edits), `layout` (layout tarballs),
`reproducible` (fixed times), `errors`, `pythonpkgs` (pip layers), `containerd`
(import), `cli`.

This machine has no container engine and no registry, so the images the local cluster
needs (the pause image, the Python base image, step and operator images) are written
directly as OCI image layout tarballs and imported into containerd with ``ctr``.

Subcommands:

``build``
    Write an image: an optional base image tarball (or ``scratch``), directories added as
    new layers on top, and config changes (env, workdir, entrypoint, cmd, user, labels).
``add-python-packages``
    Add one layer holding ``pip install --target`` output for the base image's Python
    (how kubehatch's wheel and its dependencies go into step and operator images).
``inspect``
    Print the index, manifest and config of an image tarball (for humans and tests).
``load``
    Import image tarballs into containerd (namespace ``k8s.io`` by default, where the
    CRI plugin, and so the kubelet, looks for images) and check the names arrived.

Design choices, and why:

* Layers are uncompressed tars, so a layer's digest equals its diff_id: no gzip
  nondeterminism, and nothing to gain from compression on a local import.
* Layers are deterministic: entries sorted by path, mtimes fixed (``SOURCE_DATE_EPOCH``,
  default 0), owner 0:0 unless ``--preserve-ownership``, no user/group names, no xattrs.
  The same input therefore gives the same digests, which keeps rebuilds and caches honest.
* Image references are normalised the way the CRI plugin normalises a pod's ``image:``
  (``pause:1`` -> ``docker.io/library/pause:1``), so the name containerd stores is the name
  the kubelet asks for. The project's convention is ``localhost/kubehatch/<name>:<tag>``.
* The index entry for each reference carries ``io.containerd.image.name`` (the full
  reference, which ``ctr images import`` uses as the image name) and
  ``org.opencontainers.image.ref.name`` (the tag, per the OCI image layout spec).
"""

from .cli import main
from .containerd import ctr_import, layout_refs
from .errors import BuildError
from .layout import load_base
from .oci import MEDIA_CONFIG, MEDIA_INDEX, MEDIA_LAYER, MEDIA_MANIFEST, host_platform
from .pythonpkgs import image_python_version
from .references import normalize_reference

__all__ = [
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_MANIFEST",
    "BuildError",
    "ctr_import",
    "host_platform",
    "image_python_version",
    "layout_refs",
    "load_base",
    "main",
    "normalize_reference",
]
