#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser test, if it is not there yet, and prints
# its path. Needs root (CI runs as root) or an existing /usr/bin/chromium.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  command -v chromium
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-chromium: chromium is missing and this is not root; install the Debian package 'chromium'" >&2
  exit 1
fi
echo "install-chromium: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
