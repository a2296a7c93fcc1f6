#!/usr/bin/env bash
# Builds the images the local cluster needs, without Docker or a registry, as OCI layout
# tarballs in $KUBEHATCH_CACHE/images/ (default ~/.cache/kubehatch/images/), and
# imports them into containerd's k8s.io namespace (where the kubelet's CRI looks).
#
#   build-images.sh [build]   build what is missing (warm: a few hashes, no rebuild)
#   build-images.sh base      only the cluster's own images (pause, python-base)
#   build-images.sh kubehatch only the kubehatch images (operator, step); builds
#                             python-base first if it is missing
#   build-images.sh load [all|base|kubehatch]
#                             build (all, or that group), then import into containerd
#                             at $CONTAINERD_ADDRESS (default /run/containerd/containerd.sock)
#   build-images.sh env       print the image references and tarball paths as KEY=VALUE
#                             (the tags come from the sources: nothing is built)
# Every mode ends by printing those KEY=VALUE lines for the images it built (logs go to
# stderr): use them rather than a later `env`, since the sources may change meanwhile.
#
# Images (convention: localhost/kubehatch/<name>:<tag>, never :latest; pods use
# imagePullPolicy IfNotPresent or Never, and "localhost/" can never resolve to a remote
# registry):
#   localhost/kubehatch/pause:3.10                   static C pause, the sandbox image
#   localhost/kubehatch/python-base:bookworm-<hash>  Debian minbase + python3; <hash> keys
#   localhost/kubehatch/python-base:bookworm         suite, arch, package list and recipe;
#                                                    the short tag follows the newest build
#   localhost/kubehatch/operator:<version>-<hash>    kubehatch[operator] on python-base;
#                                                    runs python3 -m kubehatch_operator
#   localhost/kubehatch/step:<version>-<hash>        kubehatch on python-base, examples/
#                                                    in /app: the base of step images
# <version> is pyproject's; <hash> keys the kubehatch sources, examples/, pyproject.toml,
# this recipe and the python-base tag, so changed code always gets a new tag (pods use
# IfNotPresent: a reused tag would keep running the old code). The tags come from the
# sources alone, so `env` and hack/kind-up.sh know them without building anything.
# Layers: python-base | kubehatch's dependencies (cached by the requirement list) |
# kubehatch (+ examples/): a code change rebuilds only the last, small layers.
set -euo pipefail
IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../versions.env
source "$IMAGES_DIR/../versions.env" # DEBIAN_SUITE
# Same cache root as the cluster harness (hack/cluster): outside the checkout.
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
IMAGE_DIR=$KUBEHATCH_CACHE/images

