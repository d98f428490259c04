#!/usr/bin/env bash
# Set up Caisson on a fresh Debian 12 machine (as root): system packages (Docker engine,
# Compose, busybox-static, udev), a running dockerd, the npm dependencies, the compiled
# agent, and `caisson` on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh

if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "caisson: installing npm dependencies (better-sqlite3 compiles from source, ~2 min)" >&2
  npm ci --no-audit --no-fund
fi
npm run --silent build
if ! command -v caisson >/dev/null 2>&1 || [ "$(readlink -f "$(command -v caisson)")" != "$(readlink -f dist/agent/cli/main.js)" ]; then
  npm link --no-audit --no-fund >/dev/null 2>&1 || npm link
fi
echo "caisson: set up; $(caisson --version) at $(command -v caisson)" >&2
