#!/usr/bin/env bash
# Set up Caisson and run a demo update end to end against the real Docker engine:
# a service "web" runs version 1.0.0; a vendor package brings 1.1.0 (committed, its downtime
# measured); a broken 1.2.0 is rolled back automatically; then a stack package brings web and
# a second service "api" to 2.0.0 together, all or nothing. Everything lives under
# /var/lib/caisson-demo and stays there for trying the README's commands.
#   bash scripts/demo.sh          set up, prepare the demo device, run the updates (under a minute after setup)
#   bash scripts/demo.sh --clean  remove everything the demo created (containers, images, volume, state)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --clean ]; then
  bash scripts/demo-clean.sh
  echo "removed the demo's containers, images, volume and /var/lib/caisson-demo"
  exit 0
fi

bash scripts/setup.sh
bash scripts/demo-setup.sh

demo=/var/lib/caisson-demo
port=18080
api_port=18081
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# the one line that points a bare `caisson` at the demo's catalog, state and keys
env_line="export CAISSON_SERVICES=$demo/services.toml CAISSON_STATE_DIR=$demo/state CAISSON_TRUSTED_KEYS=$demo/trusted-keys"
eval "$env_line"

say "Every command below runs with: $env_line"

say "caisson service list"
caisson service list

say "caisson package validate $demo/packages/web-1.1.0.edgepkg"
caisson package validate "$demo/packages/web-1.1.0.edgepkg"

say "caisson package load --yes $demo/packages/web-1.1.0.edgepkg (the service's downtime is measured)"
rm -f "$demo/downtime"
DOWNTIME_OUT="$demo/downtime" npx --no-install tsx scripts/downtime.ts "http://127.0.0.1:$port/version" -- \
  caisson package load --yes "$demo/packages/web-1.1.0.edgepkg"
downtime=$(cat "$demo/downtime")
echo "service answers: $(curl -fsS "http://127.0.0.1:$port/version")"

say "caisson package load --yes $demo/packages/web-1.2.0.edgepkg (a broken version: expect an automatic rollback, exit 3)"
set +e
caisson package load --yes "$demo/packages/web-1.2.0.edgepkg"
rc=$?
set -e
echo "exit code $rc"
echo "service answers: $(curl -fsS "http://127.0.0.1:$port/version")"

say "caisson package load --yes $demo/packages/shop-2.0.0.edgepkg (a stack: web and api to 2.0.0 together, all or nothing)"
caisson package load --yes "$demo/packages/shop-2.0.0.edgepkg"
echo "services answer: web $(curl -fsS "http://127.0.0.1:$port/version"), api $(curl -fsS "http://127.0.0.1:$api_port/version")"

say "caisson history list"
caisson history list

version=$(curl -fsS "http://127.0.0.1:$port/version")
api_version=$(curl -fsS "http://127.0.0.1:$api_port/version")
short_downtime=$(awk -v d="$downtime" 'BEGIN { print (d < 2) ? "yes" : "no" }')
if [ "$version" = 2.0.0 ] && [ "$api_version" = 2.0.0 ] && [ "$rc" = 3 ] && [ "$short_downtime" = yes ]; then
  say "Demo done: 1.1.0 committed with $downtime s of downtime, 1.2.0 rolled back, stack shop 2.0.0 committed: web and api answer $version"
  echo "Try the README's commands with the demo's catalog and state: $env_line"
  echo "Clean up with: bash scripts/demo.sh --clean"
else
  say "Demo FAILED: web answers '$version', api '$api_version' (both must be 2.0.0), rollback exit code $rc, downtime $downtime s (must be under 2 s)"
  exit 1
fi
