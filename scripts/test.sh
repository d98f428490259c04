#!/usr/bin/env bash
# Run the whole test suite: typecheck, unit tests, integration tests against a real Docker
# engine and Compose, end-to-end tests with a real udevd and loop-mounted sticks, the device
# test (the .deb on a Debian 12 system container with systemd as PID 1, test/device), and the
# engine matrix (scripts/engine-matrix.sh). Starts dockerd itself when none answers, and
# stops what it started.
#
#   bash scripts/test.sh              the suite in lanes side by side (below)
#   bash scripts/test.sh ARGS...      stage 1 as ONE serial mocha run with ARGS added
#                                     (e.g. --grep 'rolls back', --bail), then stage 2
#
# Lanes (docs/testing.md, "Lanes"): the test files wait far more than they compute (health
# windows, container starts), so after the build (made while npm ci's native modules compile,
# the typecheck beside them) these run at the same time, each writing its own log under
# test-results/lanes/:
#   the dockerd restart test, on a debian12-dind engine of its own that it restarts (never
#            this machine's engine);
#   lane 1   the unit tests (with no engine to reach), then about half of the integration
#            files on this machine's engine, then the device test;
#   lane 2   the other integration files and the end-to-end tests, on an engine of its own
#            (debian12-dind: the same Debian 12 engine and Compose v1 in docker-in-docker);
#   stage 2  the suites where engines differ (compose, images, e2e: Compose v2, the image
#            store, the agent end to end) again on Docker 28 with the containerd image store;
#            the pipeline and crash logic is the unit tests' (fake engine) and runs on this
#            machine's engine and debian12-dind already (scripts/engine-matrix.sh runs them all).
# Each lane has an engine to itself because an import checks that no other tag on the engine
# moved, and a rollback puts back tags that appeared since: two files importing on one engine
# at once would see each other's tags. CAISSON_TEST_LANES=N (default 2) spreads the
# integration and end-to-end files over N lanes, lanes 2..N on debian12-dind engines of their own.
# CAISSON_ENGINE_MATRIX=0 skips stage 2 (a list of with-engine.sh names picks its engines).
set -uo pipefail
cd "$(dirname "$0")/.."

cat >&2 <<'NOTE'
caisson tests: unit, integration (real Docker engine and Compose), end-to-end (real udevd, loop
sticks, headless chromium), device (the .deb under systemd) and the engine matrix (the compose,
image and end-to-end suites again on Docker 28 with the containerd image store;
CAISSON_ENGINE_MATRIX=0 skips it), in lanes side by side: about 10 minutes on two idle cores
(docs/testing.md), more the first time (npm ci; device images and engine root filesystems are
built with debootstrap).
One test (test/integration/docker-restart.test.ts) restarts a Docker engine: a docker-in-docker
engine of its own, never this machine's. The suite removes the containers, images, networks
and volumes it creates, and nothing else.
NOTE

now() { date +%s; }
t_start=$(now)
started=$(bash scripts/ensure-docker.sh 3>&1 >&2) || exit 1
udevd_pid=
cleanup() {
  [ -z "$udevd_pid" ] || kill "$udevd_pid" 2>/dev/null
  [ "$started" != started ] || bash scripts/stop-docker.sh
}
trap cleanup EXIT

