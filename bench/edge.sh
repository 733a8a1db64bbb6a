#!/usr/bin/env bash
# Edge benchmark, side by side in one run (see bench/README.md):
#  (a) GET /healthz and (b) GET /v1/users/{id} (entity-backed) on a bench node, each against
#      nginx with one worker serving a static file of the same bytes; wrk, 2 threads, 64
#      connections; rounds alternate between the two so that noise hits both; medians, ratio.
#  (c) 10,000 idle WebSocket connections held open on the bench node (authenticated, each
#      subscribed to its user's notifications) vs the same number held by a minimal Boost.Beast
#      event-loop server (bench/ws_bench.cpp): memory added and CPU used while idle.
# The bench node is one extra chorus-node of its own cluster ("chorus-bench") on the dev
# cluster's PostgreSQL and Redis, with rate limits off (they would cap wrk at 1,200 reads a
# minute) and the default WebSocket idle timeout (60 s: pings every 30 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
load_cluster
rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_DURATION:-5s}
ws_conns=${BENCH_WS_CONNS:-10000}
ws_hold=${BENCH_WS_HOLD:-10}
conns=64
ws_bench=$CHORUS_BUILD/bench/ws_bench
[ -x "$ws_bench" ] || die "bench/ws_bench is not built: run ./chorus up"

tmp=$(mktemp -d)
chmod 755 "$tmp"  # nginx workers run as an unprivileged user when started as root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

. "$here/bench_node.sh"
node_pid=$bench_pid
bport=$bench_port
base=$bench_base

# A user to read (b) and to hold the WebSockets (c).
read -r user_id token < <(bench_member "bench$RANDOM$RANDOM")

# ---- nginx with the same bytes ----
curl -fsS "$base/healthz" >"$tmp/healthz.json"
curl -fsS "$base/v1/users/$user_id" >"$tmp/user.json"
bench_nginx "$tmp" application/json
nport=$nginx_port
wait_for 10 curl -fsS "http://127.0.0.1:$nport/healthz.json" || die "nginx did not start (see $tmp/logs/error.log)"

# Prints "requests_per_second p99_ms".
measure() {
  wrk -t2 -c$conns -d"$duration" --latency "$1" | awk '
    /Requests\/sec:/ { rps = $2 }
    /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } p99 = v }
    END { printf "%.0f %.3f\n", rps, p99 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# side_by_side LABEL OURS_URL PEER_URL
side_by_side() {
  local label=$1 ours=$2 peer=$3
  : >"$tmp/ours"; : >"$tmp/peer"
  for r in $(seq "$rounds"); do
    measure "$ours" >>"$tmp/ours"
    measure "$peer" >>"$tmp/peer"
    printf '    round %d: chorus %s req/s, nginx %s req/s\n' "$r" "$(tail -n1 "$tmp/ours" | cut -d' ' -f1)" "$(tail -n1 "$tmp/peer" | cut -d' ' -f1)"
  done
  local o_rps p_rps o_p99 p_p99
  o_rps=$(cut -d' ' -f1 "$tmp/ours" | median); p_rps=$(cut -d' ' -f1 "$tmp/peer" | median)
  o_p99=$(cut -d' ' -f2 "$tmp/ours" | median); p_p99=$(cut -d' ' -f2 "$tmp/peer" | median)
  printf '%-40s %12s %12s %8s\n' "$label, $conns conns" "chorus" "nginx(1w)" "ratio"
  printf '%-40s %12.0f %12.0f %8.2f\n' "  median req/s ($rounds x $duration)" "$o_rps" "$p_rps" "$(echo "$o_rps / $p_rps" | bc -l)"
  printf '%-40s %12.2f %12.2f %8.2f\n' "  median p99 latency (ms)" "$o_p99" "$p_p99" "$(echo "$o_p99 / $p_p99" | bc -l)"
}

side_by_side "(a) GET /healthz" "$base/healthz" "http://127.0.0.1:$nport/healthz.json"
side_by_side "(b) GET /v1/users/{id}" "$base/v1/users/$user_id" "http://127.0.0.1:$nport/user.json"

# ---- (c) idle WebSockets ----
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# hold_on PID PORT [TOKEN TOPIC]: prints "rss_added_mb cpu_percent held"
hold_on() {
  local pid=$1 port=$2; shift 2
  local before after t0 t1 out="$tmp/hold.$port"
  before=$(rss_kb "$pid")
  "$ws_bench" hold "$port" "$ws_conns" "$ws_hold" "$@" >"$out" 2>&1 &
  local hold_pid=$!
  wait_for 300 grep -q '^open' "$out" || die "the connections did not open: $(cat "$out")"
  grep -q "^open $ws_conns failed 0" "$out" || die "not every connection opened: $(cat "$out")"
  t0=$(cpu_ticks "$pid"); local s0=$SECONDS
  wait "$hold_pid" || true
  t1=$(cpu_ticks "$pid"); local secs=$((SECONDS - s0))
  after=$(rss_kb "$pid")
  local held; held=$(awk '/^held/ { print $2 }' "$out")
  awk -v a="$after" -v b="$before" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v s="$secs" -v h="$held" \
    'BEGIN { if (s < 1) s = 1; printf "%d %.1f %d\n", (a - b) / 1024, (t1 - t0) * 100 / hz / s, h }'
}
pport=$(free_port)
"$ws_bench" serve "$pport" >"$tmp/peer.log" 2>&1 &
peer_pid=$!
pids+=("$peer_pid")
wait_for 10 grep -q serving "$tmp/peer.log" || die "ws_bench serve did not start"
read -r o_mb o_cpu o_held < <(hold_on "$node_pid" "$bport" "$token" "users/$user_id/notifications")
read -r p_mb p_cpu p_held < <(hold_on "$peer_pid" "$pport")
printf '%-40s %12s %12s %8s\n' "(c) $ws_conns idle WebSockets, ${ws_hold}s" "chorus" "beast(min)" "ratio"
printf '%-40s %12d %12d %8.2f\n' "  memory added (MB)" "$o_mb" "$p_mb" "$(awk -v o="$o_mb" -v p="$p_mb" 'BEGIN { print o / (p > 0 ? p : 1) }')"
printf '%-40s %12.1f %12.1f %8s\n' "  CPU while idle (% of one core)" "$o_cpu" "$p_cpu" "-"
printf '%-40s %12d %12d %8s\n' "  still open at the end" "$o_held" "$p_held" "-"
