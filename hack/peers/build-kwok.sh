#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok/cmd/kwok at KWOK_VERSION) from its Go module into
# $KUBEHATCH_CACHE/bin/kwok-$KWOK_VERSION/kwok, for scale runs on fake nodes
# (`make bench-scale`). A warm cache never rebuilds. Never shipped, local cluster only.
set -euo pipefail
HACK_DIR=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../versions.env
source "$HACK_DIR/versions.env"
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
OUT="$KUBEHATCH_CACHE/bin/kwok-$KWOK_VERSION"
SRC="$KUBEHATCH_CACHE/src/kwok-$KWOK_VERSION"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not installed. Install Go 1.24 or newer and retry."

if [[ -x "$OUT/kwok" ]]; then
  log "kwok $KWOK_VERSION: cached in $OUT"
  exit 0
fi

log "kwok $KWOK_VERSION: building (cold: about 75 s on 2 cores)"
# A throw-away wrapper module: `go install ...@version` would work for kwok today, but a
# wrapper pins the graph the same way the cluster's own binaries are built.
rm -rf "$SRC" && mkdir -p "$SRC"
cat >"$SRC/tools.go" <<'GO'
//go:build tools

// Package tools keeps kwok's command in this wrapper module's graph.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
GO
(
  cd "$SRC"
  go mod init kubehatch.dev/hack/kwok >/dev/null 2>&1
  go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION"
  go mod tidy >/dev/null
  mkdir -p "$OUT.tmp"
  # kwok reports its version from this variable (`kwok --version`).
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    -o "$OUT.tmp/kwok" sigs.k8s.io/kwok/cmd/kwok
)
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
log "kwok $KWOK_VERSION: built into $OUT"