log() { printf '[%s] images: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"; }

OCIBUILD=(python3 "$IMAGES_DIR/ocibuild.py")
# The builder itself (ocibuild.py runs it): part of every image's cache key.
OCIBUILD_SRC=("$IMAGES_DIR"/../../sdk/kubehatch/imagebuild/*.py)
PAUSE_VERSION=3.10
PAUSE_REF=localhost/kubehatch/pause:$PAUSE_VERSION
PAUSE_TAR=$IMAGE_DIR/pause-$PAUSE_VERSION.tar
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

sha256_of() { cat "$@" | sha256sum | cut -c1-64; }

python_base_key() {
  # Everything that decides the root filesystem's content; not the mirror URL.
  { printf 'suite=%s arch=%s variant=minbase\n' "$DEBIAN_SUITE" "$ARCH"
    grep -v '^\s*#' "$IMAGES_DIR/python-base/packages.txt" | awk 'NF' | sort
    cat "$IMAGES_DIR/python-base/trim-rootfs.sh"; } | sha256sum | cut -c1-12
}
PYBASE_KEY=$(python_base_key)
PYBASE_TAG=$DEBIAN_SUITE-$PYBASE_KEY
PYBASE_REF=localhost/kubehatch/python-base:$PYBASE_TAG
PYBASE_ALIAS=localhost/kubehatch/python-base:$DEBIAN_SUITE
PYBASE_TAR=$IMAGE_DIR/python-base-$PYBASE_TAG.tar

# --- kubehatch images ---------------------------------------------------------------
REPO_DIR=$(cd "$IMAGES_DIR/../.." && pwd)
KUBEHATCH_VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO_DIR/pyproject.toml" | head -1)
[[ -n $KUBEHATCH_VERSION ]] || die "no version in $REPO_DIR/pyproject.toml"
# What goes into the wheel or the images; __pycache__ and dotfiles are not inputs.
KUBEHATCH_INPUTS=(pyproject.toml README.md sdk/kubehatch operator/kubehatch_operator examples)
source_files() { # source_files DIR: the inputs under DIR, NUL-separated, sorted
  local inputs=() i
  for i in "${KUBEHATCH_INPUTS[@]}"; do [[ -e $1/$i ]] && inputs+=("$i"); done
  (cd "$1" && find "${inputs[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' \
    ! -name '.*' ! -name '*~' -print0 | LC_ALL=C sort -z)
}
kubehatch_key() { # kubehatch_key DIR
  { echo "python-base=$PYBASE_TAG"
    sha256_of "$IMAGES_DIR/build-images.sh" "${OCIBUILD_SRC[@]}"
    source_files "$1" | (cd "$1" && xargs -0 sha256sum)
  } | sha256sum | cut -c1-12
}
set_kubehatch_names() { # set_kubehatch_names KEY
  KUBEHATCH_TAG=$KUBEHATCH_VERSION-$1
  OPERATOR_REF=localhost/kubehatch/operator:$KUBEHATCH_TAG
  OPERATOR_TAR=$IMAGE_DIR/operator-$KUBEHATCH_TAG.tar
  STEP_REF=localhost/kubehatch/step:$KUBEHATCH_TAG
  STEP_TAR=$IMAGE_DIR/step-$KUBEHATCH_TAG.tar
}
set_kubehatch_names "$(kubehatch_key "$REPO_DIR")"
# The operator and step pods run as this non-root user ("restricted" Pod Security
# Standard); the operator gives step pods the same UID.
NONROOT=65532:65532

# Scratch space for the current build; removed (after unmounting anything debootstrap
# left mounted in it) on any exit, so a failed build leaves nothing behind.
WORK=""
cleanup() {
  [[ -n $WORK && -d $WORK ]] || return 0
  local m
  while read -r m; do
    [[ -n $m ]] && umount -l "$m" 2>/dev/null || true
  done < <(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r)
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

new_work() { mkdir -p "$IMAGE_DIR"; WORK=$(mktemp -d "$IMAGE_DIR/.work.XXXXXX"); }

build_pause() {
  # The key covers the source, the compiler flags and the image builder; the build takes
  # a second, so this only saves the compiler invocation.
  local flags="-static -Os -Wall -Wextra" key
  key=$( { sha256_of "$IMAGES_DIR/pause/pause.c" "${OCIBUILD_SRC[@]}"; echo "$flags"; gcc --version | head -1; } 2>/dev/null | sha256sum | cut -c1-64)
  if [[ -f $PAUSE_TAR && "$(cat "$PAUSE_TAR.key" 2>/dev/null)" == "$key" ]]; then
    log "pause: cached $PAUSE_TAR"; return
  fi
  need_cmd gcc "Install a C compiler and static libc: apt-get install -y gcc libc6-dev"
  [[ -f /usr/lib/x86_64-linux-gnu/libc.a || -n $(find /usr/lib -name libc.a -print -quit) ]] ||
    die "no static libc (libc.a). Install it: apt-get install -y libc6-dev"
  log "pause: building $PAUSE_REF"
  new_work
  mkdir -p "$WORK/root"
  # shellcheck disable=SC2086
  gcc $flags -o "$WORK/root/pause" "$IMAGES_DIR/pause/pause.c"
  strip "$WORK/root/pause"
  "${OCIBUILD[@]}" build --base scratch --layer "$WORK/root:/" --entrypoint '["/pause"]' \
    --user 65535:65535 --tag "$PAUSE_REF" -o "$PAUSE_TAR" --tmpdir "$WORK" >&2
  echo "$key" > "$PAUSE_TAR.key"
  cleanup; WORK=""
}

build_python_base() {
  if [[ -f $PYBASE_TAR ]]; then log "python-base: cached $PYBASE_TAR"; return; fi
  need_cmd debootstrap "Install it: apt-get install -y debootstrap"
  [[ $(id -u) == 0 ]] || die "debootstrap needs root to build the python-base image; run as root"
  local mirror packages rootfs pyver
  mirror=${DEBIAN_MIRROR:-$(python3 "$IMAGES_DIR/apt_mirror.py" "$DEBIAN_SUITE")} ||
    die "no Debian mirror for $DEBIAN_SUITE in apt's sources; set DEBIAN_MIRROR=URL"
  packages=$(grep -v '^\s*#' "$IMAGES_DIR/python-base/packages.txt" | awk 'NF' | sort | paste -sd, -)
  log "python-base: debootstrap --variant=minbase --include=$packages $DEBIAN_SUITE from $mirror (cold: a few minutes)"
  new_work
  rootfs=$WORK/rootfs
  mkdir -p "$IMAGE_DIR/debs"
  if ! debootstrap --variant=minbase --arch="$ARCH" --components=main --include="$packages" \
      --cache-dir="$IMAGE_DIR/debs" "$DEBIAN_SUITE" "$rootfs" "$mirror" > "$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (log above). Check that $mirror is reachable (apt-get update) and retry."
  fi
  pyver=$(cd "$rootfs/usr/lib" && ls -d python3.[0-9]*/os.py 2>/dev/null | head -1 | sed 's|python\(3\.[0-9]*\)/os.py|\1|')
  [[ -n $pyver ]] || die "debootstrap produced no python3 in $rootfs"
  "$IMAGES_DIR/python-base/trim-rootfs.sh" "$rootfs"
  log "python-base: packing $PYBASE_REF (python $pyver)"
  "${OCIBUILD[@]}" build --base scratch --layer "$rootfs:/" --preserve-ownership --preserve-mtimes \
    --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --cmd '["python3"]' \
    --label "dev.kubehatch.python.version=$pyver" --label "dev.kubehatch.debian.suite=$DEBIAN_SUITE" \
    --tag "$PYBASE_REF" --tag "$PYBASE_ALIAS" -o "$PYBASE_TAR" --tmpdir "$WORK" >&2
  cleanup; WORK=""
  # Older keys' tarballs are superseded; keep the cache from growing without bound.
  find "$IMAGE_DIR" -maxdepth 1 -name "python-base-$DEBIAN_SUITE-*.tar" ! -name "${PYBASE_TAR##*/}" -delete
}

