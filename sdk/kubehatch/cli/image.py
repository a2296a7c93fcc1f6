"""``kubehatch image build MODULE:WORKER -t TAG``: a step image holding your workflow code.

The image is kubehatch's step image plus your code in /app (the top-level package or
module that holds the worker), your requirements, and KUBEHATCH_WORKER naming the
worker. With Docker or Podman it is a `docker build`; without them, the built-in
registry-free builder writes an OCI tarball. `--load` puts it where the cluster's
kubelet finds it: the local cluster's containerd, or kind.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kubehatch.api import wire
from kubehatch.cli._common import arg, arguments
from kubehatch.errors import KubehatchError

NAME = "image"
HELP = "build a step image with a worker's code (docker/podman, or the built-in builder)"

LOCAL_CONTAINERD = Path("/run/kubehatch-cluster/containerd/containerd.sock")


configure_build = arguments(
    arg("worker", metavar="MODULE:WORKER", help="e.g. myapp.workers:worker"),
    arg("-t", "--tag", required=True, help="image reference, e.g. localhost/me/app:1"),
    arg("-r", "--requirements", type=Path, help="a requirements.txt to install"),
    arg(
        "--base",
        help="base image: a reference (docker/podman) or an OCI tarball (built-in builder); "
        "default: kubehatch's step image",
    ),
    arg(
        "--builder",
        choices=["auto", "docker", "podman", "builtin"],
        default="auto",
        help="auto: docker or podman when installed, else the built-in builder",
    ),
    arg("-o", "--output", type=Path, help="built-in builder: the tarball to write"),
    arg("--load", action="store_true", help="load it into the local cluster or kind"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="image_command", required=True)
    configure_build(sub.add_parser("build", help=HELP, description=__doc__))


def _code_path(reference: str) -> Path:
    """The top-level package (or module file) that holds the worker, found from the cwd."""
    module = reference.partition(":")[0]
    top = module.split(".")[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        raise KubehatchError(
            f"cannot find module {top!r} from {os.getcwd()}; run from your project"
        )
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def _default_base() -> tuple[str, Path | None]:
    cache = Path(os.environ.get("KUBEHATCH_CACHE", Path.home() / ".cache" / "kubehatch"))
    env_file = cache / "images" / "images.env"
    if env_file.exists():
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        tar = env.get("KUBEHATCH_STEP_TAR")
        return env.get("KUBEHATCH_STEP_IMAGE", ""), Path(tar) if tar else None
    return "", None


def _stage(reference: str, requirements: Path | None, into: Path) -> None:
    app = into / "app"
    app.mkdir(parents=True)
    code = _code_path(reference)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    if code.is_dir():
        shutil.copytree(code, app / code.name, ignore=ignore)
    else:
        shutil.copy(code, app / code.name)
    if requirements is not None:
        shutil.copy(requirements, into / "requirements.txt")


def _builder(choice: str) -> str:
    if choice != "auto":
        return choice
    for tool in ("docker", "podman"):
        if (
            shutil.which(tool)
            and subprocess.run([tool, "info"], capture_output=True).returncode == 0
        ):
            return tool
    return "builtin"


def build_with_engine(tool: str, args: argparse.Namespace, base: str, context: Path) -> None:
    if not base:
        raise KubehatchError("no base image: pass --base (an image with kubehatch installed)")
    lines = [f"FROM {base}", "COPY app/ /app/"]
    if args.requirements:
        lines += [
            "COPY requirements.txt /tmp/requirements.txt",
            "RUN pip install --no-cache-dir -r /tmp/requirements.txt",
        ]
    lines += [f"ENV KUBEHATCH_WORKER={args.worker} PYTHONPATH=/app", "WORKDIR /app"]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    subprocess.run([tool, "build", "-t", args.tag, str(context)], check=True)
    if args.load and shutil.which("kind"):
        subprocess.run(["kind", "load", "docker-image", args.tag], check=True)


def build_builtin(args: argparse.Namespace, base_tar: Path | None, context: Path) -> Path:
    from kubehatch import imagebuild

    base = Path(args.base) if args.base else base_tar
    if base is None or not base.exists():
        raise KubehatchError(
            "no base image tarball: build kubehatch's step image first "
            "(hack/images/build-images.sh kubehatch) or pass --base STEP.tar"
        )
    output: Path = args.output or Path.cwd() / (
        args.tag.rsplit("/", 1)[-1].replace(":", "-") + ".tar"
    )
    if args.requirements:
        with_reqs = context / "with-requirements.tar"
        imagebuild.main(
            [
                "add-python-packages",
                "--base",
                str(base),
                "--tag",
                args.tag,
                "-o",
                str(with_reqs),
                "--",
                "-r",
                str(context / "requirements.txt"),
            ]
        )
        base = with_reqs
    imagebuild.main(
        [
            "build",
            "--base",
            str(base),
            "--layer",
            f"{context / 'app'}:/app",
            "--workdir",
            "/app",
            "--env",
            f"{wire.ENV_WORKER}={args.worker}",
            "--env",
            "PYTHONPATH=/app",
            "--tag",
            args.tag,
            "-o",
            str(output),
        ]
    )
    if args.load:
        if LOCAL_CONTAINERD.exists():
            imagebuild.main(["load", "--address", str(LOCAL_CONTAINERD), str(output)])
        elif shutil.which("kind"):
            subprocess.run(["kind", "load", "image-archive", str(output)], check=True)
        else:
            raise KubehatchError(
                f"wrote {output}, but found no local cluster or kind to load it into"
            )
    return output


def run(args: argparse.Namespace) -> int:
    default_ref, default_tar = _default_base()
    builder = _builder(args.builder)
    with tempfile.TemporaryDirectory(prefix="kubehatch-image-") as tmp:
        context = Path(tmp)
        _stage(args.worker, args.requirements, context)
        if builder == "builtin":
            output = build_builtin(args, default_tar, context)
            print(f"built {args.tag} -> {output}" + (" (loaded)" if args.load else ""))
        else:
            build_with_engine(builder, args, args.base or default_ref, context)
            print(f"built {args.tag} with {builder}")
    return 0
