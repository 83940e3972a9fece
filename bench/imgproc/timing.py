#!/usr/bin/python3
"""Time imgproc, vipsthumbnail and ImageMagick on one image, interleaved.

Each round runs the three tools once, one after the other, so that load
from other processes on the machine hits all three alike. Per tool it
reports the median wall time, the median CPU time (user + system) and the
largest peak RSS, all taken from wait4(2), the call /usr/bin/time uses.
Every tool runs on one thread (VIPS_CONCURRENCY=1, MAGICK_THREAD_LIMIT=1)
and writes JPEG at quality 90.

Usage: timing.py --cli PATH/imgproc_cli --work DIR [--runs N] IMAGE
Prints one Markdown table row.
"""
import argparse
import os
import statistics
import subprocess
import time


def measure(argv, env):
    """Run argv once; return (wall seconds, CPU seconds, peak RSS KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("%s failed with status %d" %
                         (" ".join(argv), proc.returncode))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("image")
    args = parser.parse_args()

    ext = os.path.splitext(args.image)[1]
    quality = "[Q=90]" if ext in (".jpg", ".jpeg") else ""
    out = os.path.join(args.work, "timing_out")
    env = dict(os.environ, VIPS_CONCURRENCY="1", MAGICK_THREAD_LIMIT="1")
    tools = [
        [args.cli, args.image, out + "_imgproc" + ext],
        ["vipsthumbnail", args.image, "--size", "1920x1080", "-o",
         out + "_vips" + ext + quality],
        ["/usr/bin/convert", args.image, "-resize", "1920x1080",
         "-quality", "90", out + "_im" + ext],
    ]
    samples = [[] for _ in tools]
    for tool, argv in enumerate(tools):
        measure(argv, env)      # warm-up: page cache, shared libraries
    for _ in range(args.runs):
        for tool, argv in enumerate(tools):
            samples[tool].append(measure(argv, env))

    wall = [statistics.median(s[0] for s in runs) * 1000 for runs in samples]
    cpu = [statistics.median(s[1] for s in runs) * 1000 for runs in samples]
    rss = [max(s[2] for s in runs) / 1024 for runs in samples]
    print("| %s | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f "
          "| %.0f | %.0f | %.0f |" %
          (os.path.basename(args.image), wall[0], wall[1], wall[2],
           wall[0] / wall[1], cpu[0], cpu[1], cpu[0] / cpu[1],
           rss[0], rss[1], rss[2]))


if __name__ == "__main__":
    main()
