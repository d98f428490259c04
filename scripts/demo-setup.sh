#!/usr/bin/env bash
# The demo's device, prepared without running an update (scripts/demo.sh runs this, then the
# updates; the tests run it to check the README's commands against it):
#   - images caisson-demo/web:1.0.0, 1.1.0 and a broken 1.2.0, built from busybox (no registry)
#   - a service container caisson-demo-web from 1.0.0 on 127.0.0.1:18080, volume caisson-demo-data
#   - /var/lib/caisson-demo: services.toml, an empty trusted-keys folder, packages/ with
#     web-1.1.0.edgepkg and web-1.2.0.edgepkg; state/ is left for the first command to create
# The package images are removed again: a device only gets packages. Anything an earlier run
# left is removed first. Needs a Docker engine and the compiled agent (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=/var/lib/caisson-demo
port=18080
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
caisson() { node dist/agent/cli/main.js "$@"; }

say "Preparing a demo service (container caisson-demo-web on port $port)"
bash scripts/demo-clean.sh
mkdir -p "$demo/packages" "$demo/trusted-keys"
bash scripts/build-demo-image.sh caisson-demo/web:1.0.0 1.0.0
bash scripts/build-demo-image.sh caisson-demo/web:1.1.0 1.1.0
bash scripts/build-demo-image.sh caisson-demo/web:1.2.0 1.2.0 broken
sed "s/@PORT@/$port/" fixtures/demo/services.toml > "$demo/services.toml"
docker volume create --label caisson.demo=1 caisson-demo-data >/dev/null
docker run -d --name caisson-demo-web --label caisson.demo=1 --restart unless-stopped \
  -p "127.0.0.1:$port:8080" -e GREETING=hello -v caisson-demo-data:/data caisson-demo/web:1.0.0 >/dev/null
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/version" >/dev/null 2>&1 && break; sleep 0.1; done
echo "running: $(curl -fsS "http://127.0.0.1:$port/version")"

say "Vendor side: building packages from local images"
caisson package build --image caisson-demo/web:1.1.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.1.0 -o "$demo/packages/web-1.1.0.edgepkg"
caisson package build --image caisson-demo/web:1.2.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.2.0 -o "$demo/packages/web-1.2.0.edgepkg"
# the device has only the packages, not the images: remove them as a fresh device would be
docker rmi caisson-demo/web:1.1.0 caisson-demo/web:1.2.0 >/dev/null
