#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is missing, run the unit
# tests, bring the local cluster up (unless $KUBECONFIG points at a reachable one),
# run the e2e tests, and take the cluster down again, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

make venv
# The static checks first (seconds): lint, types, import contracts, layout, generated files.
make -k verify  # -k: every check reports, not only the first to fail
# helm renders the chart in unit tests; built (pinned, cached) like the cluster's parts.
bash hack/cluster/build-binaries.sh helm
make unit

own_cluster=0
if [[ -n "${KUBECONFIG:-}" ]] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "using the cluster at KUBECONFIG=$KUBECONFIG"
else
  own_cluster=1
  trap 'make cluster-down || true' EXIT
  # A stopped cluster may have left state behind (a previous session's, say): start clean.
  make cluster-reset
  make cluster-up
  export KUBECONFIG
  KUBECONFIG=$(PYTHONPATH=hack/cluster python3 -m localcluster kubeconfig)
fi

make e2e
echo "test-all: finished in $((SECONDS - started))s (own cluster: $own_cluster)"
