"""Image upload benchmark: a 12-megapixel JPEG through POST /v1/blobs
(the whole HTTP path: receive, hash, decode, rescale to fit 1920x1080,
encode, store) against `vipsthumbnail --size 1920x1080` on one thread
(VIPS_CONCURRENCY=1) on the same file, both writing quality 90 without
metadata.

The test photo is a real photo of the corpus, upscaled to 4032x3024 with
Gaussian noise by ImageMagick, so that it compresses like a camera photo.
Each round runs vipsthumbnail, then a blobd upload to a new contract, so
nothing is deduplicated. Both are timed as the wall time of the process,
startup included. The figures are medians over the rounds.

Settings (environment): BENCH_IMAGE_RUNS (5), BLOBD_CORPUS.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import benchlib as bl  # noqa: E402

SOURCE_PHOTO = "exif_portrait_6_full_1800x1200.jpg"
WIDTH, HEIGHT = 4032, 3024
# blobd encodes at quality 90 (IMG_JPEG_QUALITY in imgproc/img_int.h).
QUALITY = 90


def make_photo(source, target):
    """Upscale `source` to WIDTH x HEIGHT with noise and no metadata."""
    geometry = f"{WIDTH}x{HEIGHT}"
    subprocess.run(
        ["/usr/bin/convert", str(source), "-resize", f"{geometry}^",
         "-gravity", "center", "-extent", geometry, "-attenuate", "0.4",
         "+noise", "Gaussian", "-strip", "-quality", "92", str(target)],
        check=True, timeout=120)


def wall_time(argv, env=None):
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env,
                            timeout=120)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): "
                         f"{result.stderr[-500:]}")
    return seconds, result.stdout


def main():
    runs = bl.env_int("BENCH_IMAGE_RUNS", 5)
    with bl.Bench("image") as bench:
        photo = bench.dir / "photo-12mp.jpg"
        make_photo(bl.CORPUS_DIR / SOURCE_PHOTO, photo)
        thumb = bench.dir / "thumb.jpg"
        answer = bench.dir / "answer.json"
        vips_env = dict(os.environ, VIPS_CONCURRENCY="1")
        server = bench.blobd()
        vips_s, blobd_s, curl_s, peaks = [], [], [], []
        for n in range(runs):
            seconds, _ = wall_time(
                ["vipsthumbnail", "--size", "1920x1080",
                 "-o", f"{thumb}[Q={QUALITY},strip]", str(photo)],
                env=vips_env)
            vips_s.append(seconds)
            tenant = server.new_contract()
            bl.reset_peak_rss(server.pid)
            seconds, stdout = wall_time(
                ["curl", "-sS", "-o", str(answer),
                 "-w", "%{http_code} %{time_total}",
                 "-H", f"Authorization: Bearer {tenant.user.token}",
                 "-H", "Content-Type: image/jpeg",
                 "--data-binary", f"@{photo}", server.url("/v1/blobs")])
            peaks.append(bl.peak_rss_bytes(server.pid))
            status, transfer = stdout.split()
            if status != "201":
                raise SystemExit(f"upload failed with status {status}: "
                                 f"{answer.read_text()[:300]}")
            blobd_s.append(seconds)
            curl_s.append(float(transfer))
            bl.say(f"run {n + 1}/{runs}: vipsthumbnail {vips_s[-1]:.3f} s, "
                   f"blobd {blobd_s[-1]:.3f} s")
        view = json.loads(answer.read_text())
        thumb_size = thumb.stat().st_size
        report(photo, runs, vips_s, blobd_s, curl_s, peaks, view,
               thumb_size)


def report(photo, runs, vips_s, blobd_s, curl_s, peaks, view, thumb_size):
    vips_m = bl.median(vips_s)
    rows = []
    for name, values in (("vipsthumbnail, 1 thread (wall)", vips_s),
                         ("blobd upload, curl (wall)", blobd_s),
                         ("blobd upload, curl time_total", curl_s)):
        m = bl.median(values)
        rows.append([name, f"{m * 1000:.0f}", f"{bl.ratio(m, vips_m):.2f}",
                     " ".join(f"{v * 1000:.0f}" for v in values)])
    bl.print_table(
        f"image: {WIDTH}x{HEIGHT} JPEG of {photo.stat().st_size / 1e6:.1f} "
        f"MB to fit 1920x1080, median of {runs} runs ({bl.machine_line()})",
        ["step", "ms", "time / vipsthumbnail", "runs (ms)"], rows)
    print(f"\nblobd stored {view['width']}x{view['height']}, "
          f"{view['size']} bytes (vipsthumbnail Q={QUALITY}: {thumb_size} "
          f"bytes); blobd peak RSS during the upload: median "
          f"{bl.median(peaks) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