# requirements EXTRA: kubehatch's dependencies (plus those of the extra), from pyproject.
requirements() {
  python3 - "$REPO_DIR/pyproject.toml" "$1" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extra = project.get("optional-dependencies", {}).get(sys.argv[2], []) if sys.argv[2] else []
print("\n".join(project["dependencies"] + extra))
PY
}

# build_deps NAME EXTRA: python-base plus kubehatch's dependencies, one layer, cached by
# the requirement list. Code changes then only add a small layer on top of it.
build_deps() {
  local name=$1 extra=$2 reqs key tar
  reqs=$(requirements "$extra")
  key=$( { echo "python-base=$PYBASE_TAG"; echo "$reqs"; sha256_of "${OCIBUILD_SRC[@]}"; } |
    sha256sum | cut -c1-12)
  tar=$IMAGE_DIR/deps/$name-$key.tar
  if [[ ! -f $tar ]]; then
    log "$name: pip-installing $(echo "$reqs" | paste -sd' ' -) (cold: about 20 s)"
    mkdir -p "$IMAGE_DIR/deps"
    echo "$reqs" > "$WORK/$name.txt"
    "${OCIBUILD[@]}" add-python-packages --base "$PYBASE_TAR" --tmpdir "$WORK" \
      --tag "localhost/kubehatch/$name:$key" -o "$WORK/$name.tar" -- -q -r "$WORK/$name.txt" >&2
    mv "$WORK/$name.tar" "$tar"
    keep_newest 2 "$IMAGE_DIR/deps/$name-*.tar"
  fi
  echo "$tar"
}

keep_newest() { # keep_newest N GLOB: delete all but the N newest files matching GLOB
  # shellcheck disable=SC2086 # GLOB is meant to expand
  ls -1t $2 2>/dev/null | tail -n +"$(($1 + 1))" | xargs -r rm -f
}

