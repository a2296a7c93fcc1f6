"""The builder's command line: build, add-python-packages, inspect, load."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .containerd import ctr_import
from .errors import BuildError
from .image import Image, add_layer, scratch_image
from .imageconfig import ConfigChanges, apply_changes, json_list, parse_kv
from .layers import LayerSpec
from .layout import load_base, read_image_json, write_layout
from .oci import ANNOTATION_CONTAINERD_NAME, host_platform
from .pythonpkgs import (
    compile_bytecode,
    image_python_version,
    pip_install_target,
    relocate_pip_target,
)


def _changes_from_args(args: argparse.Namespace) -> ConfigChanges:
    return ConfigChanges(
        env=list(args.env),
        workdir=args.workdir,
        entrypoint=json_list(args.entrypoint, "--entrypoint") if args.entrypoint else None,
        cmd=json_list(args.cmd, "--cmd") if args.cmd else None,
        user=args.user,
        labels=parse_kv(args.label, "--label"),
    )


def _finish(image: Image, args: argparse.Namespace) -> None:
    """Apply the config flags, write the layout tarball and say what was written.

    Called while the layers' staging directory still exists: new layers are read from it.
    """
    apply_changes(image.config, _changes_from_args(args))
    index = write_layout(image, args.tag, Path(args.output), host_platform())
    digest = index["manifests"][0]["digest"]
    names = ", ".join(m["annotations"][ANNOTATION_CONTAINERD_NAME] for m in index["manifests"])
    print(f"wrote {args.output}: {names} (manifest {digest})")


def _start_image(base: str) -> Image:
    platform = host_platform()
    return scratch_image(platform) if base == "scratch" else load_base(Path(base), platform)


def cmd_build(args: argparse.Namespace) -> int:
    image = _start_image(args.base)
    specs = [LayerSpec.parse(s) for s in args.layer]
    with tempfile.TemporaryDirectory(prefix="ocibuild-", dir=args.tmpdir) as work:
        if specs:
            stats = add_layer(
                image,
                specs,
                Path(work),
                preserve_ownership=args.preserve_ownership,
                preserve_mtimes=args.preserve_mtimes,
                comment="ocibuild build: layer at " + ", ".join(s.dest for s in specs),
            )
            if stats.skipped_special:
                print(
                    f"ocibuild: skipped {len(stats.skipped_special)} device/fifo/socket"
                    f" entries (e.g. {stats.skipped_special[0]})",
                    file=sys.stderr,
                )
        _finish(image, args)
    return 0


def cmd_add_python_packages(args: argparse.Namespace) -> int:
    image = load_base(Path(args.base), host_platform())
    version = args.python_version or image_python_version(Path(args.base), image)
    if not args.pip_args:
        raise BuildError(
            "give what to install after --, e.g. -- dist/kubehatch-0.1.0-py3-none-any.whl"
        )
    with tempfile.TemporaryDirectory(prefix="ocibuild-", dir=args.tmpdir) as work:
        target = Path(work) / "target"
        root = Path(work) / "root"
        root.mkdir()
        pip_install_target(target, args.pip_args, version, python=args.python)
        relocate_pip_target(target, version, root)
        if not args.no_compile:
            compile_bytecode(root, version, python=args.python)
        add_layer(
            image,
            [LayerSpec(root, "/")],
            Path(work),
            comment="ocibuild add-python-packages " + " ".join(args.pip_args),
        )
        _finish(image, args)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.image)
    with tarfile.open(path, "r:") as tar:
        index, manifest, config = read_image_json(tar, host_platform(), str(path))
    json.dump({"index": index, "manifest": manifest, "config": config}, sys.stdout, indent=2)
    print()
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    for ref in ctr_import([Path(p) for p in args.images], args.address, args.namespace, args.ctr):
        print(f"loaded {ref}")
    return 0


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tag",
        "-t",
        action="append",
        required=True,
        help="image reference, e.g. localhost/kubehatch/pause:3.10 (repeatable)",
    )
    p.add_argument("-o", "--output", required=True, help="OCI layout tarball to write")
    p.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        metavar="K=V",
        help="set an environment variable (merged over the base's)",
    )
    p.add_argument("--workdir", help="working directory")
    p.add_argument("--entrypoint", help="JSON array, e.g. '[\"/pause\"]'")
    p.add_argument("--cmd", help="JSON array, e.g. '[\"python3\"]'")
    p.add_argument("--user", help="UID[:GID] or name")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="image label")
    p.add_argument("--tmpdir", help="where to stage layers (default: $TMPDIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocibuild", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="write an image from a base (or scratch) and directories")
    p.add_argument("--base", default="scratch", help="base OCI layout tarball, or 'scratch'")
    p.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="DIR[:DEST]",
        help="add DIR's contents at DEST (default /); all --layer go in one layer",
    )
    p.add_argument(
        "--preserve-ownership",
        action="store_true",
        help="keep files' uid/gid (for root filesystems); default is 0:0",
    )
    p.add_argument(
        "--preserve-mtimes",
        action="store_true",
        help="keep files' mtimes (root filesystems with .pyc files); default is"
        " $SOURCE_DATE_EPOCH or 0",
    )
    _add_config_flags(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "add-python-packages", help="add a layer of pip-installed packages for the image's Python"
    )
    p.add_argument("--base", required=True, help="base OCI layout tarball with python3")
    p.add_argument("--python-version", help="image Python X.Y (default: from the base image)")
    p.add_argument("--python", default=sys.executable, help="host interpreter that runs pip")
    p.add_argument("--no-compile", action="store_true", help="do not add .pyc files")
    p.add_argument("pip_args", nargs="*", help="after --: what pip should install")
    _add_config_flags(p)
    p.set_defaults(func=cmd_add_python_packages)

    p = sub.add_parser("inspect", help="print index, manifest and config as JSON")
    p.add_argument("image")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("load", help="import image tarballs into containerd")
    p.add_argument("images", nargs="+")
    p.add_argument(
        "--address", default=os.environ.get("CONTAINERD_ADDRESS", "/run/containerd/containerd.sock")
    )
    p.add_argument("--namespace", "-n", default="k8s.io")
    p.add_argument("--ctr", default="ctr", help="ctr binary")
    p.set_defaults(func=cmd_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BuildError as exc:
        print(f"ocibuild: error: {exc}", file=sys.stderr)
        return 1
