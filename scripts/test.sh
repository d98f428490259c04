#!/usr/bin/env bash
# Run the whole test suite: typecheck, unit tests, integration tests against a real Docker
# engine and Compose, end-to-end tests with a real udevd and loop-mounted sticks, and the
# device test (the .deb on a Debian 12 system container with systemd as PID 1, test/device).
# Starts dockerd itself when none answers, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

cat >&2 <<'NOTE'
caisson tests: the whole suite takes about 20 minutes on two cores. One test
(test/integration/docker-restart.test.ts) restarts the Docker engine: every container on it
stops with it, so run this where nothing else needs the engine. The suite removes the
containers, images and volumes it creates.
NOTE

started=$(bash scripts/ensure-docker.sh 3>&1 >&2)
if [ "$started" = started ]; then trap 'bash scripts/stop-docker.sh' EXIT; fi

if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
bash scripts/ensure-browser.sh
npx tsc -p tsconfig.test.json --noEmit
npx mocha --reporter test/support/reporter.cjs 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts' 'test/device/**/*.test.ts' "$@"

# Second stage (CI): the engine-sensitive suites against the engines devices run in the field
# (scripts/engine-matrix.sh; CAISSON_ENGINE_MATRIX=1 for docker28-containerd, or a list of
# with-engine.sh names). It rewrites the compatibility table in docs/runtime.md.
case "${CAISSON_ENGINE_MATRIX:-}" in
  ''|0) ;;
  1) bash scripts/engine-matrix.sh docker28-containerd ;;
  *) read -ra matrix_engines <<<"$CAISSON_ENGINE_MATRIX"; bash scripts/engine-matrix.sh "${matrix_engines[@]}" ;;
esac