mocha=(npx mocha --exit --reporter test/support/reporter.cjs)
engines=${CAISSON_ENGINE_MATRIX:-docker28-containerd}
[ "$engines" = 1 ] && engines=docker28-containerd
read -ra matrix_engines <<<"$engines"
out=test-results/lanes
if [ $# -eq 0 ]; then
  rm -rf "$out"
  mkdir -p "$out/deb"
  # what the lanes need from apt and debootstrap, made while npm ci compiles (one core): the
  # browser, then the root filesystems of the lanes' engines (cached after the first time)
  (
    bash scripts/ensure-browser.sh &&
      bash scripts/with-engine.sh debian12-dind --provision &&
      for e in "${matrix_engines[@]}"; do [ "$engines" = 0 ] || bash scripts/with-engine.sh "$e" --provision || exit 1; done
  ) >"$out/engines.log" 2>&1 &
  engines_pid=$!
fi

# npm ci; in the lanes' run its native modules (better-sqlite3: one C file of sqlite, about a
# minute on one core) compile in the background while the build and the typecheck, which need
# only the JavaScript packages, use the other core
t_npm_start=$(now)
rebuild_pid=
if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ $# -gt 0 ]; then
    npm ci --no-audit --no-fund || exit 1
  else
    npm ci --no-audit --no-fund --ignore-scripts || exit 1
    ( npm rebuild >"$out/npm-rebuild.log" 2>&1; echo $? >"$out/npm-rebuild.status" ) &
    rebuild_pid=$!
  fi
fi
t0=$(now)
npm run --silent build || exit 1
t_build=$(( $(now) - t0 ))

# --- with arguments: stage 1 as one serial mocha run, as it always was --------------------
if [ $# -gt 0 ]; then
  bash scripts/ensure-browser.sh || exit 1
  npx tsc -p tsconfig.test.json --noEmit || exit 1
  s0=$(now)
  "${mocha[@]}" 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts' 'test/device/**/*.test.ts' "$@"
  rc=$?
  echo "caisson tests: stage 1 took $(( $(now) - s0 )) s" >&2
  if [ "$engines" != 0 ]; then
    SUITES="compose images e2e" CAISSON_MATRIX_PARALLEL=1 CAISSON_MATRIX_NO_BUILD=1 bash scripts/engine-matrix.sh "${matrix_engines[@]}" || rc=1
  fi
  exit $rc
fi

# the typecheck (no engine), beside the compile and then the lanes
run_typecheck() {
  local s0=$(now)
  npx tsc -p tsconfig.test.json --noEmit >"$out/typecheck.log" 2>&1
  echo "$? $(( $(now) - s0 ))" >"$out/typecheck.status"
}
run_typecheck &
typecheck_pid=$!
if [ -n "$rebuild_pid" ]; then
  wait "$rebuild_pid"
  [ "$(cat "$out/npm-rebuild.status")" = 0 ] || { cat "$out/npm-rebuild.log" >&2; echo "caisson tests: npm rebuild (the native modules) failed" >&2; exit 1; }
fi
t_npm=$(( $(now) - t_npm_start - t_build ))

# --- the .deb for the device test, packed in the background ---------------------------------
# no rebuild of dist/ (the lanes run from it); lane 1 waits for it only before the device
# test; uncompressed: xz would spend ~150 s of CPU on a file that never leaves this machine
(
  CAISSON_DEB_NO_BUILD=1 CAISSON_DEB_COMPRESSION=none bash scripts/package-deb.sh "$out/deb"
  echo $? >"$out/deb.status"
) >"$out/deb.log" 2>&1 &

# one udevd for every lane (the end-to-end files and stage 2's start one only when none
# answers, and stop the one they started: side by side, one would stop another's)
if ! udevadm control --ping --timeout=2 >/dev/null 2>&1; then
  /lib/systemd/systemd-udevd >"$out/udevd.log" 2>&1 &
  udevd_pid=$!
  for _ in $(seq 1 50); do udevadm control --ping --timeout=1 >/dev/null 2>&1 && break; sleep 0.1; done
fi

wait $engines_pid || { cat "$out/engines.log" >&2; echo "caisson tests: installing chromium or building an engine's root filesystem failed" >&2; exit 1; }

# --- the lanes --------------------------------------------------------------------------------
# Seconds each file took in its lane (a fresh-clone run on 2 cores, every lane busy); files not
# listed count 10.
weight() {
  case "$1" in
    unit) echo 106 ;;
    test/device/deb.test.ts) echo 93 ;; # its .deb is built before the lanes
    test/integration/stack.test.ts) echo 80 ;;
    test/integration/runtime/compose-driver.test.ts) echo 70 ;;
    test/integration/runtime/docker-driver.test.ts) echo 57 ;;
    test/e2e/agent-usb.test.ts) echo 54 ;;
    test/integration/pipeline.test.ts) echo 53 ;;
    test/e2e/web-page.test.ts) echo 46 ;;
    test/integration/demo-first-contact.test.ts) echo 39 ;;
    test/integration/crash-recovery.test.ts) echo 28 ;;
    test/integration/signatures-policy.test.ts) echo 24 ;;
    test/integration/encryption.test.ts) echo 22 ;;
    test/integration/lock-and-secrets.test.ts) echo 20 ;;
    test/integration/memory.test.ts) echo 20 ;;
    test/integration/cross-engine.test.ts) echo 14 ;;
    test/integration/health/wait.test.ts) echo 12 ;;
    test/integration/freshness-targeting.test.ts) echo 12 ;;
    test/integration/hostile-cli.test.ts) echo 12 ;;
    test/e2e/agent-hostile-stick.test.ts) echo 10 ;;
    test/integration/package/stack-builder.test.ts) echo 7 ;;
    test/integration/cli-first-contact.test.ts) echo 6 ;;
    test/integration/agent-start.test.ts) echo 6 ;;
    test/integration/multi-platform.test.ts) echo 6 ;;
    test/integration/runtime/docker-client.test.ts) echo 5 ;;
    test/integration/image-import.test.ts | test/integration/web-cli.test.ts | test/e2e/udev-mount.test.ts) echo 4 ;;
    test/integration/package/builder.test.ts) echo 2 ;;
    *) echo 10 ;;
  esac
}
nlanes=${CAISSON_TEST_LANES:-2}
[ "$nlanes" -ge 2 ] 2>/dev/null || { echo "caisson tests: CAISSON_TEST_LANES must be 2 or more" >&2; exit 2; }
declare -a load files
# lane 1: the unit tests and the device test (its agent uses this machine's engine through
# the engine's socket); the last lane: every end-to-end file (one udevd, loop devices: one
# after the other)
load[0]=$(( $(weight unit) + $(weight test/device/deb.test.ts) ))
files[0]= # the unit tests come first and the device test last, in mocha runs of their own (run_lane)
e2e=$(ls test/e2e/*.test.ts)
last=$(( nlanes - 1 ))
load[last]=0
files[last]=
for f in $e2e; do load[last]=$(( load[last] + $(weight "$f") )); files[last]="${files[last]} $f"; done
for ((i = 1; i < last; i++)); do load[i]=0; files[i]=; done
# the integration files, longest first, each to the lane with the least so far
integration=$(find test/integration -name '*.test.ts' ! -name docker-restart.test.ts | sort)
for f in $(for f in $integration; do echo "$(weight "$f") $f"; done | sort -k1,1rn -k2 | cut -d' ' -f2); do
  best=0
  for ((i = 1; i < nlanes; i++)); do [ "${load[i]}" -lt "${load[best]}" ] && best=$i; done
  load[best]=$(( load[best] + $(weight "$f") ))
  files[best]="${files[best]} $f"
done

# lane N: mocha over its files, against this machine's engine (lane 1) or an engine of its own
run_lane() {
  local n=$1 s0 rc
  s0=$(now)
  set -f # the unit tests' glob is mocha's to expand
  # shellcheck disable=SC2086
  if [ "$n" = 1 ]; then
    # the unit tests with no engine to reach: a unit test that needs one fails here
    DOCKER_HOST=unix:///nonexistent/docker.sock CAISSON_DOCKER_SOCKET=/nonexistent/docker.sock \
      "${mocha[@]}" 'test/unit/**/*.test.ts' >"$out/unit.log" 2>&1
    echo "$? $(( $(now) - s0 ))" >"$out/unit.status"
    s0=$(now)
    "${mocha[@]}" ${files[0]} >"$out/lane1.log" 2>&1
    rc=$?
    echo "$rc $(( $(now) - s0 ))" >"$out/lane1.status"
    # then the device test, once its .deb is there
    s0=$(now)
    while [ ! -f "$out/deb.status" ]; do sleep 1; done
    if [ "$(cat "$out/deb.status")" = 0 ]; then
      # (package-deb.sh prints the .deb's path last; no glob: set -f above)
      CAISSON_DEVICE_DEB=$(tail -n 1 "$out/deb.log") "${mocha[@]}" test/device/deb.test.ts >"$out/device.log" 2>&1
      rc=$?
    else
      { echo "packing the .deb failed:"; cat "$out/deb.log"; } >"$out/device.log"
      rc=1
    fi
    echo "$rc $(( $(now) - s0 ))" >"$out/device.status"
    return
  else
    # (its cross-engine test would also import on this machine's engine, lane 1's: left out)
    CAISSON_CROSS_ENGINE_HOST=0 bash scripts/with-engine.sh debian12-dind -- "${mocha[@]}" ${files[n - 1]} >"$out/lane$n.log" 2>&1
  fi
  rc=$?
  echo "$rc $(( $(now) - s0 ))" >"$out/lane$n.status"
}

