#!/usr/bin/env bash
# Make sure Debian's chromium is installed: the web page's end-to-end tests drive it through
# playwright-core, which never downloads a browser of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "caisson: chromium is missing (run this script as root to install it)" >&2
  exit 1
fi
echo "caisson: installing chromium from apt" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
