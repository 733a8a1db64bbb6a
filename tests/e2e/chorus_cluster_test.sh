#!/usr/bin/env bash
# e2e: the cluster that `./chorus up` (or `./chorus test`) started, seen the way an operator sees
# it: `./chorus status --json`, the HTTP probes and the metrics endpoints of cluster.conf.
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
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
