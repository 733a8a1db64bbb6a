#!/usr/bin/env bash
# Chat benchmark (issue 7), side by side in one run (see bench/README.md): one public room with
# BENCH_CHAT_MEMBERS members (5,000) on WebSockets spread over a 3-node bench cluster, one
# message every BENCH_CHAT_INTERVAL_MS (100 ms) for BENCH_CHAT_SECONDS (60 s), against Redis
# PUBLISH to as many subscribers of one channel on a redis-server of its own. Latency is taken
# per (member, message) from the send time in the payload (system clock, same machine).
# BENCH_ROUNDS rounds (1 by default), alternating which side goes first; medians over rounds.
# Goals: p50 < 20 ms, p99 < 100 ms, every message delivered to every member.
# BENCH_CHAT_SET="key=value ..." changes keys of the bench cluster's config for an experiment.
#
# The bench cluster ("chorus-chatbench", nodes c1..c3) runs on the dev PostgreSQL (a database
# of its own, chorus_chatbench) and Redis, on free ports, with rate limits off and a chat
# message limit that lets one poster post 10 a second. Its accounts (password hashing makes
# 5,000 registrations take minutes) are cached with their tokens in
# $CHORUS_DATA_DIR/bench/chat_members.tsv, keyed by the database's oid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
load_cluster
members=${BENCH_CHAT_MEMBERS:-5000}
seconds=${BENCH_CHAT_SECONDS:-60}
interval=${BENCH_CHAT_INTERVAL_MS:-100}
rounds=${BENCH_ROUNDS:-1}
chat_bench=${CHAT_BENCH_BIN:-$CHORUS_BUILD/bench/chat_bench}
[ -x "$chat_bench" ] || die "bench/chat_bench is not built: run ./chorus up"
db=chorus_chatbench
cache_dir=$CHORUS_DATA_DIR/bench

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# 5,000 WebSockets per side: the nodes, redis-server and chat_bench need the descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the chorus side: a 3-node cluster of its own ----
pg() { psql -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus -d postgres -qAtc "$1"; }
[ -n "$(pg "SELECT 1 FROM pg_database WHERE datname = '$db'")" ] ||
  createdb -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus "$db"
db_key="$db-$(pg "SELECT oid FROM pg_database WHERE datname = '$db'")"
names=(c1 c2 c3)
http_ports=()
node_args=()
for n in "${names[@]}"; do
  p=$(free_port)
  http_ports+=("$p")
  node_args+=("$n" "$(free_port)" "$p" "$(free_port)" "$(free_port)")
done
python3 - "$CHORUS_CONF" "$tmp/chat.conf" "$CHORUS_DATA_DIR" "$db" "${BENCH_CHAT_SET:-}" "${node_args[@]}" <<'PY'
import re, sys
src, dst, data, db, extra = sys.argv[1:6]
nodes = sys.argv[6:]
conf = open(src).read()
conf = re.sub(r'(?m)^cluster-name=.*$', 'cluster-name="chorus-chatbench"', conf)
conf = re.sub(r'(?m)^data-dir=.*$', 'data-dir="%s"' % data, conf)
entries = ''.join('  {name="%s", host="127.0.0.1", actor-port=%s, http-port=%s, ws-port=%s, '
                  'metrics-port=%s, roles=["edge", "entity", "transcode"]},\n' % tuple(nodes[i:i + 5])
                  for i in range(0, len(nodes), 5))
conf = re.sub(r'(?ms)^nodes=\[.*?^\]', 'nodes=[\n%s]' % entries, conf)
conf = re.sub(r'(?m)^(\w+-dsn="postgresql://[^"]*/)[^/"]+"$', r'\1%s"' % db, conf)
for key in ("read-limit", "write-limit", "user-read-limit", "user-write-limit"):
    conf = re.sub(r'(?m)^%s=.*$' % key, '%s=0' % key, conf)
# One poster posts every 100 ms: the per-member chat limit (10 per 10 s) would refuse it.
conf = re.sub(r'(?m)^message-limit=.*$', 'message-limit=100000', conf)
conf = re.sub(r'(?m)^message-window=.*$', 'message-window=1h', conf)
# Experiments: BENCH_CHAT_SET="key=value ..." replaces keys of cluster.conf (e.g.
# ws-session-check=600s); a key that is not there is an error.
for kv in extra.split():
    key, value = kv.split('=', 1)
    conf, n = re.subn(r'(?m)^%s=.*$' % re.escape(key), lambda _: '%s=%s' % (key, value), conf)
    if n == 0:
        sys.exit('BENCH_CHAT_SET: no key %s in %s' % (key, src))
open(dst, 'w').write(conf)
PY
grep -q '^message-limit=100000' "$tmp/chat.conf" || die "no [chorus.social] message-limit in $CHORUS_CONF"
node_pids=()
for n in "${names[@]}"; do
  "$CHORUS_NODE_BIN" --config "$tmp/chat.conf" --node "$n" >"$tmp/$n.out" 2>&1 &
  pids+=("$!")
  node_pids+=("$!")
done
for i in 0 1 2; do
  wait_for 60 curl -fsS "http://127.0.0.1:${http_ports[$i]}/readyz" ||
    die "bench node ${names[$i]} did not become ready (log: $CHORUS_LOGS/${names[$i]}.log)"