build_kubehatch() {
  if [[ -f $OPERATOR_TAR && -f $STEP_TAR ]]; then
    log "kubehatch: cached $OPERATOR_REF, $STEP_REF"; return
  fi
  [[ -f $PYBASE_TAR ]] || build_python_base
  python3 -m pip --version >/dev/null 2>&1 ||
    die "python3 has no pip (it builds the wheel and installs it into the images): apt-get install -y python3-pip"
  new_work
  # Build from a snapshot, and name the images after the snapshot: files edited during
  # the build can never end up under the wrong tag.
  mkdir -p "$WORK/src"
  source_files "$REPO_DIR" | (cd "$REPO_DIR" && xargs -0 cp --parents -t "$WORK/src")
  set_kubehatch_names "$(kubehatch_key "$WORK/src")"
  if [[ -f $OPERATOR_TAR && -f $STEP_TAR ]]; then
    log "kubehatch: cached $OPERATOR_REF, $STEP_REF"; cleanup; WORK=""; return
  fi
  local step_deps operator_deps wheel
  step_deps=$(build_deps step-deps "")
  operator_deps=$(build_deps operator-deps operator)
  log "kubehatch: building the wheel"
  python3 -m pip wheel --no-deps --disable-pip-version-check -q -w "$WORK/dist" "$WORK/src" >&2 ||
    die "building the kubehatch wheel failed (output above)"
  wheel=$(ls "$WORK"/dist/kubehatch-*.whl)
  log "kubehatch: $OPERATOR_REF"
  "${OCIBUILD[@]}" add-python-packages --base "$operator_deps" --tmpdir "$WORK" \
    --entrypoint '["python3", "-m", "kubehatch_operator"]' --user "$NONROOT" \
    --env PYTHONDONTWRITEBYTECODE=1 --label "dev.kubehatch.version=$KUBEHATCH_VERSION" \
    --tag "$OPERATOR_REF" -o "$WORK/operator.tar" -- -q --no-deps "$wheel" >&2
  log "kubehatch: $STEP_REF"
  "${OCIBUILD[@]}" add-python-packages --base "$step_deps" --tmpdir "$WORK" \
    --workdir /app --env PYTHONPATH=/app --env PYTHONDONTWRITEBYTECODE=1 \
    --entrypoint '["kubehatch"]' --cmd '["--help"]' --user "$NONROOT" \
    --label "dev.kubehatch.version=$KUBEHATCH_VERSION" \
    --tag "$STEP_REF" -o "$WORK/step-sdk.tar" -- -q --no-deps "$wheel" >&2
  # The examples as a package in /app (KUBEHATCH_WORKER=examples.<module>:worker), where
  # users' step images put their code too.
  mkdir -p "$WORK/app"
  [[ -d $WORK/src/examples ]] && cp -r "$WORK/src/examples" "$WORK/app/"
  "${OCIBUILD[@]}" build --base "$WORK/step-sdk.tar" --layer "$WORK/app:/app" --tmpdir "$WORK" \
    --tag "$STEP_REF" -o "$WORK/step.tar" >&2
  mv "$WORK/operator.tar" "$OPERATOR_TAR"
  mv "$WORK/step.tar" "$STEP_TAR"
  cleanup; WORK=""
  # Older builds are superseded; keep a few (another build may be importing one now).
  keep_newest 3 "$IMAGE_DIR/operator-*.tar"
  keep_newest 3 "$IMAGE_DIR/step-*.tar"
}

env_lines() {
  cat <<EOF
KUBEHATCH_PAUSE_IMAGE=$PAUSE_REF
KUBEHATCH_PAUSE_TAR=$PAUSE_TAR
KUBEHATCH_PYTHON_BASE_IMAGE=$PYBASE_REF
KUBEHATCH_PYTHON_BASE_TAR=$PYBASE_TAR
KUBEHATCH_IMAGE_TAG=$KUBEHATCH_TAG
KUBEHATCH_OPERATOR_IMAGE=$OPERATOR_REF
KUBEHATCH_OPERATOR_TAR=$OPERATOR_TAR
KUBEHATCH_STEP_IMAGE=$STEP_REF
KUBEHATCH_STEP_TAR=$STEP_TAR
EOF
}

write_env() {
  env_lines > "$IMAGE_DIR/images.env.$$"
  mv "$IMAGE_DIR/images.env.$$" "$IMAGE_DIR/images.env"
}

load_images() {
  need_cmd ctr "Install containerd: apt-get install -y containerd runc"
  [[ -S $CONTAINERD_ADDRESS ]] || die "containerd is not running (no socket at $CONTAINERD_ADDRESS); start it first or set CONTAINERD_ADDRESS"
  log "importing into containerd ($CONTAINERD_ADDRESS, namespace k8s.io)"
  "${OCIBUILD[@]}" load --address "$CONTAINERD_ADDRESS" --namespace k8s.io "$@" >&2
}

# An image group's builds, and its tarballs.
build_group() {
  case $1 in
    all) build_pause; build_python_base; build_kubehatch ;;
    base) build_pause; build_python_base ;;
    kubehatch) build_kubehatch ;;
    *) die "unknown image group '$1' (all, base, kubehatch)" ;;
  esac
  write_env
}
# group_tars GROUP: the group's tarballs in TARS (after the build, which names them).
group_tars() {
  case $1 in
    all) TARS=("$PAUSE_TAR" "$PYBASE_TAR" "$OPERATOR_TAR" "$STEP_TAR") ;;
    base) TARS=("$PAUSE_TAR" "$PYBASE_TAR") ;;
    kubehatch) TARS=("$OPERATOR_TAR" "$STEP_TAR") ;;
  esac
}

case ${1:-build} in
  build) build_group all; env_lines ;;
  base|kubehatch) build_group "$1"; env_lines ;;
  load)
    group=${2:-all}; build_group "$group"
    group_tars "$group"; load_images "${TARS[@]}"; env_lines ;;
  env) env_lines ;;
  -h|--help|help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" ;;
  *) die "unknown mode '$1' (build, base, kubehatch, load [all|base|kubehatch], env)" ;;
esac
