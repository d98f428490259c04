#!/usr/bin/env bash
# Run the engine-sensitive suites against each engine (scripts/with-engine.sh) and write the
# compatibility table in docs/runtime.md from the results.
#
#   scripts/engine-matrix.sh [ENGINE...]        default: docker28-containerd docker28
#
# ENGINE is a with-engine.sh name (debian12, docker28, docker28-containerd). SUITES (space
# separated, default "pipeline compose docker crash images e2e restart") picks the suites;
# their files are listed below (`restart` restarts the engine under test, so it runs on the
# docker-in-docker engines only). All suites of one engine run against one engine session,
# one after the other. CAISSON_MATRIX_PEER=NAME starts engine NAME beside each engine under
# test (with-engine.sh inside with-engine.sh), so the cross-engine test of the `images` suite
# also builds on one and loads on the other, both ways. Set CAISSON_ENGINE_LOCK to a lock file
# to hold it (flock) around each engine session when others share this machine's engine.
# Results: test-results/engines/<engine>.json (suites not run again are kept); the table in
# docs/runtime.md is rewritten; provisioning and suite durations are printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
out=test-results/engines
mkdir -p "$out"

files_of() {
  case "$1" in
    pipeline) echo test/integration/pipeline.test.ts ;;
    compose)
      # engines with Compose v2 also take a project Compose v1 started (needs both Composes)
      if [ "$2" = debian12 ]; then echo test/integration/runtime/compose-driver.test.ts
      else echo test/integration/runtime/compose-driver.test.ts test/engines/compose-v1-to-v2.test.ts; fi ;;
    docker) echo test/integration/runtime/docker-driver.test.ts test/integration/runtime/docker-client.test.ts ;;
    crash) echo test/integration/crash-recovery.test.ts ;;
    images) echo test/integration/image-import.test.ts test/integration/multi-platform.test.ts test/integration/cross-engine.test.ts ;;
    e2e) echo test/e2e/agent-usb.test.ts ;;
    restart)
      if [ "$2" = debian12 ]; then echo "engine-matrix: restart would restart this machine's engine; it runs on docker-in-docker engines only" >&2; return 1; fi
      echo test/integration/docker-restart.test.ts ;;
    *) echo "engine-matrix: unknown suite $1" >&2; return 1 ;;
  esac
}

now() { date +%s; }

# --- inside one engine session (with-engine.sh runs this) ---------------------------------
if [ "${1:-}" = --inside ]; then
  engine=$2
  provision=$3
  suites=${SUITES:-pipeline compose docker crash images e2e restart}
  echo "engine-matrix: $engine: $suites" >&2
  info=$(
    docker version -f '{{.Server.Version}}'
    docker info -f '{{range .DriverStatus}}{{index . 0}}={{index . 1}};{{end}}'
    docker compose version --short 2>/dev/null || docker-compose version --short 2>/dev/null || echo none
  )
  results="[]"
  status=0
  for suite in $suites; do
    files=$(files_of "$suite" "$engine") || { status=1; continue; }
    report=$out/$engine-$suite.mocha.json
    rm -f "$report"
    s0=$(now)
    # shellcheck disable=SC2086
    npx mocha --exit --reporter json --reporter-option "output=$report" $files >"$out/$engine-$suite.log" 2>&1
    rc=$?
    secs=$(( $(now) - s0 ))
    [ $rc = 0 ] || status=1
    echo "engine-matrix: $engine $suite: exit $rc in ${secs}s" >&2
    results=$(node -e '
      const [results, suite, files, report, rc, secs] = process.argv.slice(1);
      let stats = { passes: 0, failures: 0, tests: 0 };
      try { stats = JSON.parse(require("fs").readFileSync(report, "utf8")).stats; } catch {}
      const list = JSON.parse(results);
      const peer = process.env.CAISSON_PEER_ENGINE;
      list.push({ suite, ...(peer && suite === "images" ? { peer } : {}), files: files.split(" "), passes: stats.passes, failures: stats.failures, tests: stats.tests, exit: Number(rc), seconds: Number(secs) });
      console.log(JSON.stringify(list));
    ' "$results" "$suite" "$files" "$report" "$rc" "$secs")
  done
  # sessions of one engine may finish together: one merge at a time
  flock "$out/.$engine.lock" node -e '
    const fs = require("fs");
    const [engine, info, provision, results, file] = process.argv.slice(1);
    const [version = "?", driver = "", compose = "none"] = info.split("\n");
    const store = /driver-type=io\.containerd\.snapshotter/.test(driver) ? "containerd" : "classic (overlay2)";
    // suites run before (another SUITES selection) stay unless run again now
    let previous = [];
    try { previous = JSON.parse(fs.readFileSync(file, "utf8")).suites ?? []; } catch {}
    const now = JSON.parse(results);
    const suites = [...previous.filter((p) => !now.some((s) => s.suite === p.suite)), ...now];
    const doc = { engine, version, store, compose, provisionSeconds: Number(provision), date: new Date().toISOString().slice(0, 10), suites };
    fs.writeFileSync(file, JSON.stringify(doc, null, 2) + "\n");
  ' "$engine" "$info" "$provision" "$results" "$out/$engine.json"
  exit $status
fi

# --- outside: provision, then one locked engine session per engine ------------------------
# With CAISSON_MATRIX_PARALLEL=N the suites of an engine are split into N groups of about
# equal length (their seconds on docker28-containerd below, longest first), each run in an engine session of
# its own at the same time: the suites mostly wait (health windows, timeouts), the image
# tag rules are per engine, and each file publishes ports of its own. e2e (udev, loop
# devices) is in one group only by construction.
weight() {
  case "$1" in
    pipeline) echo 160 ;; crash) echo 120 ;; restart) echo 110 ;; compose) echo 100 ;;
    docker) echo 90 ;; e2e) echo 60 ;; images) echo 25 ;; *) echo 60 ;;
  esac
}
split_suites() {
  local n=$1; shift
  local -a load=() group=()
  local i s best
  for ((i = 0; i < n; i++)); do load[i]=0; group[i]=; done
  for s in $(for s in "$@"; do echo "$(weight "$s") $s"; done | sort -rn | cut -d' ' -f2); do
    best=0
    for ((i = 1; i < n; i++)); do [ "${load[i]}" -lt "${load[best]}" ] && best=$i; done
    load[best]=$(( load[best] + $(weight "$s") ))
    group[best]="${group[best]} $s"
  done
  for ((i = 0; i < n; i++)); do [ -n "${group[i]}" ] && echo "${group[i]# }"; done
}

engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(docker28-containerd docker28)
[ -n "${CAISSON_MATRIX_NO_BUILD:-}" ] || npm run --silent build
all_suites=${SUITES:-pipeline compose docker crash images e2e restart}
status=0
for engine in "${engines[@]}"; do
  t0=$(now)
  bash scripts/with-engine.sh "$engine" --provision || { status=1; continue; }
  [ -z "${CAISSON_MATRIX_PEER:-}" ] || bash scripts/with-engine.sh "$CAISSON_MATRIX_PEER" --provision || { status=1; continue; }
  provision=$(( $(now) - t0 ))
  s0=$(now)
  sessions=$(mktemp)
  # restart has a session of its own, restartable (see with-engine.sh)
  groups=$(split_suites "${CAISSON_MATRIX_PARALLEL:-1}" $(echo " $all_suites " | sed 's/ restart / /'))
  case " $all_suites " in *" restart "*) groups="$groups
restart" ;; esac
  while read -r group; do
    [ -n "$group" ] || continue
    if [ "$group" = restart ]; then
      echo "CAISSON_ENGINE_RESTARTABLE=1 SUITES=restart bash scripts/with-engine.sh $engine -- bash scripts/engine-matrix.sh --inside $engine $provision" >>"$sessions"
      continue
    fi
    session="bash scripts/with-engine.sh $engine -- bash scripts/engine-matrix.sh --inside $engine $provision"
    # the peer engine is only of use to the cross-engine test (images)
    case " $group " in *" images "*) [ -z "${CAISSON_MATRIX_PEER:-}" ] || session="bash scripts/with-engine.sh $CAISSON_MATRIX_PEER -- $session" ;; esac
    echo "SUITES='$group' $session" >>"$sessions"
  done <<<"$groups"
  # side by side with CAISSON_MATRIX_PARALLEL > 1, else one after the other
  run_sessions() {
    local pids=() rc=0 line
    while read -r line; do
      if [ "$parallel" -gt 1 ]; then bash -c "$line" </dev/null & pids+=($!); else bash -c "$line" </dev/null || rc=1; fi
    done <"$sessions"
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
  }
  export -f run_sessions
  export sessions parallel=${CAISSON_MATRIX_PARALLEL:-1}
  if [ -n "${CAISSON_ENGINE_LOCK:-}" ]; then
    flock -w 3600 "$CAISSON_ENGINE_LOCK" bash -c run_sessions || status=1
  else
    run_sessions || status=1
  fi
  rm -f "$sessions"
  echo "engine-matrix: $engine: provisioning ${provision}s, engine session(s) $(( $(now) - s0 ))s" >&2
done

node scripts/engine-table.mjs "$out" docs/runtime.md
for f in "$out"/*.json; do
  case "$f" in *.mocha.json) continue ;; esac
  node -e '
    const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${d.engine}: provisioning ${d.provisionSeconds}s; ` + d.suites.map((s) => `${s.suite}${s.peer ? ` (with ${s.peer})` : ""} ${s.seconds}s (${s.passes}/${s.tests}${s.exit ? ", FAILED" : ""})`).join(", "));
  ' "$f"
done
exit $status
