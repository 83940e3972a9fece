#!/bin/sh
# Build the request-parsing fuzz target (tests/fuzz/fuzz_request.c) with
# clang (libFuzzer, ASan, UBSan) against every blobd source but main.c,
# and run it for a bounded time.
#
# Usage: tests/fuzz/run-request.sh [SECONDS]   (default 30; run from anywhere)
# The corpus lives in build-fuzz/request-corpus/ and keeps what libFuzzer
# finds between runs. A few seeds are written when it is empty. Crashes
# are written to build-fuzz/request-crash-*, and each one should become a
# test.
set -eu

seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=build-fuzz
corpus=$out/request-corpus
mkdir -p "$corpus"

sources=$(ls blobd/*.c chatapi/*.c quota/*.c imgproc/*.c | grep -v '^blobd/main\.c$')
# shellcheck disable=SC2086
clang -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -pthread \
    -Wall -Wextra -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined \
    -I. -Iblobd -Iimgproc -Iquota -Ichatapi \
    -o "$out/fuzz_request" tests/fuzz/fuzz_request.c $sources \
    -lmicrohttpd -lrocksdb -ljansson -lmagic -llcms2 -lturbojpeg -ljpeg \
    -lpng16 -lz -lcrypto -lm

# Seeds: selector byte, time, query, Range, size, then the JSON body.
seed() {
    printf "$2" >"$corpus/seed-$1"
}
if [ -z "$(ls -A "$corpus")" ]; then
    seed contracts '\000'"2026-01-31T23:59:59Z"'\000'"limit=5&before=9"'\000'"bytes=0-99"'\000'"1000"'\000''{"id":"acme","name":"A","plan":"basic","licences":10}'
    seed update '\001'"2026-01-31T23:59:59.123+01:00"'\000'"since=0&wait=0"'\000'"bytes=-5"'\000'"3"'\000''{"licences":12,"plan":"pro"}'
    seed purge '\002'"1999-12-31T23:59:60Z"'\000'"limit=99999999999999999999"'\000'"bytes=5-"'\000'"0"'\000''{"before":"2026-01-01T00:00:00Z","dry_run":true}'
    seed message '\203'"2026-02-29T00:00:00Z"'\000'"before=3&limit=-1"'\000'"bytes=1-2,3-4"'\000'"10"'\000''{"text":"hi","attachments":[{"blob":"00","filename":"a.pdf"}]}'
    seed group '\004'"2024-02-29T12:00:00z"'\000'"wait=1"'\000'"bytes=9-1"'\000'"18446744073709551615"'\000''{"name":"Team","members":[]}'
    z=0000000000000000000000000000000000000000000000000000000000000000
    seed attachments '\003'"2026-01-31T23:59:59Z"'\000'"before=1"'\000'"bytes=0-0"'\000'"1"'\000''{"text":"x","attachments":[{"blob":"'$z'"},{"blob":"'$z'","filename":null}]}'
    seed members '\005'"2026-01-31T23:59:59-23:59"'\000'"limit="'\000'"bytes=0-"'\000'"1"'\000''{"members":["0000000000000000"]}'
fi

# The target's store lives in a scratch directory, in memory where
# /dev/shm exists, removed when the run ends.
if [ -w /dev/shm ]; then
    BLOBD_FUZZ_DIR=$(mktemp -d /dev/shm/blobd-fuzz.XXXXXX)
else
    BLOBD_FUZZ_DIR=$(mktemp -d /tmp/blobd-fuzz.XXXXXX)
fi
export BLOBD_FUZZ_DIR
trap 'rm -rf "$BLOBD_FUZZ_DIR"' EXIT INT TERM

# -rss_limit_mb bounds memory per input; -timeout flags any input that
# takes longer than 10 s as a hang.
"$out/fuzz_request" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -max_len=65536 -artifact_prefix="$out/request-" \
    -print_final_stats=1 "$corpus"
