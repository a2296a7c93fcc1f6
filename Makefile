# kubehatch developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
CLUSTER     := PYTHONPATH=hack/cluster python3 -m localcluster
include hack/versions.env
KUBEHATCH_CACHE ?= $(HOME)/.cache/kubehatch

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[operator,dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with kubehatch, its operator extra and the dev tools.

.PHONY: lint
lint: venv ## ruff check and format check.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: unit
unit: venv ## Unit tests: pure logic, no cluster.
	$(VENV)/bin/pytest -m 'not e2e' -q

.PHONY: generate
generate: venv ## Regenerate everything derived from the API types: CRDs, reference, example YAML.
	$(PY) -m kubehatch.api.crdgen crds charts/kubehatch/crds
	$(PY) -m kubehatch.api.docgen docs/reference.md
	$(PY) -m examples.regenerate

.PHONY: crds
crds: generate ## Alias of generate (the CRDs come from the pydantic API types).

.PHONY: docs
docs: generate ## Alias of generate (docs/reference.md comes from the API types).

.PHONY: typecheck
typecheck: venv ## mypy over the SDK and the operator ([tool.mypy] in pyproject.toml).
	$(VENV)/bin/mypy

.PHONY: imports
imports: venv ## import-linter: the import contracts of [tool.importlinter] in pyproject.toml.
	$(VENV)/bin/lint-imports --no-logo

.PHONY: layout
layout: venv ## No import cycles between modules, no module over 400 lines (tests/unit/test_layout.py).
	$(VENV)/bin/pytest -q tests/unit/test_layout.py

.PHONY: verify
verify: lint typecheck imports layout ## All static checks: lint, types, import contracts, layout, stale generated files.
	$(PY) -m kubehatch.api.crdgen --check crds charts/kubehatch/crds
	$(PY) -m kubehatch.api.docgen --check docs/reference.md
	$(PY) -m examples.regenerate --check

.PHONY: binaries
binaries: ## Build the pinned Kubernetes components, etcd and helm into ~/.cache/kubehatch.
	bash hack/cluster/build-binaries.sh all

.PHONY: images
images: ## Build the cluster's and kubehatch's images into the cache (registry-free).
	bash hack/images/build-images.sh build

.PHONY: chart-lint
chart-lint: ## helm lint the chart (helm is built from its Go module if missing).
	bash hack/cluster/build-binaries.sh helm
	$(KUBEHATCH_CACHE)/bin/helm-$(HELM_VERSION)/helm lint --strict charts/kubehatch

.PHONY: cluster-up
cluster-up: ## Start the local single-node cluster (builds what is missing; idempotent).
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: ## Stop every process of the local cluster and undo its mounts and network.
	$(CLUSTER) down

.PHONY: cluster-reset
cluster-reset: ## cluster-down, then wipe the cluster's state (keeps built binaries/images).
	$(CLUSTER) reset

.PHONY: cluster-status
cluster-status: ## Show which cluster processes run.
	$(CLUSTER) status

.PHONY: kind-up
kind-up: ## For machines with Docker: a kind cluster from kind-config.yaml, images loaded.
	bash hack/kind-up.sh

.PHONY: browser
browser: ## Debian's chromium for the dashboard's browser tests (skipped when one is installed).
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

.PHONY: e2e
e2e: venv browser ## End-to-end tests against $$KUBECONFIG, or the local cluster (brought up if needed).
	$(VENV)/bin/pytest -m e2e -q

.PHONY: demo
demo: ## A cluster, the chart, the examples, an event, and its run followed step by step.
	bash hack/demo.sh

.PHONY: test
test: ## The whole suite on a fresh machine: install, unit, cluster up, e2e, cluster down.
	bash hack/test-all.sh

.PHONY: bench
bench: venv bench-peers ## Real pods, kubehatch beside Argo: pod floor, 5-step chains, trigger latency, memory.
	$(VENV)/bin/python -m tests.bench

.PHONY: bench-peers
bench-peers: ## Build the benchmark peers (Argo Workflows, kwok) from their Go modules into the cache.
	bash hack/peers/build-peers.sh all

.PHONY: bench-scale
bench-scale: venv bench-peers ## Scale on kwok's fake nodes: throughput, memory, restart, admission; kubehatch beside Argo.
	$(VENV)/bin/python -m tests.bench.scale

.PHONY: bench-chaos
bench-chaos: venv ## 100 runs while the operator is SIGKILLed every 2-5 s; every guarantee checked.
	$(VENV)/bin/python -m tests.bench.chaos
