#!/usr/bin/env bash
# Run the whole test suite: typecheck, unit tests, integration tests against a real Docker
# engine and Compose, end-to-end tests with a real udevd and loop-mounted sticks, and the
# device test (the .deb on a Debian 12 system container with systemd as PID 1, test/device).
# Starts dockerd itself when none answers, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

cat >&2 <<'NOTE'
caisson tests, in two stages:
  1. unit, integration (real Docker engine and Compose), end-to-end (real udevd, loop sticks,
     headless chromium) and device tests (the .deb under systemd): about 23 minutes on two
     cores, more the first time (the device images are built with debootstrap);
  2. the engine matrix: the pipeline, compose, crash, image and end-to-end suites again on
     Docker 28 with the containerd image store (scripts/engine-matrix.sh, two engines side
     by side): about 5 minutes, 5 more the first time. CAISSON_ENGINE_MATRIX=0 skips it.
One test (test/integration/docker-restart.test.ts) restarts the Docker engine: every container
on it stops with it, so run this where nothing else needs the engine. The suite removes the
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
stage_start=$(date +%s)
npx mocha --exit --reporter test/support/reporter.cjs 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts' 'test/device/**/*.test.ts' "$@"
echo "caisson tests: stage 1 took $(( $(date +%s) - stage_start )) s" >&2

# Second stage: the engine-sensitive suites against the engines devices run in the field
# (scripts/engine-matrix.sh; default docker28-containerd, or a list of with-engine.sh names;
# 0 skips it). It rewrites the compatibility table in docs/runtime.md.
engines=${CAISSON_ENGINE_MATRIX:-docker28-containerd}
case "$engines" in
  0) ;;
  1) SUITES="pipeline compose crash images e2e" CAISSON_MATRIX_PARALLEL=2 CAISSON_MATRIX_NO_BUILD=1 bash scripts/engine-matrix.sh docker28-containerd ;;
  *) read -ra matrix_engines <<<"$engines"; SUITES="pipeline compose crash images e2e" CAISSON_MATRIX_PARALLEL=2 CAISSON_MATRIX_NO_BUILD=1 bash scripts/engine-matrix.sh "${matrix_engines[@]}" ;;
esac
