#!/usr/bin/env bash
# `make demo`: a cluster (kind when Docker and kind are there, else the local one), the
# Helm chart, the examples applied, an event pushed, and the run it triggers followed
# step by step. Idempotent: run it again to push another event.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.env
NS=${DEMO_NAMESPACE:-kubehatch-demo}
CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
KUBECTL=kubectl
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

make venv >/dev/null
bash hack/cluster/build-binaries.sh helm
HELM=$CACHE/bin/helm-$HELM_VERSION/helm

if command -v docker >/dev/null && command -v kind >/dev/null && docker info >/dev/null 2>&1; then
  say "kind cluster (Docker found)"
  bash hack/kind-up.sh
  export KUBECONFIG=$CACHE/kind-$(sed -n 's/^name: *//p' kind-config.yaml).kubeconfig
  images=$(bash hack/images/build-images.sh env)
else
  say "local cluster (no Docker: components built from their Go modules)"
  make cluster-up
  export KUBECONFIG=/var/lib/kubehatch-cluster/kubeconfig
  KUBECTL=$CACHE/bin/kubernetes-$KUBERNETES_VERSION/kubectl
  images=$(CONTAINERD_ADDRESS=/run/kubehatch-cluster/containerd/containerd.sock \
    bash hack/images/build-images.sh load kubehatch | grep '^KUBEHATCH_')
fi
operator=$(sed -n 's/^KUBEHATCH_OPERATOR_IMAGE=//p' <<<"$images")
step=$(sed -n 's/^KUBEHATCH_STEP_IMAGE=//p' <<<"$images")

say "helm install kubehatch (operator $operator) into $NS"
"$HELM" upgrade --install kubehatch charts/kubehatch -n "$NS" --create-namespace \
  --set image.tag="${operator##*:}" --set watchNamespaces="{$NS}" --wait --timeout 3m

say "the examples, rendered with the step image $step"
for module in examples/ex0*.py; do
  name=$(basename "$module" .py)
  .venv/bin/kubehatch render "examples.$name:worker" --image "$step" | "$KUBECTL" apply -n "$NS" -f -
done
"$KUBECTL" get workflows -n "$NS"

say "kubehatch event push user:create --data '{\"username\": \"ada\"}'"
event=$(.venv/bin/kubehatch event push user:create --data '{"username": "ada"}' -n "$NS" | awk '{print $1}')
echo "$event"
event=${event#*/}
run=""
for _ in $(seq 1 100); do
  run=$("$KUBECTL" get workflowevent "$event" -n "$NS" -o jsonpath='{.status.runs[0]}' 2>/dev/null || true)
  [[ -n $run ]] && break
  sleep 0.2
done
[[ -n $run ]] || { echo "the event created no run; see: kubectl describe wfe $event -n $NS" >&2; exit 1; }

say "following $run"
.venv/bin/kubehatch wait "$run" -n "$NS" --timeout 180
.venv/bin/kubehatch describe "$run" -n "$NS"
say "outputs"
for cm in $("$KUBECTL" get wfr "$run" -n "$NS" -o jsonpath='{range .status.steps.*}{.outputConfigMap}{" "}{end}'); do
  printf '%s: ' "$cm"; "$KUBECTL" get configmap "$cm" -n "$NS" -o jsonpath='{.data.output\.json}'; echo
done
cat <<MSG

Try: kubectl get wf,wfr,wfe -n $NS
     .venv/bin/kubehatch run two-step-workflow --input '{"username": "grace"}' --wait -n $NS
     export KUBECONFIG=$KUBECONFIG
MSG
