#!/usr/bin/env bash
# Runs a command inside a fresh test environment and always stops it:
#
#   tests/env/run.sh cargo test --locked --all-targets
#
# The environment (see up.sh) is started once, the command runs with its
# exports, and a trap stops every server and removes the data on exit, on
# failure and on SIGINT/SIGTERM/SIGHUP, so a failing or panicking test leaves no
# process and no port behind (the servers' logs are kept in target/test-env-logs/).
# The command runs in its own session so that a signal stops all of it (cargo and
# the test binaries) before the teardown.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -gt 0 ]] || die "usage: run.sh COMMAND [ARG...]"

mkdir -p "$SCALEWISE_STATE_ROOT"
state=$(mktemp -d "$SCALEWISE_STATE_ROOT/run.XXXXXX")
printf '%s %s\n' "$$" "$(proc_starttime $$)" >"$state/owner"

child=""
# shellcheck disable=SC2317 # invoked by the traps below
teardown() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n $child ]] && proc_alive "$child"; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # (down.sh keeps the servers' logs in target/test-env-logs/.)
  "$SCALEWISE_ROOT/tests/env/down.sh" "$state" || rc=1
  exit "$rc"
}
trap_exit teardown

env_lines=$("$SCALEWISE_ROOT/tests/env/up.sh" "$state")
eval "$env_lines"

log "running: $*"
setsid "$@" &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