# stage 2 beside the lanes: its engines publish ports in this machine's network namespace
# too, so its files take theirs 1000 higher; its cross-engine test leaves this machine's
# engine out (lane 1 imports there) and pairs Docker 28 with a debian12-dind engine instead
run_stage2() {
  local s0 rc
  s0=$(now)
  CAISSON_TEST_PORT_OFFSET=1000 CAISSON_CROSS_ENGINE_HOST=0 CAISSON_MATRIX_PEER=debian12-dind \
    SUITES="compose images e2e" CAISSON_MATRIX_PARALLEL=1 CAISSON_MATRIX_NO_BUILD=1 \
    bash scripts/engine-matrix.sh "${matrix_engines[@]}" >"$out/stage2.log" 2>&1
  rc=$?
  echo "$rc $(( $(now) - s0 ))" >"$out/stage2.status"
}

# the dockerd restart test beside the lanes, on a debian12-dind engine of its own that it may
# restart (CAISSON_ENGINE_RESTARTABLE: this machine's engine, and the other lanes' engines on
# it, are never restarted)
run_restart() {
  local s0=$(now)
  CAISSON_ENGINE_RESTARTABLE=1 bash scripts/with-engine.sh debian12-dind -- "${mocha[@]}" test/integration/docker-restart.test.ts >"$out/restart.log" 2>&1
  echo "$? $(( $(now) - s0 ))" >"$out/restart.status"
}

t0=$(now)
pids=($typecheck_pid)
run_restart &
pids+=($!)
for ((n = 1; n <= nlanes; n++)); do
  echo "caisson tests: lane $n (about ${load[n - 1]} s serially):$([ "$n" = 1 ] && echo " the unit tests (no engine)")${files[n - 1]}$([ "$n" = 1 ] && echo " test/device/deb.test.ts")" >&2
  run_lane "$n" &
  pids+=($!)
done
if [ "$engines" != 0 ]; then
  echo "caisson tests: stage 2, the engine matrix on ${matrix_engines[*]}" >&2
  run_stage2 &
  pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done
t_lanes=$(( $(now) - t0 ))

# --- what each lane says --------------------------------------------------------------------
read -r typecheck_rc t_typecheck <"$out/typecheck.status"
[ "$typecheck_rc" = 0 ] || cat "$out/typecheck.log" >&2 # (the summary says it failed)
node scripts/test-summary.mjs "$out" "$t_npm" "$t_build" "$t_typecheck" "$t_lanes" "$(( $(now) - t_start ))"
