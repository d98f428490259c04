#!/usr/bin/env bash
# Build the Debian package caisson_<version>_<arch>.deb (npm run package:deb).
#
#   bash scripts/package-deb.sh [OUT_DIR]      # default OUT_DIR: the repository root
#
# No network: it packs what this checkout already has. The compiled agent (dist/), the
# production part of node_modules (as package-lock.json marks it), and the Node 20 runtime
# that runs here (CAISSON_NODE, default: `node` on the PATH), so the package runs on
# Debian 12 (whose nodejs is 18) and Debian 13 alike, with better-sqlite3's native module
# built for exactly that runtime. Build it on the architecture of the devices.
# Layout and maintainer scripts: docs/install.md; why the runtime is carried: docs/decisions.md.
# CAISSON_DEB_NO_BUILD=1 packs dist/ as it is, without `npm run build` first (scripts/test.sh,
# which built it and runs tests from it meanwhile: a rebuild would rewrite files under them).
# CAISSON_DEB_COMPRESSION picks dpkg-deb's compressor (default xz, the smallest package for a
# stick; scripts/test.sh packs its throwaway test package with none: xz spent ~150 s of CPU on
# the carried runtime, a tenth of the whole suite's, for a file that never leaves the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out=${1:-$repo}
mkdir -p "$out"
out=$(cd "$out" && pwd)

node_bin=$(readlink -f "${CAISSON_NODE:-$(command -v node)}")
node_major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
if [ "$node_major" != 20 ]; then
  echo "caisson: the package carries Node 20; $node_bin is Node $node_major (set CAISSON_NODE)" >&2
  exit 1
fi

if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "caisson: installing npm dependencies first (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
[ -n "${CAISSON_DEB_NO_BUILD:-}" ] || npm run --silent build

version=${CAISSON_DEB_VERSION:-$("$node_bin" -p 'require("./package.json").version')}
arch=$(dpkg --print-architecture)
deb=$out/caisson_${version}_${arch}.deb

stage=$(mktemp -d "${TMPDIR:-/tmp}/caisson-deb.XXXXXX")
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
umask 022
app=$stage/usr/lib/caisson

# --- the program ------------------------------------------------------------------------
install -d "$app" "$stage/usr/bin" "$stage/usr/share/doc/caisson"
install -m 0755 "$node_bin" "$app/node"
cp -r dist "$app/dist"
find "$app/dist" -name "*.map" -type f -delete
# only what the agent reads at run time: its name, version, module type
"$node_bin" -e '
  const p = require("./package.json");
  process.stdout.write(JSON.stringify({ name: p.name, version: p.version, private: true, type: p.type, license: p.license }, null, 2) + "\n");
' >"$app/package.json"

# production dependencies: every lock entry not marked dev (typescript is a dev-only
# optional peer), copied as installed; optional ones only when present
"$node_bin" -e '
  const lock = require("./package-lock.json");
  for (const [path, e] of Object.entries(lock.packages)) {
    if (path && !e.dev && !e.devOptional && !e.link) console.log(path);
  }
' | while read -r dir; do
  # a nested node_modules came along with its parent package already
  if [ -d "$dir" ] && [ ! -e "$app/$dir" ]; then
    mkdir -p "$app/$(dirname "$dir")"
    cp -r "$dir" "$app/$dir"
  fi
done
# better-sqlite3: the module and its JavaScript, not the SQLite sources and object files
sqlite=$app/node_modules/better-sqlite3
rm -rf "$sqlite/deps" "$sqlite/src" "$sqlite/build"
install -D -m 0755 node_modules/better-sqlite3/build/Release/better_sqlite3.node "$sqlite/build/Release/better_sqlite3.node"
# nothing a running agent reads: type declarations, source maps, nested binaries' links
find "$app/node_modules" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -type f -delete
rm -rf "$app/node_modules/.bin"
find "$app/node_modules" -name .bin -type d -prune -exec rm -rf {} +

# the native module must load in the runtime the package carries
"$node_bin" -e '
  const Database = require(process.argv[1]);
  new Database(":memory:").prepare("select 1").get();
