# scalewise: run `make` (or `make help`) to list the targets.
SHELL := /bin/bash
CARGO ?= cargo

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the scalewise binary (release)
	$(CARGO) build --release --locked

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: fmt-check
fmt-check: ## Fail when the code is not formatted
	$(CARGO) fmt --all -- --check

.PHONY: lint
lint: ## Clippy on every target, warnings are errors
	$(CARGO) clippy --locked --all-targets -- -D warnings

.PHONY: crds
crds: ## Regenerate crds/scalingpolicy.yaml from the Rust types
	$(CARGO) run --locked --quiet -- crd > crds/scalingpolicy.yaml

.PHONY: verify-generated
verify-generated: ## Fail when crds/ differs from what `scalewise crd` prints
	@$(CARGO) run --locked --quiet -- crd | diff -u crds/scalingpolicy.yaml - \
	  || { echo "crds/scalingpolicy.yaml is out of date: run 'make crds' and commit it" >&2; exit 1; }

.PHONY: demo
demo: ## The main job: check the reference policy and run the decision engine on it
	$(CARGO) build --locked --quiet
	./target/debug/scalewise check -f examples/checkout.yaml
	@echo "--- 4 replicas, cpu 85% (above 70): scale out by the step of 2"
	./target/debug/scalewise decide --policy examples/checkout.yaml --replicas 4 \
	  --metric cpu=85 --metric latency-p95=0.2 --metric errors=0.01 --metric backlog=300
	@echo "--- cpu unavailable while everything else is low: scale-in is blocked"
	./target/debug/scalewise decide --policy examples/checkout.yaml --replicas 4 \
	  --metric cpu=unavailable --metric latency-p95=0.05 --metric errors=0.01 --metric backlog=300

.PHONY: test
test: fmt-check lint verify-generated ## Everything CI runs: format, clippy, generated files, the whole test suite
	tests/env/run.sh $(CARGO) test --locked --all-targets --no-fail-fast

.PHONY: test-env-up
test-env-up: ## Install/build what is missing, start the test environment, print its exports (eval them)
	@tests/env/up.sh

.PHONY: test-env-down
test-env-down: ## Stop the test environment by PID and remove its data
	@tests/env/down.sh
