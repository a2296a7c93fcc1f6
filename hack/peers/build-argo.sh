#!/usr/bin/env bash
# Builds Argo Workflows (a benchmark peer: never shipped, never in the chart, local cluster
# only; v4.0.5 has published security advisories) from its Go module into $KUBEHATCH_CACHE:
#   bin/argo-<ARGO_VERSION>/{workflow-controller,argoexec}   host binaries (static)
#   images/argoexec-<ARGO_VERSION>.tar                       localhost/kubehatch-peers/argoexec:<ARGO_VERSION>
#
#   build-argo.sh [build]   build what is missing (a warm cache never rebuilds)
#   build-argo.sh load      build, then import the image into containerd at $CONTAINERD_ADDRESS
#                           (default: the local cluster's, /run/kubehatch-cluster/containerd/containerd.sock)
#   build-argo.sh env       print ARGO_* KEY=VALUE lines (paths and image name; builds nothing)
#
# The module zip lacks workflow/executor/osspecific/signal_linux.go (upstream a symlink to
# signal_darwin.go; module zips drop symlinks), so argoexec does not build from it as is.
# The build copies the module into $KUBEHATCH_CACHE/src, restores that file as a copy of
# signal_darwin.go, and points a wrapper module's `replace` at the copy. None of Argo's
# code is ever committed here.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR/.. source=versions.env
source "$HACK_DIR/versions.env" # ARGO_VERSION
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
ARGO_MODULE=github.com/argoproj/argo-workflows/v4
BIN_DIR=$KUBEHATCH_CACHE/bin/argo-$ARGO_VERSION
SRC_DIR=$KUBEHATCH_CACHE/src/argo-$ARGO_VERSION            # the wrapper module
MOD_COPY=$KUBEHATCH_CACHE/src/argo-workflows-$ARGO_VERSION # the patched module copy
IMAGE_REF=localhost/kubehatch-peers/argoexec:$ARGO_VERSION
IMAGE_TAR=$KUBEHATCH_CACHE/images/argoexec-$ARGO_VERSION.tar
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/kubehatch-cluster/containerd/containerd.sock}
OCIBUILD=(python3 "$HACK_DIR/images/ocibuild.py")
COMMANDS=(workflow-controller argoexec)
# The executor runs as this user in the pods (restricted Pod Security Standard).
NONROOT=65532:65532
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

