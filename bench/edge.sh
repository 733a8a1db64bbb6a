#!/usr/bin/env bash
# Edge baseline: GET /healthz of node n1 (cpp-httplib) vs nginx with one worker serving a static
# JSON file of the same bytes. wrk, 2 threads, 64 connections; rounds alternate between the two
# so that noise on this shared machine hits both; medians and the ratio are printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
load_cluster
rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_DURATION:-5s}
conns=64

tmp=$(mktemp -d)
chmod 755 "$tmp"  # nginx workers run as an unprivileged user when started as root
nginx_pid=
cleanup() { [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

ours="http://$(node_var n1 HOST):$(node_var n1 HTTP)/healthz"
body=$(curl -fsS "$ours")
printf '%s' "$body" >"$tmp/healthz.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/logs"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  default_type application/json;
  server { listen 127.0.0.1:$port; root $tmp; }
}
CONF
nginx -p "$tmp" -c "$tmp/nginx.conf" &
nginx_pid=$!
peer="http://127.0.0.1:$port/healthz.json"
wait_for 10 curl -fsS "$peer" || die "nginx did not start (see $tmp/logs/error.log)"

# Prints "requests_per_second p99_ms".
measure() {
  wrk -t2 -c$conns -d"$duration" --latency "$1" | awk '
    /Requests\/sec:/ { rps = $2 }
    /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } p99 = v }
    END { printf "%.0f %.3f\n", rps, p99 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$tmp/ours"; : >"$tmp/peer"
for r in $(seq "$rounds"); do
  measure "$ours" >>"$tmp/ours"
  measure "$peer" >>"$tmp/peer"
  printf '    round %d: chorus %s req/s, nginx %s req/s\n' "$r" "$(tail -n1 "$tmp/ours" | cut -d' ' -f1)" "$(tail -n1 "$tmp/peer" | cut -d' ' -f1)"
done
o_rps=$(cut -d' ' -f1 "$tmp/ours" | median); p_rps=$(cut -d' ' -f1 "$tmp/peer" | median)
o_p99=$(cut -d' ' -f2 "$tmp/ours" | median); p_p99=$(cut -d' ' -f2 "$tmp/peer" | median)
printf '%-34s %12s %12s %8s\n' "edge GET /healthz, $conns conns" "chorus" "nginx(1w)" "ratio"
printf '%-34s %12.0f %12.0f %8.2f\n' "  median req/s ($rounds x $duration)" "$o_rps" "$p_rps" "$(echo "$o_rps / $p_rps" | bc -l)"
printf '%-34s %12.2f %12.2f %8.2f\n' "  median p99 latency (ms)" "$o_p99" "$p_p99" "$(echo "$o_p99 / $p_p99" | bc -l)"
