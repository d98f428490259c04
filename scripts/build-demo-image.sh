#!/usr/bin/env bash
# Build a small local web image from busybox-static (no registry needed):
#   build-demo-image.sh REF VERSION [healthy|broken]
# healthy: busybox httpd on :8080 serving /health and /version.
# broken:  starts, but exits after 2 s, so it can never pass a health window.
# PID 1 is a shell that exits on SIGTERM, as a well-behaved service does: a program running
# as PID 1 ignores SIGTERM unless it handles it (busybox httpd does not), and the engine
# would then wait its whole stop timeout (10 s) before killing it, an outage that is the
# image's and not the update's.
set -euo pipefail
ref=$1 version=$2 kind=${3:-healthy}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/www" "$ctx/rootfs/data" "$ctx/rootfs/tmp"
cp /bin/busybox "$ctx/rootfs/bin/busybox"
echo "$version" > "$ctx/rootfs/www/version"
echo ok > "$ctx/rootfs/www/health"
on_term="trap 'exit 0' TERM"
if [ "$kind" = broken ]; then
  cmd="[\"/bin/busybox\",\"sh\",\"-c\",\"$on_term; /bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep 2 & wait; exit 1\"]"
else
  cmd="[\"/bin/busybox\",\"sh\",\"-c\",\"$on_term; /bin/busybox httpd -f -p 8080 -h /www & wait\"]"
fi
# one `docker import` of the root filesystem (no Dockerfile build: the legacy builder makes and
# commits a container per line, three times the engine's work for this one-layer image)
tar -C "$ctx/rootfs" --numeric-owner --owner=0 --group=0 -cf "$ctx/rootfs.tar" .
if ! out=$(docker import --change "LABEL caisson.demo=1" --change "ENV PATH=/bin" --change "EXPOSE 8080" --change "CMD $cmd" "$ctx/rootfs.tar" "$ref" 2>&1); then
  echo "$out" >&2
  exit 1
fi
