#!/usr/bin/env bash
# Run a command against one of the Docker engines devices run in the field.
#
#   scripts/with-engine.sh NAME -- COMMAND...
#   scripts/with-engine.sh NAME --provision     only build the cached root filesystem
#
# NAME is one of:
#   debian12             this machine's own engine (Debian 12 docker.io 20.10, Compose v1)
#   docker28             Debian forky's docker.io 28.5 with Compose v2, classic overlay2 store
#   docker28-containerd  the same engine with the containerd image store enabled
#   debian12-dind        Debian 12's docker.io 20.10 with Compose v1 (debian12's engine), but an
#                        engine of its own as below: scripts/test.sh runs one lane of the suite
#                        on it beside another lane on this machine's engine
#
# The forky engine is installed into a root filesystem (debootstrap from Debian's archive),
# cached under $CAISSON_ENGINE_CACHE (default /var/cache/caisson-engines) and rebuilt only
# when missing. It runs isolated as docker-in-docker under this machine's engine: a container
# of that root filesystem with its own fresh data volume, sharing the host's network
# namespace (so ports its containers publish answer on the host's 127.0.0.1 through the
# userland proxy) with its own bridge name and address pools (so it never touches docker0; but
# see CAISSON_ENGINE_RESTARTABLE below).
# COMMAND runs with DOCKER_HOST and CAISSON_DOCKER_SOCKET pointing at that engine, with
# that engine's docker CLI and Compose first on the PATH, CAISSON_ENGINE set to NAME and
# CAISSON_HOST_DOCKER_SOCKET to this machine's own engine (for tests that use two engines).
# With CAISSON_ENGINE_RESTARTABLE=1, CAISSON_ENGINE_CONTROL names a script that stops and
# starts a docker-in-docker engine (`stop`, `start`: a dockerd restart, its data kept) for
# tests that restart the engine. Such an engine takes its networks from Docker's default
# pools: a dockerd that restarts with its own address pools deletes the interface called
# docker0 of its network namespace (moby's configureNetworking), which here is this
# machine's own bridge.
# Run inside another with-engine.sh session, the second engine starts beside the first
# (under this machine's engine) and CAISSON_PEER_ENGINE / CAISSON_PEER_DOCKER_SOCKET name
# the first, so one command can use both:
#   scripts/with-engine.sh docker28 -- scripts/with-engine.sh docker28-containerd -- COMMAND
# Everything started is stopped and removed again when COMMAND ends; COMMAND's exit status
# is returned.
#
# Must run as root (it starts containers and owns the cache). Hold the shared engine lock
# around it when other work uses this machine's engine.
set -euo pipefail

usage() {
  echo "usage: $0 debian12|debian12-dind|docker28|docker28-containerd -- COMMAND..." >&2
  exit 2
}
provision_only=false
if [ $# -eq 2 ] && [ "$2" = "--provision" ]; then
  provision_only=true
else
  [ $# -ge 3 ] && [ "$2" = "--" ] || usage
fi
name=$1
shift 2

here=$(cd "$(dirname "$0")" && pwd)
cache=${CAISSON_ENGINE_CACHE:-/var/cache/caisson-engines}
mirror=${CAISSON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { echo "with-engine: $*" >&2; }
# this machine's engine, whatever DOCKER_HOST says later; inside another session, the one
# that session runs under (its engine becomes this session's peer)
outer=${DOCKER_HOST:-unix:///var/run/docker.sock}
peer_engine= peer_socket=
if [ -n "${CAISSON_ENGINE:-}" ] && [ -n "${CAISSON_HOST_DOCKER_SOCKET:-}" ]; then
  peer_engine=$CAISSON_ENGINE peer_socket=$CAISSON_DOCKER_SOCKET
  outer=unix://$CAISSON_HOST_DOCKER_SOCKET
fi
# this machine's docker CLI, not a session's
host_docker=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v docker)
hd() { "$host_docker" --host "$outer" "$@"; }
export_peer() {
  [ -n "$peer_engine" ] || return 0
  export CAISSON_PEER_ENGINE=$peer_engine CAISSON_PEER_DOCKER_SOCKET=$peer_socket
}

case "$name" in
  debian12)
    $provision_only && exit 0
    # today's engine: make sure it runs (and stop it again if this started it)
    started=$(bash "$here/ensure-docker.sh" 3>&1 >&2)
    if [ "$started" = started ]; then trap 'bash "$here/stop-docker.sh"' EXIT; fi
    export DOCKER_HOST=unix:///var/run/docker.sock CAISSON_DOCKER_SOCKET=/var/run/docker.sock
    export CAISSON_ENGINE=debian12
    export_peer
    set +e
    "$@"
    exit $?
    ;;
  debian12-dind) suite=bookworm; store=classic ;;
  docker28) suite=forky; store=classic ;;
  docker28-containerd) suite=forky; store=containerd ;;
  *) usage ;;
