#!/usr/bin/env bash
# npm run test:device: the Debian package on a Debian 12 system container with systemd as
# PID 1 (test/device). Builds the .deb and, when the engine lacks it, the device base image
# (debootstrap, needs the Debian mirror once). scripts/test.sh runs it with the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(bash scripts/ensure-docker.sh 3>&1 >&2)
if [ "$started" = started ]; then trap 'bash scripts/stop-docker.sh' EXIT; fi

if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
npx mocha --reporter test/support/reporter.cjs 'test/device/**/*.test.ts' "$@"
