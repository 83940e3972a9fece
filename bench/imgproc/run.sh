#!/bin/sh
# Benchmark imgproc against vipsthumbnail and ImageMagick on the same files,
# side by side in one run: median wall and CPU time of interleaved runs,
# the ratios to vipsthumbnail and peak RSS (timing.py, which reads them
# from wait4 as /usr/bin/time does), then SSIM (ssim.py).
#
# Usage: bench/imgproc/run.sh [RUNS]   (default 10 timed rounds)
# Test images are made from corpus photos with ImageMagick into a
# temporary folder that is removed at the end; nothing is written into the
# repository except build-bench/imgproc_cli. Every tool runs on one thread:
# VIPS_CONCURRENCY=1, MAGICK_THREAD_LIMIT=1. All JPEG output is quality 90.
set -eu

runs=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
sh tools/install-deps.sh bench   # vipsthumbnail, ImageMagick, numpy
corpus=${BLOBD_CORPUS:-../shared/corpus/images}
magick=/usr/bin/convert         # the real ImageMagick 6, not a wrapper
py=/usr/bin/python3
work=$(mktemp -d /tmp/imgproc-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

mkdir -p build-bench
cc -std=c11 -D_GNU_SOURCE -O2 -g -Iimgproc -o build-bench/imgproc_cli \
    bench/imgproc/imgproc_cli.c imgproc/*.c \
    -lturbojpeg -ljpeg -lpng16 -lz -llcms2 -lm
cli=$root/build-bench/imgproc_cli

# Photographic content: a real corpus photo, upright, enlarged, with mild
# Gaussian noise so that it does not compress like a smooth enlargement.
photo="$corpus/exif_portrait_6_full_1800x1200.jpg"
make_photo() {      # size, output, extra options
    size=$1 out=$2
    shift 2
    "$magick" "$photo" -auto-orient -resize "$size!" -attenuate 0.25 \
        +noise Gaussian -strip "$@" "$out"
}
echo "making test images in $work" >&2
make_photo 4000x3000 "$work/baseline_12mp.jpg" -quality 90 \
    -sampling-factor 2x2
make_photo 6000x4000 "$work/baseline_24mp.jpg" -quality 90 \
    -sampling-factor 2x2
make_photo 4000x3000 "$work/progressive_12mp.jpg" -quality 90 \
    -sampling-factor 2x2 -interlace JPEG
make_photo 4000x3000 "$work/photo_12mp.png"
# A screenshot: flat colours, sharp edges and alpha, 2560x1920.
"$magick" "$corpus/rgba_2048x1536_idot.png" -filter point \
    -resize 2560x1920! "$work/screenshot.png"

echo "| file | imgproc ms | vipsthumbnail ms | convert ms |" \
    "imgproc / vips (wall) | imgproc CPU ms | vips CPU ms |" \
    "imgproc / vips (CPU) | RSS imgproc MiB | RSS vips MiB |" \
    "RSS convert MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for f in baseline_12mp.jpg baseline_24mp.jpg progressive_12mp.jpg \
         photo_12mp.png screenshot.png; do
    "$py" bench/imgproc/timing.py --cli "$cli" --work "$work" \
        --runs "$runs" "$work/$f"
done

echo
"$py" bench/imgproc/ssim.py --cli "$cli" --work "$work" --zone-plate \
    "$work/baseline_12mp.jpg" "$work/baseline_24mp.jpg" \
    "$work/progressive_12mp.jpg" "$work/photo_12mp.png" \
    "$corpus/huge_real_jpeg_9643x10328.jpg" \
    "$corpus/exif_portrait_6_full_1800x1200.jpg"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo |
    cut -d: -f2 | sed 's/^ //'), load average at the end:" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
