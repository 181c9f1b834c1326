# Entry points. The README names two of them: `make up` (suite on a local cluster, samples Ready)
# and `make test` (every test; `.ci/run` calls it). Everything else is a building block.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CACHE        ?= $(HOME)/.cache/agility
NODE_KUBECONFIG      := /var/lib/agility-e2e/node/kubeconfig
APISERVER_KUBECONFIG := /var/lib/agility-e2e/apiserver/kubeconfig
NAMESPACE    ?= agility-system
# A hung test must fail the run, not eat CI's 90 minutes.
INTEGRATION_TIMEOUT ?= 900
E2E_TIMEOUT  ?= 2400
CARGO_EXCLUDE_CLUSTER := --exclude agility-integration --exclude agility-e2e-suite
# Cargo builds live outside the checkout so a fresh clone (CI) reuses them.
export CARGO_TARGET_DIR ?= $(CACHE)/target
# Incremental caches grow by gigabytes per checkout path in the shared target dir (30 GB once
# filled this machine's disk mid-CI); a test run gains little from them.
export CARGO_INCREMENTAL ?= 0

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## Install and build everything the project needs (apt, Go components, helm, kubeconform); cached
	e2e/cluster/setup-host.sh
	hack/install-tools.sh

up: setup ## Bring the suite up on a local cluster with the samples Ready
	$(MAKE) images-build
	kc=$$(e2e/cluster/up.sh | tail -n 1); \
	$(MAKE) images-import; \
	KUBECONFIG=$$kc hack/install-local.sh; \
	KUBECONFIG=$$kc hack/apply-samples.sh; \
	echo "export KUBECONFIG=$$kc"

down: cluster-down ## Tear the local cluster down completely

cluster-up: ## Start the single-node cluster (prints the kubeconfig path)
	e2e/cluster/up.sh

cluster-down: ## Stop the single-node cluster and remove everything it created
	e2e/cluster/down.sh

images: images-build images-import ## Build the OCI image archives and import them into the local node

images-build: ## Build the OCI image archives (~/.cache/agility/images)
	e2e/images/images.sh build --all

images-import: ## Import the archives into the local node's containerd (kind.sh loads them itself)
	if [ "$${AGILITY_CLUSTER_PROVIDER:-}" != kind ]; then e2e/images/images.sh import --all; fi

install: ## Install the operator on the local cluster from the rendered manifests
	hack/install-local.sh

samples: ## Apply the samples and wait until every one is Ready
	hack/apply-samples.sh

fmt: ## rustfmt check
	cargo fmt --all -- --check

clippy: ## clippy with warnings denied
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit: ## Unit tests (no cluster)
	cargo test --workspace --locked $(CARGO_EXCLUDE_CLUSTER)

drift: ## Regenerate CRDs, chart CRDs and manifests; fail on any difference
	hack/check-drift.sh

chart: ## helm lint and kubeconform on the rendered chart
	hack/check-chart.sh

integration: ## Controller tests against a real kube-apiserver + etcd (tier 1)
	kc=$$(e2e/cluster/apiserver.sh up | tail -n 1); \
	rc=0; KUBECONFIG=$$kc timeout --kill-after=30 $(INTEGRATION_TIMEOUT) \
	  cargo test -p agility-integration --locked -- --test-threads=1 || rc=$$?; \
	e2e/cluster/apiserver.sh down; exit $$rc

vm-test: ## Node agent tests needing bonding / LVM thin pools (tests/vm_*.rs), each in a qemu VM (e2e/vm)
	e2e/vm/test.sh

e2e: ## e2e tests on the full local node (brings it up if needed; kept up for inspection)
	$(MAKE) images-build
	kc=$$(e2e/cluster/up.sh | tail -n 1); \
	$(MAKE) images-import; \
	KUBECONFIG=$$kc hack/install-local.sh; \
	KUBECONFIG=$$kc timeout --kill-after=30 $(E2E_TIMEOUT) \
	  cargo test -p agility-e2e-suite --locked -- --test-threads=1 --nocapture

bench-redis: ## RedisInstance benchmarks on the running node (INSTANCES=50 for the many-instances run)
	KUBECONFIG=$(NODE_KUBECONFIG) AGILITY_BENCH_INSTANCES=$${INSTANCES:-5} \
	  cargo test -p agility-e2e-suite --locked --test redis_bench -- --test-threads=1 --nocapture

measure: ## Print cluster numbers (build time, warm up time, pod start latency)
	e2e/cluster/measure.sh

test: setup fmt clippy unit drift chart integration vm-test e2e down ## Every test, as CI runs it (ends with the cluster torn down)

.PHONY: help setup up down cluster-up cluster-down images images-build images-import install samples fmt clippy unit drift chart integration vm-test e2e bench-redis measure test
