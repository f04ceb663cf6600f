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
demo: ## The main job: scalewise scales a simulated web service through a load surge, live (about 6 minutes)
	CARGO="$(CARGO)" examples/demo/run.sh

.PHONY: test
test: fmt-check lint verify-generated ## Everything CI runs: format, clippy, generated files, the whole test suite
	tests/env/run.sh $(CARGO) test --locked --all-targets --no-fail-fast

.PHONY: test-env-up
test-env-up: ## Install/build what is missing, start the test environment, print its exports (eval them)
	@tests/env/up.sh

.PHONY: test-env-down
test-env-down: ## Stop the test environment by PID and remove its data
	@tests/env/down.sh
