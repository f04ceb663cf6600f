#!/usr/bin/env bash
# Builds KEDA's operator and metrics server (github.com/kedacore/keda/v2, pinned with all its
# modules in tests/env/keda/go.mod and go.sum) into the cache, keyed by its version and the Go
# version that builds it, with KEDA's CRDs from the same module. Only `make bench-hpa` uses it
# (never `make test`). Prints the directory on stdout.
#
# Usage: tests/env/build-keda.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

module_dir="$SCALEWISE_ROOT/tests/env/keda"
command -v go >/dev/null || die "go is not installed: KEDA is built with the go command"
version=$(go_mod_version "$module_dir/go.mod" github.com/kedacore/keda/v2)
[[ -n $version ]] || die "cannot read the pinned KEDA version from tests/env/keda/go.mod"
dest="$SCALEWISE_CACHE/k8s/keda-${version}_$(go env GOVERSION)"
complete() { [[ -x $1/keda-operator && -x $1/keda-adapter && -s $1/crds.yaml && -s $1/operator-role.yaml ]]; }
build() {
  local work=$1 start=$SECONDS keda_dir generated=$module_dir/generated/adapter crd
  log "building KEDA $version (operator and metrics server; about 7 minutes the first time)"
  # The module's files must be in the (fresh) module cache before `go list` can name them.
  keda_dir=$(cd "$module_dir" && go mod download github.com/kedacore/keda/v2 &&
    go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2) ||
    die "cannot find the KEDA module's files"
  # One change to KEDA's metrics server: its own /metrics listener binds ":<port>", every
  # interface, with no flag to choose the address; here it binds 127.0.0.1, as every server of
  # the test environment does. Its main package (public packages only) is rebuilt from the
  # module's cmd/adapter/main.go with that one line changed, in a package of this module
  # generated for the build (git-ignored, removed after it); the rest of KEDA is the module as
  # published.
  rm -rf "$module_dir/generated"
  mkdir -p "$generated"
  sed 's/fmt.Sprintf(":%v", metricsAPIServerPort)/fmt.Sprintf("127.0.0.1:%v", metricsAPIServerPort)/' \
    "$keda_dir/cmd/adapter/main.go" >"$generated/main.go"
  grep -q '"127.0.0.1:%v", metricsAPIServerPort' "$generated/main.go" ||
    die "KEDA $version's cmd/adapter/main.go no longer binds its metrics listener as expected: review tests/env/build-keda.sh"
  (cd "$module_dir" && export CGO_ENABLED=0 GOFLAGS=-mod=readonly &&
    go build -trimpath -ldflags "-s -w" -o "$work/keda-operator" github.com/kedacore/keda/v2/cmd/operator &&
    go build -trimpath -ldflags "-s -w" -o "$work/keda-adapter" ./generated/adapter) >&2 ||
    die "building KEDA $version failed"
  rm -rf "$module_dir/generated"
  cp "$keda_dir/config/rbac/role.yaml" "$work/operator-role.yaml"
  for crd in "$keda_dir"/config/crd/bases/*.yaml; do
    printf -- '---\n' && cat "$crd"
  done >"$work/crds.yaml"
  log "built KEDA $version in $((SECONDS - start)) s into $dest"
}
cache_build "$dest" complete build
printf '%s\n' "$dest"
