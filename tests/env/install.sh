#!/usr/bin/env bash
# Makes sure everything the test environment runs is present, installing only
# what is missing, so that it is quick and offline when everything is there:
#   - Debian packages: prometheus, victoria-metrics, curl, openssl, and
#     kubernetes-client when no kubectl is installed;
#   - etcd from etcd-server, downloaded and unpacked into the cache (no service);
#   - kube-apiserver built from Debian's kubernetes source (build-kube-apiserver.sh),
#     which needs golang-go, rsync and dpkg-dev, installed only for that build.
# With SCALEWISE_E2E_CLUSTER=1 etcd and kube-apiserver are not needed.
# `apt-get update` runs at most once, and only when something is missing.
#
# Progress goes to stderr. Stdout gets eval-able lines naming the binaries:
#   ETCD_BIN=...  KUBE_APISERVER_BIN=...   (empty with SCALEWISE_E2E_CLUSTER=1)
#   KUBECTL_DIR=...                         (with SCALEWISE_K8S_VERSION=1.37: its kubectl's directory)
#   ADAPTER_BIN=...                         (with SCALEWISE_K8S_VERSION=1.37: prometheus-adapter)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$SCALEWISE_CACHE"
# One installer at a time per cache (parallel `make test` runs).
exec 9>"$SCALEWISE_CACHE/.install.lock"
flock 9

# Another apt-get or dpkg may hold the package database: wait for it (up to
# 10 minutes) rather than fail.
apt_updated=0
apt_update_once() {
  if [[ $apt_updated == 0 ]]; then
    log "apt-get update"
    as_root apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt_updated=1
    load_versions
  fi
}

apt_install() {
  [[ $# -gt 0 ]] || return 0
  apt_update_once
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
    install -y -q --no-install-recommends "$@" </dev/null >&2
  load_versions
}

missing_packages() {
  local p
  for p in "$@"; do
    [[ -n $(installed_version "$p") ]] || printf '%s\n' "$p"
  done
}

# Downloads a package's .deb (no install) and unpacks it into DEST/root.
download_unpack() {
  local pkg=$1 version=$2 dest=$3 tmp
  local -a sandbox=()
  [[ $EUID -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
  tmp=$(mktemp -d "$SCALEWISE_CACHE/.download.XXXXXX")
  log "downloading $pkg $version"
  (cd "$tmp" && apt-get "${sandbox[@]}" download -q "$pkg=$version" >&2)
  dpkg -x "$tmp"/*.deb "$tmp/root"
  rm -f "$tmp"/*.deb
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp" "$dest"
}

load_versions

# 1. Packages every mode needs.
mapfile -t wanted < <(missing_packages prometheus victoria-metrics curl)
command -v kubectl >/dev/null 2>&1 || wanted+=(kubernetes-client)

if e2e_cluster; then
  apt_install "${wanted[@]}"
  log "SCALEWISE_E2E_CLUSTER=1: using your cluster, no etcd or kube-apiserver needed"
  printf 'ETCD_BIN=\nKUBE_APISERVER_BIN=\n'
  exit 0
fi
mapfile -t more < <(missing_packages openssl)
wanted+=("${more[@]}")

# Kubernetes 1.37 from its Go modules (tests/env/build-k8s.sh), the default; the Debian-built
# 1.20 with SCALEWISE_K8S_VERSION=1.20.
if [[ ${SCALEWISE_K8S_VERSION:-1.37} == 1.37 ]]; then
  apt_install "${wanted[@]}"
  k8s_dir=$("$SCALEWISE_ROOT/tests/env/build-k8s.sh")
  adapter_bin=$("$SCALEWISE_ROOT/tests/env/build-adapter.sh")
  printf 'ETCD_BIN=%q\nKUBE_APISERVER_BIN=%q\nKUBECTL_DIR=%q\nADAPTER_BIN=%q\n' \
    "$k8s_dir/etcd" "$k8s_dir/kube-apiserver" "$k8s_dir" "$adapter_bin"
  exit 0
fi
[[ $SCALEWISE_K8S_VERSION == 1.20 ]] ||
  die "SCALEWISE_K8S_VERSION=$SCALEWISE_K8S_VERSION: the test environment has 1.37 (from its Go modules, the default) and 1.20 (built from Debian's source)"

# 2. Versions decide the cache keys; without package lists apt knows none.
if [[ -z $(candidate_version etcd-server) ]] || ! kube_apiserver_key >/dev/null; then
  apt_update_once
  [[ -n $(candidate_version etcd-server) ]] ||
    die "apt knows no etcd-server package; is a Debian bookworm archive configured?"
  kube_apiserver_key >/dev/null ||
    die "apt does not know kubernetes-client, golang-go, golang-github-modern-go-reflect2-dev or golang-github-json-iterator-go-dev"
fi
if [[ ! -x $(kube_apiserver_bin_for "$(kube_apiserver_key)") ]]; then
  mapfile -t more < <(missing_packages golang-go rsync dpkg-dev)
  wanted+=("${more[@]}")
fi

# 3. Install, download, build: only what is missing.
apt_install "${wanted[@]}"

etcd_version=$(candidate_version etcd-server)
etcd_bin=$(etcd_bin_for "$etcd_version")
if [[ ! -x $etcd_bin ]]; then
  apt_update_once
  etcd_version=$(candidate_version etcd-server)
  etcd_bin=$(etcd_bin_for "$etcd_version")
  download_unpack etcd-server "$etcd_version" "$SCALEWISE_CACHE/etcd-server/$(path_key "$etcd_version")"
  [[ -x $etcd_bin ]] || die "etcd-server $etcd_version has no usr/bin/etcd"
fi

# Installing golang-go may have changed its version, hence the key.
apiserver_key=$(kube_apiserver_key)
apiserver_bin=$(kube_apiserver_bin_for "$apiserver_key")
if [[ ! -x $apiserver_bin ]]; then
  apt_update_once
  "$SCALEWISE_ROOT/tests/env/build-kube-apiserver.sh" "$apiserver_key"
fi
[[ -x $apiserver_bin ]] || die "no kube-apiserver at $apiserver_bin"
printf 'ETCD_BIN=%q\nKUBE_APISERVER_BIN=%q\n' "$etcd_bin" "$apiserver_bin"
