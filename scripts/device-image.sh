#!/usr/bin/env bash
# Make sure the device test's base image exists: a minimal Debian root filesystem (12,
# bookworm, unless SUITE says trixie for Debian 13) with systemd as PID 1, udev and dbus,
# imported into the local Docker engine. It is built
# once (debootstrap, ~90 s, needs the Debian mirror) and kept under a fixed tag, so later runs
# reuse it; a changed recipe (RECIPE below) gets a new tag. Installs debootstrap when missing.
#
#   bash scripts/device-image.sh [SUITE]     # prints the image tag on stdout
#
# The image is the "device" of test/device: the .deb is installed into containers made from
# it with no network. Its apt sources are emptied so nothing can be downloaded there.
set -euo pipefail

RECIPE=1 # bump when the steps below change
suite=${1:-bookworm}
case $suite in
  bookworm | trixie) ;;
  *)
    echo "caisson: device images are made for bookworm or trixie" >&2
    exit 2
    ;;
esac
tag=caisson-test/device-$suite:r$RECIPE

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "caisson: debootstrap is missing (run as root to install it)" >&2
    exit 1
  fi
  echo "caisson: installing debootstrap from apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mirror=${CAISSON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/caisson-device-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "caisson: building the device image $tag (debootstrap $suite, ~90 s)" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,dbus "$suite" "$root" "$mirror" >&2

# The container shares the host's /dev, /sys and kernel: keep the booted system from acting
# on the host. No gettys on the host's console, no kernel settings (sysctl, modules,
# binfmt), no coldplug of every host device; udevd still sees every new event.
for unit in getty.target console-getty.service getty@.service serial-getty@.service \
  systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service \
  proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
  systemd-udev-trigger.service systemd-firstboot.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# offline from here on: no sources, no lists
: >"$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
echo caisson-device >"$root/etc/hostname"

tar -C "$root" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$tag" >&2
echo "$tag"
