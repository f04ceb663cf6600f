#!/usr/bin/env bash
# Builds prometheus-adapter (sigs.k8s.io/prometheus-adapter, pinned with all its modules in
# tests/env/adapter/go.mod and go.sum) into the cache, keyed by its version and the Go version
# that builds it, so a warm machine never rebuilds. It serves metrics.k8s.io and
# external.metrics.k8s.io from our Prometheus for the real HPA (see up.sh). Prints the path of
# the binary on stdout.
#
# Usage: tests/env/build-adapter.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

module_dir="$SCALEWISE_ROOT/tests/env/adapter"
command -v go >/dev/null || die "go is not installed: prometheus-adapter is built with the go command"
version=$(go_mod_version "$module_dir/go.mod" sigs.k8s.io/prometheus-adapter)
[[ -n $version ]] || die "cannot read the pinned prometheus-adapter version from tests/env/adapter/go.mod"
dest="$SCALEWISE_CACHE/k8s/prometheus-adapter-${version}_$(go env GOVERSION)"
complete() { [[ -x $1/adapter ]]; }
build() {
  local start=$SECONDS
  log "building prometheus-adapter $version (about 2 minutes)"
  (cd "$module_dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
    -o "$1/adapter" sigs.k8s.io/prometheus-adapter/cmd/adapter) >&2 ||
    die "building prometheus-adapter $version failed"
  log "built prometheus-adapter $version in $((SECONDS - start)) s into $dest"
}
cache_build "$dest" complete build
printf '%s\n' "$dest/adapter"
