#!/usr/bin/env bash
# Builds the pinned Kubernetes components, etcd and helm from their Go modules into
# $KUBEHATCH_CACHE/bin/<name>-<version>/. A warm cache never rebuilds.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../versions.env
source "$HACK_DIR/versions.env"
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
BIN_DIR="$KUBEHATCH_CACHE/bin/kubernetes-$KUBERNETES_VERSION"
ETCD_BIN_DIR="$KUBEHATCH_CACHE/bin/etcd-$ETCD_VERSION"
HELM_BIN_DIR="$KUBEHATCH_CACHE/bin/helm-$HELM_VERSION"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"; }

need_cmd go "Install Go 1.24 or newer (Debian: apt-get install golang-go, or from go.dev) and retry."

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# go_wrapper DIR MODULE: start a throw-away wrapper module in DIR.
go_wrapper() {
  rm -rf "$1" && mkdir -p "$1"
  (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

version_ldflags() {
  # The version variables that `kubectl version` and the node status report.
  local v=$1 minor
  minor=$(echo "$v" | cut -d. -f2)
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build_kubernetes() {
  local have=1
  for c in "${K8S_COMMANDS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || have=0; done
  if [[ $have == 1 ]]; then log "kubernetes $KUBERNETES_VERSION: cached in $BIN_DIR"; return; fi
  local src="$KUBEHATCH_CACHE/src/kubernetes-$KUBERNETES_VERSION"
  log "kubernetes $KUBERNETES_VERSION: building ${K8S_COMMANDS[*]} (cold: about 4 min on 2 cores, with nothing cached)"
  go_wrapper "$src" kubehatch.dev/hack/kubernetes
  cp "$HACK_DIR/gobuild/kubernetes/tools.go" "$src/"
  (
    cd "$src"
    go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
    # k8s.io/kubernetes requires each staging module at v0.0.0 and replaces it with a
    # relative path; a dependent module must replace each with the published v0.X.Y.
    local gomod staging="v0.${KUBERNETES_VERSION#v1.}"
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod" | sort -u | while read -r m; do
      go mod edit -replace="$m=$m@$staging"
    done
    go mod tidy >/dev/null
    mkdir -p "$BIN_DIR.tmp"
    local pkgs=()
    for c in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    CGO_ENABLED=0 go build -trimpath -tags 'selinux,notest,grpcnotrace' \
      -ldflags "$(version_ldflags "$KUBERNETES_VERSION")" -o "$BIN_DIR.tmp/" "${pkgs[@]}"
  )
  rm -rf "$BIN_DIR" && mv "$BIN_DIR.tmp" "$BIN_DIR"
  log "kubernetes $KUBERNETES_VERSION: built into $BIN_DIR"
}

helm_ldflags() {
  # helm reports its own version, and the Kubernetes version it assumes for
  # .Capabilities.KubeVersion (else v1.20, which fails the chart's kubeVersion), from
  # ldflags; the latter is the client-go minor that helm's module graph resolved.
  local minor pkg
  minor=$(go list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
  printf -- '-X helm.sh/helm/v3/internal/version.version=%s -X helm.sh/helm/v3/internal/version.metadata=' "$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    printf -- ' -X %s.k8sVersionMajor=1 -X %s.k8sVersionMinor=%s' "$pkg" "$pkg" "$minor"
  done
}

build_single() {
  # build_single NAME VERSION MODULE PACKAGE SOURCE_FILE OUT_DIR [LDFLAGS_FUNCTION]
  local name=$1 version=$2 module=$3 pkg=$4 file=$5 out=$6 extra=${7:-}
  if [[ -x "$out/$name" ]]; then log "$name $version: cached in $out"; return; fi
  local src="$KUBEHATCH_CACHE/src/$name-$version"
  log "$name $version: building"
  go_wrapper "$src" "kubehatch.dev/hack/$name"
  cp "$file" "$src/"
  (
    cd "$src"
    go mod edit -require="$module@$version"
    go mod tidy >/dev/null
    mkdir -p "$out.tmp"
    local ldflags="-s -w"
    [[ -z $extra ]] || ldflags+=" $($extra)"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$name" "$pkg"
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
}

want=${1:-all}
case $want in
  kubernetes) build_kubernetes ;;
  etcd) build_single etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 . "$HACK_DIR/gobuild/etcd/main.go" "$ETCD_BIN_DIR" ;;
  helm)
    build_single helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
      "$HACK_DIR/gobuild/helm/tools.go" "$HELM_BIN_DIR" helm_ldflags ;;
  all) "$0" etcd && "$0" kubernetes && "$0" helm ;;
  *) die "unknown target '$want' (want: kubernetes, etcd, helm or all)" ;;
esac