esac

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

rootfs=$cache/$suite/rootfs
image=caisson-engine/$suite:1

# --- provisioning (once; cached) -----------------------------------------------------------
provision_rootfs() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  local tmp=$cache/$suite/rootfs.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "debootstrap $suite into $tmp (about a minute)"
  # debootstrap knows the newest suites by sid's script; forky's Release is past its
  # validity date on a frozen mirror, which debootstrap does not check but apt does
  debootstrap --variant=minbase "$suite" "$tmp" "$mirror" /usr/share/debootstrap/scripts/sid >"$cache/$suite/debootstrap.log" 2>&1 ||
    { log "debootstrap failed; see $cache/$suite/debootstrap.log"; exit 1; }
  log "installing the engine and Compose into it"
  # bookworm's docker.io carries its CLI; forky splits it into docker-cli
  local cli=docker-cli
  [ "$suite" = bookworm ] && cli=
  chroot "$tmp" sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o Acquire::Check-Valid-Until=false update -qq
    apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends \
      docker.io '"$cli"' docker-compose containerd runc iproute2 iptables ca-certificates procps
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  ' >"$cache/$suite/install.log" 2>&1 || { log "installing the engine failed; see $cache/$suite/install.log"; exit 1; }
  chroot "$tmp" dpkg-query -W docker.io docker-compose containerd >"$tmp/.caisson-versions"
  rm -rf "$rootfs"
  mv "$tmp" "$rootfs"
}

if [ ! -f "$rootfs/.caisson-versions" ]; then
  provision_rootfs
  rm -f "$cache/$suite/imported"
fi
$provision_only && exit 0
hd info >/dev/null 2>&1 || { log "this machine's Docker engine does not answer (scripts/ensure-docker.sh starts it)"; exit 1; }
[ -f "$cache/$suite/imported" ] || hd image rm "$image" >/dev/null 2>&1 || true
if ! hd image inspect "$image" >/dev/null 2>&1; then
  log "importing the $suite root filesystem as $image"
  tar -C "$rootfs" --numeric-owner -c . | hd import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
  touch "$cache/$suite/imported"
fi

# --- start the engine ----------------------------------------------------------------------
id=$name-$$
container=caisson-engine-$id
volume=caisson-engine-$id
run=/run/caisson-engines/$id
bridge=cbr$$
bridge=${bridge:0:15}
# address ranges unlikely to meet this machine's own networks (Docker's pools are 172.17+/16
# and 192.168/20); the engine also checks the namespace's routes before taking one. Sessions
# side by side (a peer, parallel matrix groups) each take a bridge subnet and a pool of their own.
n=$(( $$ % 100 + 1 ))
while ip -4 addr show | grep -q " 10\.213\.$n\."; do n=$(( n % 100 + 1 )); done
bip=10.213.$n.1/24
pool=(--default-address-pool "base=10.$(( 110 + n )).0.0/16,size=24")
restartable=${CAISSON_ENGINE_RESTARTABLE:-0}
[ "$restartable" = 1 ] && pool=()
# this machine's bridge, to put back should anything still delete it
docker0_addr=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4; exit}')

# docker0 must outlive every session (see CAISSON_ENGINE_RESTARTABLE above): put it back and
# say so loudly if it went
keep_docker0() {
  [ -n "$docker0_addr" ] || return 0
  ip link show docker0 >/dev/null 2>&1 && return 0
  log "WARNING: this machine's docker0 vanished during the session; re-creating it ($docker0_addr)"
  ip link add docker0 type bridge && ip addr add "$docker0_addr" dev docker0 && ip link set docker0 up
  return 1
}