' "$sqlite" || {
  echo "caisson: better-sqlite3 does not load in $node_bin; rebuild it (npm rebuild better-sqlite3)" >&2
  exit 1
}

cat >"$stage/usr/bin/caisson" <<'EOF'
#!/bin/sh
# Caisson: the CLI and the agent, on the Node runtime the package carries.
exec /usr/lib/caisson/node /usr/lib/caisson/dist/agent/cli/main.js "$@"
EOF
chmod 0755 "$stage/usr/bin/caisson"

# --- udev, systemd ----------------------------------------------------------------------
install -m 0755 udev/caisson-media "$app/caisson-media"
install -D -m 0644 udev/99-caisson.rules "$stage/usr/lib/udev/rules.d/99-caisson.rules"
install -D -m 0644 config/caisson-agent.service "$stage/usr/lib/systemd/system/caisson-agent.service"
install -D -m 0644 config/caisson-media@.service "$stage/usr/lib/systemd/system/caisson-media@.service"
install -D -m 0644 config/caisson.tmpfiles "$stage/usr/lib/tmpfiles.d/caisson.conf"

# --- configuration (conffiles) ------------------------------------------------------------
install -d -m 0755 "$stage/etc/caisson" "$stage/etc/caisson/trusted-keys"
install -m 0644 config/agent.toml "$stage/etc/caisson/agent.toml"
install -m 0644 config/services.toml "$stage/etc/caisson/services.toml.example"

# --- documentation ------------------------------------------------------------------------
install -m 0644 docs/*.md "$stage/usr/share/doc/caisson/"
node_license=
for f in "$(dirname "$node_bin")/../share/doc/nodejs/LICENSE" /usr/share/doc/nodejs/LICENSE "$(dirname "$node_bin")/../LICENSE"; do
  if [ -f "$f" ]; then
    node_license=$f
    break
  fi
done
if [ -z "$node_license" ]; then
  echo "caisson: cannot find the LICENSE of $node_bin (it must ship with the runtime)" >&2
  exit 1
fi
install -m 0644 "$node_license" "$stage/usr/share/doc/caisson/LICENSE.nodejs"
{
  echo "Caisson $version: an offline updater for predefined Docker services."
  echo
  echo "/usr/lib/caisson/node is Node.js $("$node_bin" --version), under the licenses in LICENSE.nodejs."
  echo "/usr/lib/caisson/node_modules holds npm packages, each with its own license file."
} >"$stage/usr/share/doc/caisson/copyright"

# --- control ------------------------------------------------------------------------------
install -d "$stage/DEBIAN"
installed_kib=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: caisson
Version: $version
Architecture: $arch
Maintainer: Caisson maintainers <caisson@localhost>
Installed-Size: $installed_kib
Depends: libc6 (>= 2.28), libgcc-s1, libstdc++6, mount, udev
Recommends: systemd, docker.io | docker-ce | docker-engine
Section: admin
Priority: optional
Description: offline updater for predefined Docker services
 Caisson applies signed update packages (.edgepkg) to the Docker services of an
 air-gapped device: from a USB stick or an inbox folder, it validates a package,
 imports its image, switches the service, health-checks it and commits, or rolls
 back automatically, writing every step to a local history and a report onto the
 stick. Carries its own Node.js 20 runtime under /usr/lib/caisson.
EOF
printf '/etc/caisson/agent.toml\n/etc/caisson/services.toml.example\n' >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "scripts/deb/$script" "$stage/DEBIAN/$script"
done

compression=${CAISSON_DEB_COMPRESSION:-xz}
case "$compression" in xz | gzip | zstd | none) ;; *) echo "caisson: CAISSON_DEB_COMPRESSION must be xz, gzip, zstd or none, not $compression" >&2; exit 2 ;; esac
started=$(date +%s)
dpkg-deb --root-owner-group "-Z$compression" --build "$stage" "$deb" >/dev/null
echo "caisson: dpkg-deb took $(($(date +%s) - started)) s" >&2
echo "caisson: built $deb ($(du -k "$deb" | cut -f1) KiB, ${installed_kib} KiB installed)" >&2
echo "$deb"
