#!/usr/bin/env bash
# The entity runtime next to raw CAF (see runtime_bench.cpp): router overhead on one node and
# across two processes, cold activation latency, memory per idle entity.
# BENCH_ROUNDS (default 3) and BENCH_ENTITIES (default 1000000) size the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"
bin=$CHORUS_BUILD/bench/runtime_bench
[ -x "$bin" ] || die "runtime_bench is not built (./chorus up builds it)"
"$bin" "${BENCH_ROUNDS:-3}" "${BENCH_ENTITIES:-1000000}"
