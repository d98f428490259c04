#!/usr/bin/env bash
# npm run bench: measure Caisson against openssl/sha256sum and the raw docker path.
#   BENCH_SIZES=10,200      package sizes in MiB (default 10,200,1024; 0 for none)
#   BENCH_STACK_MB=200      the stack case: 3 services with this many MiB of images (0 skips it)
#   BENCH_DIR=/var/tmp/...  work folder (packages, state); needs ~5x the largest size free
# Compiles the agent into a private folder (so a half-edited tree elsewhere is not used
# mid-run), then runs bench/run.ts. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh >/dev/null
if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  npm ci --no-audit --no-fund
fi
out=.tmp/bench-dist
rm -rf "$out"
npx tsc -p tsconfig.json --outDir "$out"
cp package.json "$out/package.json" # agent/version.ts finds the updater version next to the build
echo "[bench] load average: $(cut -d' ' -f1-3 /proc/loadavg); free: $(df -h --output=avail "${BENCH_DIR:-/var/tmp}" | tail -1 | tr -d ' ')" >&2
CAISSON_BENCH_CLI="$PWD/$out/agent/cli/main.js" exec npx tsx bench/run.ts "$@"
