#!/bin/sh
# Install the Debian packages that blobd and its tests need, when any of
# them is missing; with the argument "bench", also those of the benchmarks
# (vipsthumbnail, ImageMagick, nginx, wrk, numpy). Needs root (or sudo)
# only when it installs.
set -eu

packages="build-essential pkg-config clang libclang-rt-14-dev
librocksdb-dev libmicrohttpd-dev libssl-dev libjansson-dev libmagic-dev
libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev zlib1g-dev liblcms2-dev
libcmocka-dev python3 python3-pytest python3-pytest-xdist python3-requests
python3-pil curl openssl"
bench_packages="libvips-tools imagemagick nginx-light wrk python3-numpy"

if [ "${1:-}" = bench ]; then
    packages="$packages $bench_packages"
fi

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

# nginx's package starts the system nginx on port 80 when it is installed.
# The benchmarks start their own on 127.0.0.1, so keep package scripts
# from starting services, unless the machine already has such a policy.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
fi
status=0
$sudo apt-get update -q || status=$?
if [ "$status" -eq 0 ]; then
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing || status=$?
fi
if [ -n "$own_policy" ]; then
    $sudo rm -f "$policy"
fi
exit "$status"