log() { printf '[%s] argo: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"; }

WORK=""
trap '[[ -z $WORK ]] || rm -rf "$WORK"' EXIT

argo_ldflags() {
  # What `workflow-controller version` reports (else v0.0.0); upstream's Makefile sets the same.
  local pkg=$ARGO_MODULE
  printf -- '-s -w -X %s.version=%s -X %s.gitTag=%s -X %s.gitTreeState=clean' \
    "$pkg" "$ARGO_VERSION" "$pkg" "$ARGO_VERSION" "$pkg"
  printf -- ' -X %s.buildDate=1970-01-01T00:00:00Z' "$pkg"
}

build_binaries() {
  local have=1 c
  for c in "${COMMANDS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || have=0; done
  if [[ $have == 1 ]]; then log "$ARGO_VERSION: cached in $BIN_DIR"; return; fi
  need_cmd go "Install Go 1.25 or newer (Debian: apt-get install golang-go, or from go.dev) and retry."
  local started=$SECONDS dir
  log "$ARGO_VERSION: building ${COMMANDS[*]} (cold: about 4 min on 2 cores)"
  dir=$(go mod download -json "$ARGO_MODULE@$ARGO_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  [[ -f $dir/workflow/executor/osspecific/signal_darwin.go ]] || die "unexpected module layout in $dir"
  # A writable copy (the module cache is read-only) with the dropped symlink restored.
  rm -rf "$MOD_COPY" && mkdir -p "$(dirname "$MOD_COPY")"
  cp -r "$dir" "$MOD_COPY" && chmod -R u+w "$MOD_COPY"
  local osdir=$MOD_COPY/workflow/executor/osspecific
  [[ -e $osdir/signal_linux.go ]] || cp "$osdir/signal_darwin.go" "$osdir/signal_linux.go"
  rm -rf "$SRC_DIR" && mkdir -p "$SRC_DIR"
  (
    cd "$SRC_DIR"
    go mod init kubehatch.dev/hack/argo >/dev/null 2>&1
    # Keeps the commands in the wrapper's module graph; never compiled (build tag).
    {
      printf '//go:build tools\n\n// Package tools keeps Argo'"'"'s commands in this wrapper module'"'"'s graph.\npackage tools\n\nimport (\n'
      for c in "${COMMANDS[@]}"; do printf '\t_ "%s/cmd/%s"\n' "$ARGO_MODULE" "$c"; done
      printf ')\n'
    } > tools.go
    go mod edit -require="$ARGO_MODULE@$ARGO_VERSION" -replace="$ARGO_MODULE=$MOD_COPY"
    go mod tidy >/dev/null
    rm -rf "$BIN_DIR.tmp" && mkdir -p "$BIN_DIR.tmp"
    local pkgs=()
    for c in "${COMMANDS[@]}"; do pkgs+=("$ARGO_MODULE/cmd/$c"); done
    CGO_ENABLED=0 go build -trimpath -ldflags "$(argo_ldflags)" -o "$BIN_DIR.tmp/" "${pkgs[@]}"
  )
  rm -rf "$BIN_DIR" && mv "$BIN_DIR.tmp" "$BIN_DIR"
  log "$ARGO_VERSION: built into $BIN_DIR in $((SECONDS - started)) s"
}

image_key() {
  # The binary and the image builder decide the image's bytes.
  cat "$BIN_DIR/argoexec" "$HACK_DIR"/../sdk/kubehatch/imagebuild/*.py "${BASH_SOURCE[0]}" |
    sha256sum | cut -c1-64
}

build_image() {
  local key
  key=$(image_key)
  if [[ -f $IMAGE_TAR && "$(cat "$IMAGE_TAR.key" 2>/dev/null)" == "$key" ]]; then
    log "image: cached $IMAGE_TAR"; return
  fi
  local started=$SECONDS
  log "image: building $IMAGE_REF"
  mkdir -p "$(dirname "$IMAGE_TAR")"
  WORK=$(mktemp -d "$(dirname "$IMAGE_TAR")/.work-argo.XXXXXX")
  # From scratch: the static binary, a writable /tmp, and the non-root user it runs as.
  # The init container copies argoexec into /var/run/argo, where the main container (the
  # step's own image) runs `argoexec emissary -- <command>`.
  local root=$WORK/root
  mkdir -p "$root/bin" "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$BIN_DIR/argoexec" "$root/bin/argoexec"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  "${OCIBUILD[@]}" build --base scratch --layer "$root:/" \
    --env PATH=/usr/local/bin:/usr/bin:/bin --entrypoint '["argoexec"]' --user "$NONROOT" \
    --label "dev.kubehatch.peer=argo-workflows" --label "dev.kubehatch.peer.version=$ARGO_VERSION" \
    --tag "$IMAGE_REF" -o "$WORK/argoexec.tar" --tmpdir "$WORK" >&2
  mv "$WORK/argoexec.tar" "$IMAGE_TAR"
  echo "$key" > "$IMAGE_TAR.key"
  rm -rf "$WORK"; WORK=""
  log "image: $IMAGE_TAR in $((SECONDS - started)) s"
}

load_image() {
  need_cmd ctr "Install containerd: apt-get install -y containerd runc"
  [[ -S $CONTAINERD_ADDRESS ]] || die "containerd is not running (no socket at $CONTAINERD_ADDRESS); start the cluster (make cluster-up) or set CONTAINERD_ADDRESS"
  log "image: importing into containerd ($CONTAINERD_ADDRESS, namespace k8s.io)"
  "${OCIBUILD[@]}" load --address "$CONTAINERD_ADDRESS" --namespace k8s.io "$IMAGE_TAR" >&2
}

env_lines() {
  cat <<EOF
ARGO_VERSION=$ARGO_VERSION
ARGO_BIN_DIR=$BIN_DIR
ARGO_WORKFLOW_CONTROLLER=$BIN_DIR/workflow-controller
ARGO_EXECUTOR_IMAGE=$IMAGE_REF
ARGO_EXECUTOR_TAR=$IMAGE_TAR
EOF
}

case ${1:-build} in
  build) build_binaries; build_image; env_lines ;;
  load) build_binaries; build_image; load_image; env_lines ;;
  env) env_lines ;;
  -h|--help|help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" ;;
  *) die "unknown mode '$1' (build, load, env)" ;;
esac
