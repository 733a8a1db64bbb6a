#!/usr/bin/env bash
# The OpenAPI document passes @redocly/cli's recommended rules with no error and no warning
# (http_edge/.redocly.lint-ignore.yaml lists the one deliberate exception and why).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
redocly=$root/.chorus/tools/node_modules/.bin/redocly
[ -x "$redocly" ] || { echo "redocly is not installed (scripts/bootstrap installs it)"; exit 1; }
cd "$root/http_edge"
out=$(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$redocly" lint openapi.json 2>&1) || {
  echo "$out"; exit 1; }
if echo "$out" | grep -Eq "You have [0-9]+ warning"; then echo "$out"; exit 1; fi
echo "$out" | grep -q "Your API description is valid" || { echo "$out"; exit 1; }
echo "openapi.json: valid, no warnings"
