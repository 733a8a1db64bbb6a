# Shared helpers for ./chorus and scripts/*. Sourced, never run.
# Every step prints one progress line ("==> ..."); a failure names the log file to read.

CHORUS_ROOT=${CHORUS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# The layout `./chorus up --nodes N` generated stays active (for status, logs, reload, down)
# until `./chorus up` without --nodes or `./chorus down`; CHORUS_CONF overrides both.
CHORUS_LAYOUT_MARK=$CHORUS_ROOT/.chorus/active-layout
if [ -z "${CHORUS_CONF:-}" ]; then
  if [ -f "$CHORUS_LAYOUT_MARK" ] && [ -f "$(cat "$CHORUS_LAYOUT_MARK")" ]; then
    CHORUS_CONF=$(cat "$CHORUS_LAYOUT_MARK")
  else
    CHORUS_CONF=$CHORUS_ROOT/cluster.conf
  fi
fi
CHORUS_BUILD=${CHORUS_BUILD:-$CHORUS_ROOT/build}
CHORUS_NODE_BIN=$CHORUS_BUILD/nodes/chorus-node

if [ -t 1 ] && [ -z "${CI:-}" ]; then
  c_bold=$'\e[1m'; c_red=$'\e[31m'; c_green=$'\e[32m'; c_off=$'\e[0m'
else
  c_bold=; c_red=; c_green=; c_off=
fi

# Under `set -e` a failing command ends a script; say where, instead of ending silently.
trap 'rc=$?; printf "%schorus: %s failed at line %s: %s (exit %s)%s\n" "$c_red" "$(basename "$0")" "$LINENO" "$BASH_COMMAND" "$rc" "$c_off" >&2' ERR

say() { printf '%s==>%s %s\n' "$c_bold" "$c_off" "$*"; }
ok() { printf '    %s%s%s\n' "$c_green" "$*" "$c_off"; }
die() { printf '%schorus: %s%s\n' "$c_red" "$*" "$c_off" >&2; exit 1; }

# Runs "$@" with its output in log file $1; on failure prints the tail and names the log.
run_logged() {
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  if ! "$@" >>"$log" 2>&1; then
    echo "---- last lines of $log ----" >&2
    tail -n 25 "$log" >&2
    die "failed: $* (full log: $log)"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@" || sudo "$@"; fi
}

# Loads cluster.conf (validated by chorus-node itself) into CHORUS_* shell variables.
load_cluster() {
  [ -x "$CHORUS_NODE_BIN" ] || die "chorus-node is not built yet: run ./chorus up"
  local out
  out=$("$CHORUS_NODE_BIN" --config "$CHORUS_CONF" --describe 2>&1) || die "$out"
  eval "$out"
  CHORUS_LOGS=$CHORUS_DATA_DIR/logs
  CHORUS_RUN=$CHORUS_DATA_DIR/run
  mkdir -p "$CHORUS_LOGS" "$CHORUS_RUN"
}

node_var() { local v="CHORUS_NODE_${1//-/_}_$2"; echo "${!v}"; }

# Waits until "$@" succeeds or $1 seconds pass. Polls every 100 ms: it waits for a condition
# with a deadline, it does not sleep for a guessed time.
wait_for() {
  local secs=$1; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
