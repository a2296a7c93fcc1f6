#!/usr/bin/env bash
# For machines with Docker: a kind cluster from kind-config.yaml, with kubehatch's images
# built by Docker and loaded into its node under the same names and tags as the
# registry-free builder gives them (hack/images/build-images.sh env), so that the chart,
# the demo and the e2e tests find them. Idempotent: an existing cluster is reused and the
# images are rebuilt (Docker's cache makes that quick) and reloaded.
#
#   hack/kind-up.sh                  then: export KUBECONFIG=<the path it prints>
#   KIND_NODE_IMAGE=kindest/node:v1.34.0 hack/kind-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
for cmd in docker kind; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed (kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation); without Docker use \`make cluster-up\`"
done
docker info >/dev/null 2>&1 || die "docker does not answer: start the Docker daemon (or check your rights on its socket)"

CLUSTER=$(sed -n 's/^name: *//p' kind-config.yaml)
KUBEHATCH_CACHE=${KUBEHATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubehatch}
KIND_KUBECONFIG=$KUBEHATCH_CACHE/kind-$CLUSTER.kubeconfig
mkdir -p "$KUBEHATCH_CACHE"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "kind cluster $CLUSTER exists"
  kind get kubeconfig --name "$CLUSTER" > "$KIND_KUBECONFIG"
else
  kind create cluster --config kind-config.yaml --kubeconfig "$KIND_KUBECONFIG" --wait 180s \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi

# The names only; nothing is built by the registry-free builder here.
images_env=$(bash hack/images/build-images.sh env)
image() { sed -n "s/^$1=//p" <<<"$images_env"; }
operator=$(image KUBEHATCH_OPERATOR_IMAGE)
step=$(image KUBEHATCH_STEP_IMAGE)
base=localhost/kubehatch/python-base:bookworm

docker build -f hack/images/docker/python-base.Dockerfile -t "$base" .
docker build -f hack/images/docker/operator.Dockerfile -t "$operator" .
docker build -f hack/images/docker/step.Dockerfile -t "$step" .
kind load docker-image --name "$CLUSTER" "$base" "$operator" "$step"

cat <<MSG
kind cluster $CLUSTER is up with $operator and $step.
  export KUBECONFIG=$KIND_KUBECONFIG
  helm install kubehatch charts/kubehatch -n kubehatch-system --create-namespace --set image.tag=${operator##*:}
MSG
