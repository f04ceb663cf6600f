# shellcheck shell=bash
# Shared helpers for the scalewise test environment scripts (sourced, not run).
#
# Conventions: progress and errors go to stderr; stdout is reserved for the
# eval-able `export` lines printed by up.sh.

set -euo pipefail

SCALEWISE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Everything built or downloaded once lives here, keyed by Debian package versions.
SCALEWISE_CACHE=${SCALEWISE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/scalewise}
# Per-environment state (PIDs, configs, data) lives under here and is removed by down.sh.
SCALEWISE_STATE_ROOT=${SCALEWISE_STATE_ROOT:-$SCALEWISE_ROOT/.test-env}

# Serialises up.sh and down.sh (two `make test-env-up` at once would otherwise
# share one state directory). Children of a holder inherit the lock.
lock_state_root() {
  [[ ${SCALEWISE_TEST_ENV_LOCKED:-0} != 1 ]] || return 0
  mkdir -p "$SCALEWISE_STATE_ROOT"
  exec 8>"$SCALEWISE_STATE_ROOT/.lock"
  flock 8
  export SCALEWISE_TEST_ENV_LOCKED=1
}

# Scripts that source this for its helpers (the demo, the benchmarks) set their own prefix.
LOG_PREFIX=${LOG_PREFIX:-test-env}
log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$LOG_PREFIX" "$*" >&2
  exit 1
}

