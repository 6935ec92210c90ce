#!/usr/bin/env bash
# Installs what poold needs to build and test on Debian 12, with apt-get.
# Idempotent: packages already present are left alone; nothing is downloaded
# from anywhere but Debian's archive.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git curl ca-certificates python3
  libluajit2-5.1-dev luajit2
  libroaring-dev libmicrohttpd-dev libjansson-dev librdkafka-dev libjemalloc-dev
  lua-busted
  clang libclang-rt-14-dev
  chromium
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# The console's build and browser tests need Node and npm (Debian's nodejs
# and npm, unless a node is already on PATH, e.g. from NodeSource, whose
# nodejs package conflicts with Debian's npm).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
