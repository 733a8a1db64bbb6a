# Sourced by bench scripts: one extra chorus-node of its own cluster ("chorus-bench") on the dev
# cluster's PostgreSQL (a database of its own: the dev nodes would otherwise claim its durable
# reminders) and Redis, with rate limits off (they would cap wrk at 1,200 reads a
# minute). Needs $tmp (a scratch dir) and a `pids` array the caller's cleanup kills.
# Sets bench_base (its URL), bench_pid; bench_member NAME [artist] prints a session token.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_port=$(free_port)
psql -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus -d postgres -qAtc \
  "SELECT 1 FROM pg_database WHERE datname = 'chorus_benchnode'" | grep -q 1 ||
  createdb -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus chorus_benchnode
python3 - "$CHORUS_CONF" "$tmp/bench.conf" "$CHORUS_DATA_DIR" "$bench_port" \
  "$(free_port)" "$(free_port)" "$(free_port)" <<'PY'
import re, sys
src, dst, data, http, actor, ws, metrics = sys.argv[1:]
conf = open(src).read()
conf = re.sub(r'(?m)^cluster-name=.*$', 'cluster-name="chorus-bench"', conf)
conf = re.sub(r'(?m)^data-dir=.*$', 'data-dir="%s"' % data, conf)
conf = re.sub(r'(?ms)^nodes=\[.*?^\]', 'nodes=[\n  {name="b1", host="127.0.0.1", actor-port=%s, '
              'http-port=%s, ws-port=%s, metrics-port=%s, roles=["edge", "entity", "transcode"]},\n]'
              % (actor, http, ws, metrics), conf)
conf = re.sub(r'(?m)^(\w+-dsn="postgresql://[^"]*/)[^/"]+"$', r'\1chorus_benchnode"', conf)
for key in ("read-limit", "write-limit", "user-read-limit", "user-write-limit"):
    conf = re.sub(r'(?m)^%s=.*$' % key, '%s=0' % key, conf)
open(dst, 'w').write(conf)
PY
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$CHORUS_NODE_BIN" --config "$tmp/bench.conf" --node b1 >"$tmp/b1.log" 2>&1 &
bench_pid=$!
pids+=("$bench_pid")
bench_base="http://127.0.0.1:$bench_port"
wait_for 60 curl -fsS "$bench_base/readyz" || die "the bench node did not become ready (log: $(tail -5 "$tmp/b1.log"))"

# bench_member NAME [artist]: registers NAME (an artist with a second argument), prints
# "<user id> <token>".
bench_member() {
  local name=$1 id token
  id=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"$name\",\"email\":\"$name@example.org\",\"password\":\"correct horse battery\"}" \
    "$bench_base/v1/auth/register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  token=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"$name\",\"password\":\"correct horse battery\"}" "$bench_base/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  [ $# -lt 2 ] || curl -fsS -X POST -H "Authorization: Bearer $token" "$bench_base/v1/me/artist" >/dev/null
  echo "$id $token"
}

# bench_nginx ROOT TYPE: starts nginx (1 worker, sendfile) serving ROOT with TYPE as the default
# content type, the peer of the benches; sets nginx_port.
bench_nginx() {
  nginx_port=$(free_port)
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
  default_type $2;
  server { listen 127.0.0.1:$nginx_port; root $1; }
}
CONF
  nginx -p "$tmp" -c "$tmp/nginx.conf" &
  pids+=("$!")
}
