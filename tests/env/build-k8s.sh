#!/usr/bin/env bash
# Builds a current Kubernetes for the test environment from its own Go modules, into the cache:
#
# - kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of the release pinned in
#   tests/env/k8s/go.mod (k8s.io/kubernetes with every staging module replaced by the matching
#   k8s.io/* module, all pinned in go.sum);
# - etcd and etcdctl of the release pinned in tests/env/etcd/go.mod;
# - kwok (fake nodes that run pods without containers) of tests/env/kwok/go.mod.
#
# The cache directory is keyed by the pinned versions and the Go version that builds them, so a
# warm machine never rebuilds, and a new pin or a new Go builds once. Modules come from the Go
# module proxy (GOFLAGS=-mod=readonly: go.sum must already hold every one of them). Prints the
# directory holding the binaries on stdout.
#
# Usage: tests/env/build-k8s.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_dir="$SCALEWISE_ROOT/tests/env"
command -v go >/dev/null || die "go is not installed: the current-Kubernetes environment is built with the go command"


k8s_version=$(go_mod_version "$env_dir/k8s/go.mod" k8s.io/kubernetes)
etcd_version=$(go_mod_version "$env_dir/etcd/go.mod" go.etcd.io/etcd/server/v3)
kwok_version=$(go_mod_version "$env_dir/kwok/go.mod" sigs.k8s.io/kwok)
[[ -n $k8s_version && -n $etcd_version && -n $kwok_version ]] ||
  die "cannot read the pinned versions from tests/env/{k8s,etcd,kwok}/go.mod"
go_version=$(go env GOVERSION)
dest="$SCALEWISE_CACHE/k8s/kubernetes-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}_${go_version}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl kwok)
# KWOK's own stages, from its module: nodes initialised at once and kept Ready by their Lease,
# pods Running and Ready at once, completed and deleted as a kubelet would.
kwok_stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x $1/$b ]] || return 1; done
  [[ -s $1/kwok-stages.yaml ]]
}
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# What `kubectl version` and /version report, as the release's own build sets them.
minor=${k8s_version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() {
  local work=$1 start=$SECONDS kwok_dir stage
  log "building Kubernetes $k8s_version (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) with $go_version; the first build takes a while"
  (cd "$env_dir/k8s" && go build -trimpath -ldflags "$ldflags" -o "$work/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl) >&2 || die "building Kubernetes $k8s_version failed"
  log "building etcd $etcd_version"
  (cd "$env_dir/etcd" && go build -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3 &&
    go build -trimpath -ldflags "-s -w" -o "$work/etcdctl" go.etcd.io/etcd/etcdctl/v3) >&2 ||
    die "building etcd $etcd_version failed"
  log "building kwok $kwok_version"
  (cd "$env_dir/kwok" && go build -trimpath -ldflags "-s -w" -o "$work/kwok" sigs.k8s.io/kwok/cmd/kwok) >&2 ||
    die "building kwok $kwok_version failed"
  kwok_dir=$(cd "$env_dir/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) ||
    die "cannot find the kwok module's files"
  for stage in "${kwok_stages[@]}"; do
    [[ -f $kwok_dir/kustomize/stage/$stage ]] || die "kwok $kwok_version has no stage $stage"
    printf -- '---\n' && cat "$kwok_dir/kustomize/stage/$stage"
  done >"$work/kwok-stages.yaml"
  log "built Kubernetes $k8s_version, etcd $etcd_version and kwok $kwok_version in $((SECONDS - start)) s into $dest"
}
cache_build "$dest" complete build
printf '%s\n' "$dest"
