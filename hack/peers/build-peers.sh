#!/usr/bin/env bash
# Builds the benchmark peers from their Go modules into $KUBEHATCH_CACHE (see versions.env):
#   build-peers.sh argo   Argo Workflows' workflow-controller, argoexec and its image
#   build-peers.sh kwok   kwok, for scale runs on fake nodes
#   build-peers.sh all    both
# A warm cache never rebuilds. The peers are measured, never shipped.
set -euo pipefail
PEERS_DIR=$(cd "$(dirname "$0")" && pwd)
case "${1:-all}" in
  argo) bash "$PEERS_DIR/build-argo.sh" ;;
  kwok) bash "$PEERS_DIR/build-kwok.sh" ;;
  all) bash "$PEERS_DIR/build-argo.sh" && bash "$PEERS_DIR/build-kwok.sh" ;;
  *) echo "usage: $0 [argo|kwok|all]" >&2; exit 2 ;;
esac
