#!/usr/bin/env bash
# Build a small local web image from busybox-static (no registry needed):
#   build-demo-image.sh REF VERSION [healthy|broken]
# healthy: busybox httpd on :8080 serving /health and /version.
# broken:  starts, but exits after 2 s, so it can never pass a health window.
set -euo pipefail
ref=$1 version=$2 kind=${3:-healthy}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/www" "$ctx/rootfs/data" "$ctx/rootfs/tmp"
cp /bin/busybox "$ctx/rootfs/bin/busybox"
echo "$version" > "$ctx/rootfs/www/version"
echo ok > "$ctx/rootfs/www/health"
if [ "$kind" = broken ]; then
  cmd='["/bin/busybox","sh","-c","/bin/busybox httpd -p 8080 -h /www; /bin/busybox sleep 2; exit 1"]'
else
  cmd='["/bin/busybox","httpd","-f","-p","8080","-h","/www"]'
fi
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs /
ENV PATH=/bin
EXPOSE 8080
CMD $cmd
DOCKERFILE
docker build -q --label caisson.demo=1 -t "$ref" "$ctx" >/dev/null
