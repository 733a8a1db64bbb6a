#!/usr/bin/env bash
# The journal next to pgbench (see persistence_bench.cpp): appends/s with group commit from 64
# writers vs pgbench's single-row INSERT with 64 clients on the same PostgreSQL; restore time of
# a 10,000-event stream with and without a snapshot. BENCH_ROUNDS (3) and BENCH_DURATION (5 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
load_cluster
bin=$CHORUS_BUILD/bench/persistence_bench
[ -x "$bin" ] || die "persistence_bench is not built (./chorus up builds it)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
db=chorus_bench
psql -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus -d postgres -qAtc \
  "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
  createdb -h 127.0.0.1 -p "$CHORUS_PG_PORT" -U chorus "$db"
"$bin" "postgresql://chorus@127.0.0.1:$CHORUS_PG_PORT/$db" \
  "-h 127.0.0.1 -p $CHORUS_PG_PORT -U chorus $db" "$pg_bin/pgbench" \
  "${BENCH_ROUNDS:-3}" "${BENCH_DURATION:-5}" "redis://127.0.0.1:$CHORUS_REDIS_PORT/0"
