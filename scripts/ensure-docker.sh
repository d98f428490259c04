#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock.
# Installs Debian's engine, Compose and the other system packages Caisson needs when
# they are missing, and starts dockerd in the background when none answers.
# Prints "started" on fd 3 (if open) when it started dockerd itself, so the caller
# can stop exactly what it started (scripts/stop-docker.sh).
set -euo pipefail

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || need_pkgs+=(busybox-static)
command -v udevadm >/dev/null 2>&1 || need_pkgs+=(udev)
command -v mkfs.ext4 >/dev/null 2>&1 || need_pkgs+=(e2fsprogs)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v losetup >/dev/null 2>&1 || need_pkgs+=(mount)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "caisson: missing system packages: ${need_pkgs[*]} (run this script as root to install them)" >&2
    exit 1
  fi
  echo "caisson: installing ${need_pkgs[*]} from apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "caisson: no Docker engine answers and only root can start one" >&2
  exit 1
fi
log=/var/log/caisson-dockerd.log
echo "caisson: starting dockerd (log: $log)" >&2
nohup dockerd --storage-driver=overlay2 >"$log" 2>&1 3>&- &
echo $! > /run/caisson-dockerd.pid
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    { echo started >&3; } 2>/dev/null || true
    exit 0
  fi
  sleep 0.5
done
echo "caisson: dockerd did not answer within 30 s; see $log" >&2
exit 1
