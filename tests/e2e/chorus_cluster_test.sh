#!/usr/bin/env bash
# e2e: the cluster that `./chorus up` (or `./chorus test`) started, seen the way an operator sees
# it: `./chorus status --json`, the HTTP probes and the metrics endpoints of cluster.conf; then
# `./chorus up --nodes 4` and back. It leaves the cluster as cluster.conf describes it.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CHORUS_ROOT=$root
. "$root/scripts/lib.sh"
load_cluster
passed=0; failed=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $what" >&2; fi
}

json=$("$root/chorus" status --json) || { echo "chorus status --json failed" >&2; exit 1; }
count=$(wc -w <<<"$CHORUS_NODES")
check "status lists every node of cluster.conf" [ "$(jq '.nodes | length' <<<"$json")" = "$count" ]
for n in $CHORUS_NODES; do
  node=$(jq -c --arg n "$n" '.nodes[] | select(.name == $n)' <<<"$json")
  check "$n is up" [ "$(jq -r .state <<<"$node")" = up ]
  check "$n sees $((count - 1)) peers" [ "$(jq -r .peers_up <<<"$node")" = $((count - 1)) ]
  check "$n has a pid" [ "$(jq -r '.pid | type' <<<"$node")" = number ]
  url="http://$(node_var "$n" HOST):$(node_var "$n" HTTP)"
  check "$n /healthz answers 200" curl -fsS -o /dev/null "$url/healthz"
  check "$n /readyz answers 200" curl -fsS -o /dev/null "$url/readyz"
  metrics="http://$(node_var "$n" HOST):$(node_var "$n" METRICS)/metrics"
  check "$n metrics pass promtool" bash -c "curl -fsS '$metrics' | promtool check metrics"
done
text=$("$root/chorus" status)
check "status prints one line per node" [ "$(wc -l <<<"$text")" = "$count" ]

# A developer's bigger cluster: `up --nodes 4`, then back to cluster.conf with `up`.
if "$root/chorus" up --nodes 4 >/dev/null 2>&1; then
  json=$("$root/chorus" status --json)
  check "up --nodes 4 runs 4 nodes" [ "$(jq '[.nodes[] | select(.state == "up")] | length' <<<"$json")" = 4 ]
  check "each of the 4 sees 3 peers" [ "$(jq '[.nodes[] | select(.peers_up == 3)] | length' <<<"$json")" = 4 ]
else
  check "up --nodes 4 succeeds" false
fi
"$root/chorus" up >/dev/null 2>&1
json=$("$root/chorus" status --json)
check "up without --nodes returns to cluster.conf's $count nodes" \
  [ "$(jq '[.nodes[] | select(.state == "up" and .peers_up == '"$((count - 1))"')] | length' <<<"$json")" = "$count" ]
check "the 4th node is stopped" bash -c "! curl -fsS -m 1 http://127.0.0.1:8083/healthz >/dev/null 2>&1"
check "--nodes refuses a non-number" bash -c "! '$root/chorus' up --nodes many >/dev/null 2>&1"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