# Runs FUNCTION when the script exits, also on SIGINT, SIGTERM and SIGHUP (which exit with 130,
# 143 and 129, as a shell killed by them would).
trap_exit() {
  # shellcheck disable=SC2064 # the function's name is known now
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# Polls CMD... every 0.2 s (its output discarded) for up to TIMEOUT seconds; dies naming WHAT.
# Usage: wait_for TIMEOUT WHAT CMD...
wait_for() {
  local timeout=$1 what=$2 i
  shift 2
  for ((i = 0; i < timeout * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${timeout}s waiting for $what"
}

# The version go.mod FILE requires of MODULE (in a require block or on a require line).
go_mod_version() {
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { print ($1 == m ? $2 : $3); exit }' "$1"
}

# Builds into the cache once: when DEST is not complete (COMPLETE DIR fails), runs BUILD WORK
# with a fresh WORK directory beside DEST, checks it is complete and moves it to DEST, so that a
# failed or interrupted build leaves nothing that looks done. Go's build and module caches for
# the build live in a scratch directory removed with it: the binaries are what is kept, and a
# Kubernetes build leaves gigabytes there that nothing reads again (a full disk fails the tests).
# Usage: cache_build DEST COMPLETE BUILD
cache_build() {
  local dest=$1 complete=$2 build=$3 work scratch
  "$complete" "$dest" && return 0
  mkdir -p "$(dirname "$dest")"
  work=$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")
  scratch=$(mktemp -d "$(dirname "$dest")/.go.XXXXXX")
  # The module cache is read-only: make it writable to remove it.
  # shellcheck disable=SC2064 # the directories are known now
  trap "chmod -R u+w '$scratch' 2>/dev/null; rm -rf '$work' '$scratch'" EXIT
  (export GOCACHE=$scratch/build GOMODCACHE=$scratch/mod && "$build" "$work")
  "$complete" "$work" || die "the build left out something expected in $work"
  rm -rf "$dest"
  mv -T "$work" "$dest"
  chmod -R u+w "$scratch" && rm -rf "$scratch"
  trap - EXIT
}

# True when the end-to-end tests target a cluster the user provides.
e2e_cluster() { [[ ${SCALEWISE_E2E_CLUSTER:-0} == 1 ]]; }

# Runs a command as root: directly when we are root, else through `sudo -n`.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

# Package versions, looked up once per process (apt-cache is slow when the
# system keeps no package cache): VERSION_INSTALLED[pkg], VERSION_CANDIDATE[pkg].
declare -A VERSION_INSTALLED=() VERSION_CANDIDATE=()
VERSION_PACKAGES=(etcd-server kubernetes-client golang-go
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  prometheus victoria-metrics curl openssl rsync dpkg-dev)
load_versions() {
  local pkg status version
  VERSION_INSTALLED=() VERSION_CANDIDATE=()
  while read -r pkg status version; do
    [[ $status != installed ]] || VERSION_INSTALLED[${pkg%%:*}]=$version
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status} ${Version}\n' "${VERSION_PACKAGES[@]}" 2>/dev/null || true)
  while read -r pkg version; do
    VERSION_CANDIDATE[$pkg]=$version
  done < <(apt-cache policy "${VERSION_PACKAGES[@]}" 2>/dev/null |
    awk '/^[^ ]/ { sub(/:$/, ""); p = $0 } $1 == "Candidate:" && $2 != "(none)" { print p, $2 }' || true)
}

# The installed version of a Debian package, or nothing.
installed_version() { printf '%s\n' "${VERSION_INSTALLED[$1]:-}"; }

# The version apt would install now, or nothing when apt does not know it.
candidate_version() { printf '%s\n' "${VERSION_CANDIDATE[$1]:-}"; }

# Installed version if installed, else candidate version.
package_version() { printf '%s\n' "${VERSION_INSTALLED[$1]:-${VERSION_CANDIDATE[$1]:-}}"; }

# Turns a Debian version into something safe as one path component.
path_key() { printf '%s\n' "$1" | tr ':~/' '___'; }

# The etcd binary extracted from etcd-server for a given package version.
etcd_bin_for() { printf '%s/etcd-server/%s/root/usr/bin/etcd\n' "$SCALEWISE_CACHE" "$(path_key "$1")"; }

# The version of the `kubernetes` source package: that of its binary package
# kubernetes-client without a binNMU suffix (+bN).
kubernetes_source_version() {
  local v
  v=$(package_version kubernetes-client)
  printf '%s\n' "${v%+b[0-9]*}"
}

# The cache key of the kube-apiserver build: every Debian package that goes into it.
kube_apiserver_key() {
  local k g r j
  k=$(kubernetes_source_version)
  g=$(package_version golang-go)
  r=$(package_version golang-github-modern-go-reflect2-dev)
  j=$(package_version golang-github-json-iterator-go-dev)
  [[ -n $k && -n $g && -n $r && -n $j ]] || return 1
  path_key "kubernetes-${k}_golang-${g}_reflect2-${r}_jsoniter-${j}"
}

kube_apiserver_bin_for() { printf '%s/kube-apiserver/%s/kube-apiserver\n' "$SCALEWISE_CACHE" "$1"; }

# Ports somebody listens on, from /proc (no ss/netstat needed).
listening_ports() {
  local _sl addr _rem st _rest
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    while read -r _sl addr _rem st _rest; do
      if [[ $st == 0A ]]; then printf '%d\n' "$((16#${addr##*:}))"; fi
    done | sort -un
}

# Picks a TCP port nobody listens on and stores it in the variable named $1.
# Ports come from below the kernel's ephemeral range, so they do not collide
# with outgoing connections; ports this shell handed out before are avoided.
SCALEWISE_TAKEN_PORTS=" "
free_port() {
  local busy port i
  busy=" $(listening_ports | tr '\n' ' ') "
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    if [[ $busy != *" $port "* && $SCALEWISE_TAKEN_PORTS != *" $port "* ]]; then
      SCALEWISE_TAKEN_PORTS+="$port "
      printf -v "$1" '%s' "$port"
      return 0
    fi
  done
  die "no free TCP port found"
}

# Process start time (clock ticks since boot), to recognise a PID later
# even if the number was reused.
proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # Field 22, counted after the ")" that closes the command name.
  stat=${stat##*) }
  awk '{ print $20 }' <<<"$stat"
}

# True when the PID runs and is not a zombie.
proc_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# Starts a server detached from our stdio and session, records "pid starttime"
# in $STATE/<name>.pid. Usage: start_server NAME LOGFILE CMD...
start_server() {
  local name=$1 logfile=$2
  shift 2
  # Without our lock descriptors: a server must not hold the state lock.
  setsid "$@" </dev/null >"$logfile" 2>&1 8>&- 9>&- &
  local pid=$!
  local st=""
  st=$(proc_starttime "$pid") || true
  printf '%s %s\n' "$pid" "$st" >"$STATE/$name.pid"
  printf '%s\n' "$pid"
}

# Stops the servers recorded in pid files ("pid starttime"): SIGTERM to all,
# wait, SIGKILL after a grace period, wait until every process is gone. A PID
# whose start time no longer matches belongs to someone else and is left alone.
stop_pidfiles() {
  local pidfile name pid st cur i
  local -a pids=() starts=() names=() files=()
  for pidfile in "$@"; do
    [[ -f $pidfile ]] || continue
    name=$(basename "$pidfile" .pid)
    pid="" st=""
    read -r pid st <"$pidfile" || true
    cur=""
    [[ -z $pid ]] || cur=$(proc_starttime "$pid") || cur=""
    if [[ -n $cur && $cur == "${st:-$cur}" ]] && proc_alive "$pid"; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid") starts+=("$cur") names+=("$name")
    fi
    files+=("$pidfile")
  done
  any_alive() {
    local k
    for k in "${!pids[@]}"; do
      if proc_alive "${pids[$k]}"; then return 0; fi
    done
    return 1
  }
  for ((i = 0; i < 150; i++)); do
    any_alive || break
    sleep 0.1
  done
  local k
  for k in "${!pids[@]}"; do
    if proc_alive "${pids[$k]}"; then
      log "${names[$k]} did not stop in 15 s, killing it"
      kill -KILL "${pids[$k]}" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 100; i++)); do
    any_alive || break
    sleep 0.1
  done
  for k in "${!pids[@]}"; do
    ! proc_alive "${pids[$k]}" || die "${names[$k]} (pid ${pids[$k]}) is still running"
  done
  # All exited. Their parent is gone, so init reaps them; wait briefly for that
  # too, so that no <defunct> entry is left in the process table either.
  for ((i = 0; i < 100; i++)); do
    local waiting=0
    for k in "${!pids[@]}"; do
      [[ $(proc_starttime "${pids[$k]}" 2>/dev/null) != "${starts[$k]}" ]] || waiting=1
    done
    [[ $waiting == 1 ]] || break
    sleep 0.05
  done
  [[ ${#files[@]} -eq 0 ]] || rm -f "${files[@]}"
}

# Waits until a command succeeds while the server PID stays alive.
# Usage: wait_until NAME PID TIMEOUT_SECONDS LOGFILE CMD...
wait_until() {
  local name=$1 pid=$2 timeout=$3 logfile=$4 i
  shift 4
  for ((i = 0; i < timeout * 10; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! proc_alive "$pid"; then
      log "$name exited during start-up; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "$name not ready after ${timeout} s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2 || true
  return 1
}