done
ports=$(IFS=,; echo "${http_ports[*]}")
ok "bench cluster up: ${names[*]} on HTTP ports $ports (logs: $CHORUS_LOGS/c1.log ...)"

# Accounts: the poster (0) and the members, registered once per database. The registration
# limit (10 per address and hour, kept in Redis under the cluster's name) outlives a dropped
# database: this cluster's counters are cleared so that a fresh database can register again.
mkdir -p "$cache_dir"
redis-cli -h 127.0.0.1 -p "$CHORUS_REDIS_PORT" --scan --pattern 'chorus:rl:chorus-chatbench:register:*' |
  xargs -r redis-cli -h 127.0.0.1 -p "$CHORUS_REDIS_PORT" del >/dev/null
say "accounts: $((members + 1)) (cached in $cache_dir/chat_members.tsv)"
"$chat_bench" accounts "$cache_dir/chat_members.tsv" "$db_key" "$((members + 1))" "$ports" |
  sed 's/^/    /' || die "could not make the accounts"
room=$("$chat_bench" room "$cache_dir/chat_members.tsv" "$ports" "$members" | awk '/^room/ { print $2 }') || true
[ -n "$room" ] || die "could not make the room"
ok "room $room with $members members"

# ---- the peer: redis-server of its own ----
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --maxclients $((members + 100)) >"$tmp/redis.log" 2>&1 &
pids+=("$!")
redis_pid=$!
wait_for 10 redis-cli -p "$rport" ping || die "redis-server did not start: $(tail -3 "$tmp/redis.log")"

# ---- rounds ----
# CPU seconds (user + system) the server processes used, summed.
cpu_s() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
side() {
  local out t0 t1
  if [ "$1" = chorus ]; then
    t0=$(cpu_s "${node_pids[@]}")
    out=$("$chat_bench" chorus "$cache_dir/chat_members.tsv" "$ports" "$room" "$members" "$seconds" "$interval") || true
    t1=$(cpu_s "${node_pids[@]}")
  else
    t0=$(cpu_s "$redis_pid")
    out=$("$chat_bench" redis "$rport" "$members" "$seconds" "$interval") || true
    t1=$(cpu_s "$redis_pid")
  fi
  echo "$out" | grep '^result' | sed "s/\$/ server_cpu_s=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz }')/" >>"$tmp/$1" ||
    die "$1 round failed: $out"
  echo "    $(tail -n1 "$tmp/$1" | cut -d' ' -f2-)"
}
: >"$tmp/chorus"; : >"$tmp/redis"
say "$rounds round(s): $members members, one message every $interval ms for $seconds s"
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then side chorus; side redis; else side redis; side chorus; fi
done

# ---- medians, ratios, verdict ----
field() { grep -o " $2=[^ ]*" "$tmp/$1" | cut -d= -f2; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m() { field "$1" "$2" | median; }
delivered_pct() { awk -v d="$(field "$1" delivered | paste -sd+ | bc)" -v e="$(field "$1" expected | paste -sd+ | bc)" 'BEGIN { printf "%.4f", 100 * d / e }'; }
o50=$(m chorus p50_ms); p50=$(m redis p50_ms)
o99=$(m chorus p99_ms); p99=$(m redis p99_ms)
omax=$(m chorus max_ms); pmax=$(m redis max_ms)
odel=$(delivered_pct chorus); pdel=$(delivered_pct redis)
ratio() { awk -v o="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%.2f", o / p; else printf "-" }'; }
printf '%-44s %12s %12s %8s\n' "chat: $members members, ${interval} ms x ${seconds} s, $rounds round(s)" chorus redis ratio
printf '%-44s %12.2f %12.2f %8s\n' "  median p50 latency (ms)" "$o50" "$p50" "$(ratio "$o50" "$p50")"
printf '%-44s %12.2f %12.2f %8s\n' "  median p99 latency (ms)" "$o99" "$p99" "$(ratio "$o99" "$p99")"
printf '%-44s %12.2f %12.2f %8s\n' "  median max latency (ms)" "$omax" "$pmax" "$(ratio "$omax" "$pmax")"
ofirst=$(m chorus first_p50_ms); pfirst=$(m redis first_p50_ms)
printf '%-44s %12.2f %12.2f %8s\n' "  median first delivery of a message (ms)" "$ofirst" "$pfirst" "$(ratio "$ofirst" "$pfirst")"
printf '%-44s %11s%% %11s%% %8s\n' "  delivered / expected (all rounds)" "$odel" "$pdel" "-"
ocpu=$(m chorus server_cpu_s); pcpu=$(m redis server_cpu_s)
occpu=$(m chorus client_cpu_s); pccpu=$(m redis client_cpu_s)
printf '%-44s %12.1f %12.1f %8s\n' "  median server CPU s per round (all nodes)" "$ocpu" "$pcpu" "$(ratio "$ocpu" "$pcpu")"
printf '%-44s %12.1f %12.1f %8s\n' "  median client CPU s per round (chat_bench)" "$occpu" "$pccpu" "$(ratio "$occpu" "$pccpu")"
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
echo "  goal p50 < 20 ms: $(verdict "$o50 < 20"); p99 < 100 ms: $(verdict "$o99 < 100"); every message to every member: $(verdict "$odel == 100")"
