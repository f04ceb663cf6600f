#!/usr/bin/env bash
# Builds kube-apiserver from Debian's `kubernetes` source package with Debian's
# golang-go, into $SCALEWISE_CACHE/kube-apiserver/KEY/kube-apiserver.
# Usage: build-kube-apiserver.sh KEY   (KEY from kube_apiserver_key in lib.sh)
#
# - The source comes from `apt-get source`, run against a private apt state
#   (lists, cache, sources) whose deb-src entries are derived at run time from
#   the machine's configured Debian sources; system files are not touched.
# - The vendored modern-go/reflect2 v1.0.1 crashes under Go >= 1.18 at the first
#   custom-resource create (SIGSEGV in mapiterinit), so it and json-iterator/go
#   are replaced with the sources Debian ships in golang-github-modern-go-reflect2-dev
#   and golang-github-json-iterator-go-dev.
# - `make WHAT=cmd/kube-apiserver` (not `go build`: it generates the OpenAPI
#   code the tree lacks), offline: GOPROXY=off, all dependencies are vendored.
# Everything goes to stderr. About 3.5 minutes and 1.3 GB of memory on 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

key=${1:?usage: build-kube-apiserver.sh KEY}
out_dir=$SCALEWISE_CACHE/kube-apiserver/$key
command -v go >/dev/null || die "golang-go is not installed (install.sh installs it)"
command -v rsync >/dev/null || die "rsync is not installed (install.sh installs it)"
command -v dpkg-source >/dev/null || die "dpkg-dev is not installed (install.sh installs it)"

