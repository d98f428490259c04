#!/usr/bin/env bash
# The demo's device, prepared without running an update (scripts/demo.sh runs this, then the
# updates; the tests run it to check the README's commands against it):
#   - images caisson-demo/web:1.0.0, 1.1.0, a broken 1.2.0 and 2.0.0, caisson-demo/api:1.0.0
#     and 2.0.0, built from busybox (no registry)
#   - a service container caisson-demo-web from 1.0.0 on 127.0.0.1:18080, volume
#     caisson-demo-data; a second service caisson-demo-api from 1.0.0 on 127.0.0.1:18081
#   - /var/lib/caisson-demo: services.toml, an empty trusted-keys folder, packages/ with
#     web-1.1.0.edgepkg, web-1.2.0.edgepkg and the stack package shop-2.0.0.edgepkg (web and
#     api 2.0.0 together); state/ is left for the first command to create
# The package images are removed again: a device only gets packages. Anything an earlier run
# left is removed first. Needs a Docker engine and the compiled agent (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=/var/lib/caisson-demo
port=18080
api_port=18081
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
caisson() { node dist/agent/cli/main.js "$@"; }

say "Preparing a demo service (container caisson-demo-web on port $port)"
bash scripts/demo-clean.sh
mkdir -p "$demo/packages" "$demo/trusted-keys"
bash scripts/build-demo-image.sh caisson-demo/web:1.0.0 1.0.0
bash scripts/build-demo-image.sh caisson-demo/web:1.1.0 1.1.0
bash scripts/build-demo-image.sh caisson-demo/web:1.2.0 1.2.0 broken
bash scripts/build-demo-image.sh caisson-demo/web:2.0.0 2.0.0
bash scripts/build-demo-image.sh caisson-demo/api:1.0.0 1.0.0
bash scripts/build-demo-image.sh caisson-demo/api:2.0.0 2.0.0
sed -e "s/@PORT@/$port/" -e "s/@API_PORT@/$api_port/" fixtures/demo/services.toml > "$demo/services.toml"
docker volume create --label caisson.demo=1 caisson-demo-data >/dev/null
docker run -d --name caisson-demo-web --label caisson.demo=1 --restart unless-stopped \
  -p "127.0.0.1:$port:8080" -e GREETING=hello -v caisson-demo-data:/data caisson-demo/web:1.0.0 >/dev/null
docker run -d --name caisson-demo-api --label caisson.demo=1 --restart unless-stopped \
  -p "127.0.0.1:$api_port:8080" caisson-demo/api:1.0.0 >/dev/null
for p in $port $api_port; do
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$p/version" >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "running: web $(curl -fsS "http://127.0.0.1:$port/version"), api $(curl -fsS "http://127.0.0.1:$api_port/version")"

say "Vendor side: building packages from local images"
caisson package build --image caisson-demo/web:1.1.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.1.0 -o "$demo/packages/web-1.1.0.edgepkg"
caisson package build --image caisson-demo/web:1.2.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.2.0 -o "$demo/packages/web-1.2.0.edgepkg"
# a stack: web and api 2.0.0 together, all or nothing, switched in this order
caisson package build --stack shop --platform linux/amd64 --version 2.0.0 \
  --member web,web-v1,caisson-demo/web:2.0.0 --member api,api-v1,caisson-demo/api:2.0.0 \
  -o "$demo/packages/shop-2.0.0.edgepkg"
# the device has only the packages, not the images: remove them as a fresh device would be
docker rmi caisson-demo/web:1.1.0 caisson-demo/web:1.2.0 caisson-demo/web:2.0.0 caisson-demo/api:2.0.0 >/dev/null