cleanup() {
  local rc=$?
  set +e
  if hd inspect "$container" >/dev/null 2>&1; then
    # networks Compose left: their bridges live in this machine's namespace
    DOCKER_HOST=unix://$run/docker.sock docker rm -f $(DOCKER_HOST=unix://$run/docker.sock docker ps -aq) >/dev/null 2>&1
    DOCKER_HOST=unix://$run/docker.sock docker network prune -f >/dev/null 2>&1
    hd stop -t 20 "$container" >/dev/null 2>&1
    hd rm -f "$container" >/dev/null 2>&1
  fi
  hd volume rm "$volume" >/dev/null 2>&1
  ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge"
  keep_docker0 || rc=1
  rm -rf "$run"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$run/bin" "$run/docker-config/cli-plugins"
daemon_json='{}'
[ "$store" = containerd ] && daemon_json='{"features":{"containerd-snapshotter":true}}'
echo "$daemon_json" >"$run/daemon.json"

hd volume create "$volume" >/dev/null
# dockerd creates only a bridge called docker0 itself; one of its own must exist already
ip link add "$bridge" type bridge
ip addr add "$bip" dev "$bridge"
ip link set "$bridge" up
log "starting $name ($container, bridge $bridge)"
hd run -d --name "$container" \
  --network host \
  --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
  --device-cgroup-rule 'a *:* rwm' \
  -v /sys/fs/cgroup:/sys/fs/cgroup \
  --tmpfs /run --tmpfs /tmp \
  --mount "type=volume,source=$volume,target=/var/lib/docker,volume-nocopy=true" \
  -v "$run:$run" \
  --label caisson.engine="$name" \
  "$image" \
  dockerd --host "unix://$run/docker.sock" --config-file "$run/daemon.json" \
    --pidfile /run/docker.pid --exec-root /run/docker \
    --bridge "$bridge" --iptables=false --ip6tables=false --ip-forward=false --userland-proxy=true \
    "${pool[@]}" >/dev/null

export DOCKER_HOST=unix://$run/docker.sock
export CAISSON_DOCKER_SOCKET=$run/docker.sock
export CAISSON_ENGINE=$name
# this machine's own engine stays reachable, for tests that use two engines
export CAISSON_HOST_DOCKER_SOCKET=${outer#unix://}
export_peer
# a dockerd restart, for tests that restart the engine: its container stops (dockerd shuts
# down as on `systemctl restart docker`: containers stop, the data volume stays) and starts
if [ "$restartable" = 1 ]; then
  cat >"$run/engine-control" <<EOF
#!/bin/sh
case "\$1" in
  stop) exec "$host_docker" --host "$outer" stop -t 30 "$container" >/dev/null ;;
  start) exec "$host_docker" --host "$outer" start "$container" >/dev/null ;;
  *) echo "usage: \$0 stop|start" >&2; exit 2 ;;
esac
EOF
  chmod +x "$run/engine-control"
  export CAISSON_ENGINE_CONTROL=$run/engine-control
else
  unset CAISSON_ENGINE_CONTROL
fi

for _ in $(seq 1 120); do
  docker version >/dev/null 2>&1 && break
  if [ "$(hd inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]; then
    log "the engine exited:"; hd logs --tail 30 "$container" >&2; exit 1
  fi
  sleep 0.5
done
docker version >/dev/null 2>&1 || { log "the engine did not answer within 60 s"; hd logs --tail 30 "$container" >&2; exit 1; }

# the engine's docker CLI and Compose, run with its own libraries (forky's libc is newer)
wrap() {
  local target=$1 out=$2
  cat >"$out" <<EOF
#!/bin/sh
exec "$rootfs/lib64/ld-linux-x86-64.so.2" --library-path "$rootfs/lib/x86_64-linux-gnu:$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs$target" "\$@"
EOF
  chmod +x "$out"
}
# (bookworm's are this machine's own docker CLI and Compose v1: nothing to wrap)
if [ "$suite" != bookworm ]; then
  wrap /usr/bin/docker "$run/bin/docker"
  wrap /usr/libexec/docker/cli-plugins/docker-compose "$run/docker-config/cli-plugins/docker-compose"
  wrap /usr/libexec/docker/cli-plugins/docker-compose "$run/bin/docker-compose"
fi
export DOCKER_CONFIG=$run/docker-config
export PATH=$run/bin:$PATH
log "$name answers on $DOCKER_HOST ($(docker version -f '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null || echo 'no compose'))"

set +e
"$@"
rc=$?
set -e
exit $rc
