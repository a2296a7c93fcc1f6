# Shared shell helpers for the local cluster scripts. Sourced, never run.
# shellcheck shell=bash

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=../versions.env
source "$HACK_DIR/versions.env"

# Everything built or kept by the harness lives outside the checkout, keyed by version.
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
BIN_DIR="$KUBEHATCH_CACHE/bin/kubernetes-$KUBERNETES_VERSION"
ETCD_BIN_DIR="$KUBEHATCH_CACHE/bin/etcd-$ETCD_VERSION"
HELM_BIN_DIR="$KUBEHATCH_CACHE/bin/helm-$HELM_VERSION"
IMAGE_DIR="$KUBEHATCH_CACHE/images"
# Cluster state (certificates, etcd data, logs, pids) lives apart from the build cache,
# so that `make cluster-reset` never forces a rebuild.
CLUSTER_DIR=${KUBEHATCH_CLUSTER_DIR:-/var/lib/kubehatch-cluster}
KUBECONFIG_PATH="$CLUSTER_DIR/admin.kubeconfig"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_cmd() {
  # need_cmd CMD HINT: fail with a message naming what is missing and how to get it.
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}
