#!/bin/sh
# Install the Debian packages that blobd, its tests and its benchmarks need,
# when any of them is missing. Needs root (or sudo) only when it installs.
set -eu

packages="build-essential pkg-config clang libclang-rt-14-dev
librocksdb-dev libmicrohttpd-dev libssl-dev libjansson-dev libmagic-dev
libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev zlib1g-dev liblcms2-dev
libcmocka-dev python3 python3-pytest python3-pytest-xdist python3-requests python3-pil python3-numpy
curl openssl libvips-tools imagemagick nginx-light wrk"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "installing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
else
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
