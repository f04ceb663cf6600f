#!/usr/bin/env bash
# Stops a test environment started by up.sh, by the PIDs it recorded (waiting
# for each process to exit), and removes its temporary data.
#
#   tests/env/down.sh              the default environment (make test-env-down),
#                                  plus environments of `make test` runs whose
#                                  owner died without cleaning up (SIGKILL)
#   tests/env/down.sh STATE_DIR    that environment
#   tests/env/down.sh --one PIDFILE   one server (used by up.sh on retries)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lock_state_root

if [[ ${1:-} == --one ]]; then
  stop_pidfiles "$2"
  exit 0
fi

stop_env() {
  local state=$1
  [[ -d $state ]] || return 0
  # The API server's clients (KWOK, the scheduler, the controller-manager, prometheus-adapter)
  # first, so that it has no watch left to drain; then the API server, before its etcd; the
  # rest together.
  stop_pidfiles "$state/kwok.pid" "$state/kube-scheduler.pid" "$state/kube-controller-manager.pid" \
    "$state/prometheus-adapter.pid"
  stop_pidfiles "$state/kube-apiserver.pid"
  stop_pidfiles "$state"/*.pid
  # The servers' logs stay in target/test-env-logs/ (the last environment stopped), for a look
  # afterwards; not the audit log, which is data (and up to 400 MB).
  local logs=$SCALEWISE_ROOT/target/test-env-logs f
  if compgen -G "$state/*.log" >/dev/null; then
    rm -rf "$logs" && mkdir -p "$logs"
    for f in "$state"/*.log; do
      [[ $(basename "$f") == audit.log ]] || cp "$f" "$logs"/
    done
  fi
  rm -rf "$state"
  log "stopped and removed $state; its servers' logs are in $logs"
}

if [[ $# -gt 0 ]]; then
  stop_env "$1"
  exit 0
fi

stop_env "$SCALEWISE_STATE_ROOT/default"
for state in "$SCALEWISE_STATE_ROOT"/run.*; do
  [[ -d $state ]] || continue
  owner="" owner_start=""
  read -r owner owner_start <"$state/owner" 2>/dev/null || true
  if [[ -n $owner ]] && proc_alive "$owner" && [[ $(proc_starttime "$owner") == "$owner_start" ]]; then
    continue # a `make test` is still using it
  fi
  stop_env "$state"
done
