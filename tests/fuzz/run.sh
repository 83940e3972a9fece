#!/bin/sh
# Build the imgproc fuzz target with clang (libFuzzer, ASan, UBSan) against
# the imgproc sources and run it for a bounded time.
#
# Usage: tests/fuzz/run.sh [SECONDS]   (default 60; run from anywhere)
# Seeds: every JPEG and PNG of $BLOBD_CORPUS (default ../shared/corpus/images
# relative to the repository root), copied into a scratch corpus under
# build-fuzz/, which also keeps what libFuzzer finds between runs. Crashes
# are written to build-fuzz/crash-*; turn each one into a regression test.
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
corpus_src=${BLOBD_CORPUS:-../shared/corpus/images}
out=build-fuzz
mkdir -p "$out/corpus"

clang -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iimgproc -o "$out/fuzz_imgproc" tests/fuzz/fuzz_imgproc.c imgproc/*.c \
    -lturbojpeg -ljpeg -lpng16 -lz -llcms2 -lm

if [ -d "$corpus_src" ]; then
    for f in "$corpus_src"/*; do
        case "$f" in
        *.md|*SHA256SUMS) continue ;;
        esac
        cp -n "$f" "$out/corpus/" 2>/dev/null || true
    done
fi

# -rss_limit_mb bounds memory per input; -timeout flags any input that
# takes longer than 10 s as a hang.
exec "$out/fuzz_imgproc" -max_total_time="$seconds" -rss_limit_mb=1024 \
    -timeout=10 -max_len=1048576 -artifact_prefix="$out/" \
    -print_final_stats=1 "$out/corpus"
