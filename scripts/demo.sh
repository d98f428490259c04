#!/usr/bin/env bash
# Set up Caisson and run a demo update end to end against the real Docker engine:
# a service "web" runs version 1.0.0; a vendor package brings 1.1.0 (committed); a broken
# 1.2.0 is rolled back automatically. Everything lives under /var/lib/caisson-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

demo=/var/lib/caisson-demo
port=18080
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
common=(--services "$demo/services.toml" --state-dir "$demo/state" --trusted-keys "$demo/no-keys")

say "Preparing a demo service (container caisson-demo-web on port $port)"
docker rm -f caisson-demo-web >/dev/null 2>&1 || true
rm -rf "$demo" && mkdir -p "$demo/packages"
bash scripts/build-demo-image.sh caisson-demo/web:1.0.0 1.0.0
bash scripts/build-demo-image.sh caisson-demo/web:1.1.0 1.1.0
bash scripts/build-demo-image.sh caisson-demo/web:1.2.0 1.2.0 broken
sed "s/@PORT@/$port/" fixtures/demo/services.toml > "$demo/services.toml"
docker volume create caisson-demo-data >/dev/null
docker run -d --name caisson-demo-web --label caisson.demo=1 --restart unless-stopped \
  -p "127.0.0.1:$port:8080" -e GREETING=hello -v caisson-demo-data:/data caisson-demo/web:1.0.0 >/dev/null
echo "running: $(curl -fsS "http://127.0.0.1:$port/version")"

say "Vendor side: building packages from local images"
caisson package build --image caisson-demo/web:1.1.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.1.0 -o "$demo/packages/web-1.1.0.edgepkg"
caisson package build --image caisson-demo/web:1.2.0 --service web --service-revision web-v1 \
  --platform linux/amd64 --version 1.2.0 -o "$demo/packages/web-1.2.0.edgepkg"
# the device has only the packages, not the images: remove them as a fresh device would be
docker rmi caisson-demo/web:1.1.0 caisson-demo/web:1.2.0 >/dev/null

say "caisson service list"
caisson service list "${common[@]}"

say "caisson package validate web-1.1.0.edgepkg"
caisson package validate "${common[@]}" "$demo/packages/web-1.1.0.edgepkg"

say "caisson package load --yes web-1.1.0.edgepkg"
caisson package load --yes "${common[@]}" "$demo/packages/web-1.1.0.edgepkg"
echo "service answers: $(curl -fsS "http://127.0.0.1:$port/version")"

say "caisson package load --yes web-1.2.0.edgepkg (a broken version: expect an automatic rollback, exit 3)"
set +e
caisson package load --yes "${common[@]}" "$demo/packages/web-1.2.0.edgepkg"
rc=$?
set -e
echo "exit code $rc"
echo "service answers: $(curl -fsS "http://127.0.0.1:$port/version")"

say "caisson history list"
caisson history list "${common[@]}"

version=$(curl -fsS "http://127.0.0.1:$port/version")
if [ "$version" = 1.1.0 ] && [ "$rc" = 3 ]; then
  say "Demo done: 1.1.0 committed, 1.2.0 rolled back, the service answers $version"
  echo "Clean up with: docker rm -f caisson-demo-web && docker volume rm caisson-demo-data && rm -rf $demo"
else
  say "Demo FAILED: service answers '$version', rollback exit code $rc"
  exit 1
fi