load_versions
src_version=$(kubernetes_source_version)
[[ -n $src_version ]] || die "apt knows no kubernetes source version"
# 1.20.5+really1.20.2-1.1+deb12u1 -> 1.20.2
upstream=${src_version#*:}
upstream=${upstream%-*}
upstream=${upstream##*really}

mkdir -p "$SCALEWISE_CACHE"
work=$(mktemp -d "$SCALEWISE_CACHE/.build-kube-apiserver.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
log "building kube-apiserver v$upstream from Debian source $src_version in $work (first run only, a few minutes)"

# --- 1. A private apt state with deb-src twins of the configured Debian sources.
apt_dir=$work/apt
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/sources.list"
codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
[[ -n $codename ]] || die "no VERSION_CODENAME in /etc/os-release"
eval "$(apt-config shell SOURCE_LIST Dir::Etc::SourceList/f SOURCE_PARTS Dir::Etc::SourceParts/d)"

# One-line format: "deb [options] URI SUITE COMPONENT..." -> "deb-src ...",
# keeping only suites of this release (bookworm, bookworm-updates, ...).
for f in "${SOURCE_LIST:-/etc/apt/sources.list}" "${SOURCE_PARTS:-/etc/apt/sources.list.d/}"*.list; do
  [[ -f $f ]] || continue
  awk -v c="$codename" '
    $1 == "deb" {
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      suite = $(i + 1)
      if (suite == c || index(suite, c "-") == 1 || index(suite, c "/") == 1) { sub(/^deb/, "deb-src"); print }
    }' "$f" >>"$apt_dir/sources.list"
done
# deb822 format: the same per stanza; other fields (Signed-By, ...) are kept.
n=0
for f in "${SOURCE_PARTS:-/etc/apt/sources.list.d/}"*.sources; do
  [[ -f $f ]] || continue
  n=$((n + 1))
  awk -v c="$codename" '
    BEGIN { RS = ""; ORS = "\n\n" }
    {
      nlines = split($0, line, "\n")
      types = ""; suites = ""; enabled = "yes"
      for (i = 1; i <= nlines; i++) {
        if (tolower(line[i]) ~ /^types:/) types = " " substr(line[i], 7) " "
        if (tolower(line[i]) ~ /^suites:/) suites = " " substr(line[i], 8) " "
        if (tolower(line[i]) ~ /^enabled:/) enabled = tolower(substr(line[i], 9))
      }
      gsub(/[ \t]+/, " ", types); gsub(/[ \t]+/, " ", suites); gsub(/ /, "", enabled)
      if (enabled == "no" || types !~ / deb /) next
      ok = 0
      ns = split(suites, s, " ")
      for (i = 1; i <= ns; i++) if (s[i] == c || index(s[i], c "-") == 1 || index(s[i], c "/") == 1) ok = 1
      if (!ok) next
      out = ""
      for (i = 1; i <= nlines; i++) {
        l = line[i]
        if (tolower(l) ~ /^types:/) l = "Types: deb-src"
        out = out l "\n"
      }
      printf "%s\n", out
    }' "$f" >"$apt_dir/sources.list.d/derived-$n.sources"
done
if ! grep -qs '^deb-src' "$apt_dir/sources.list" && ! grep -qs '^Types: deb-src' "$apt_dir"/sources.list.d/*.sources; then
  die "no Debian '$codename' entries in the apt sources to derive deb-src entries from"
fi

apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "APT::Get::Only-Source=true"
)
[[ $EUID -ne 0 ]] || apt_opts+=(-o APT::Sandbox::User=root)
[[ $(kube_apiserver_key) == "$key" ]] || die "key $key does not match the installed packages ($(kube_apiserver_key))"

log "fetching source indices into the private apt state"
apt-get "${apt_opts[@]}" update -q >&2
mkdir -p "$work/src"
log "apt-get source kubernetes=$src_version"
(cd "$work/src" && apt-get "${apt_opts[@]}" source -q "kubernetes=$src_version" >&2)
tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
[[ -n $tree && -f $tree/Makefile ]] || die "apt-get source left no kubernetes tree in $work/src"

# --- 2. Replace the vendored reflect2 and json-iterator with Debian's.
replace_vendored() {
  local pkg=$1 import=$2 version from to deb
  version=$(package_version "$pkg")
  mkdir -p "$work/$pkg"
  (cd "$work/$pkg" && apt-get "${apt_sandbox[@]}" download -q "$pkg=$version" >&2)
  deb=$(find "$work/$pkg" -maxdepth 1 -name '*.deb' | head -n 1)
  dpkg -x "$deb" "$work/$pkg/root"
  from=$work/$pkg/root/usr/share/gocode/src/$import
  to=$tree/vendor/$import
  [[ -d $from ]] || die "$pkg $version has no $import sources"
  [[ -d $to ]] || die "the kubernetes tree vendors no $import"
  log "vendor: $import <- $pkg $version"
  rm -rf "$to"
  mkdir -p "$to"
  (cd "$from" && find . \( -name '*.go' -o -name '*.s' -o -name LICENSE \) ! -name '*_test.go' -print0 |
    rsync -a --from0 --files-from=- ./ "$to/")
}
apt_sandbox=()
[[ $EUID -ne 0 ]] || apt_sandbox=(-o APT::Sandbox::User=root)
replace_vendored golang-github-modern-go-reflect2-dev github.com/modern-go/reflect2
replace_vendored golang-github-json-iterator-go-dev github.com/json-iterator/go

# --- 3. Build offline.
log "make WHAT=cmd/kube-apiserver (go $(go env GOVERSION))"
(
  cd "$tree"
  export GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GOTOOLCHAIN=local
  export GOCACHE=$work/gocache GOPATH=$work/gopath
  export KUBE_GIT_VERSION=v$upstream KUBE_GIT_TREE_STATE=clean
  make WHAT=cmd/kube-apiserver >&2
)
bin=$tree/_output/bin/kube-apiserver
[[ -x $bin ]] || die "the build produced no $bin"
"$bin" --version >&2

rm -rf "$out_dir"
mkdir -p "$out_dir"
cp "$bin" "$out_dir/kube-apiserver.partial"
mv "$out_dir/kube-apiserver.partial" "$out_dir/kube-apiserver"
log "cached $out_dir/kube-apiserver"
