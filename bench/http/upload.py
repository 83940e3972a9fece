"""Upload benchmark: one large non-image file through POST /v1/blobs,
against the floor of what storing it takes on this machine, which is
hashing it (`openssl dgst -sha256`) plus writing a copy with fsync
(`dd conv=fsync`).

Each round runs the three steps one after the other on the same file, which
stays in the page cache. Each blobd upload goes to a new contract, so none
is deduplicated. The figure per step is the median over the rounds.

Settings (environment): BENCH_UPLOAD_MIB (1024), BENCH_ROUNDS (3).
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import benchlib as bl  # noqa: E402

CHUNK = 1 << 20


def make_random_file(path, size):
    """Write `size` random bytes to `path` and return their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left > 0:
            chunk = os.urandom(min(CHUNK, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def timed(argv):
    """Run `argv` and return (seconds, stdout); fail on a non-zero exit."""
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): "
                         f"{result.stderr[-500:]}")
    return seconds, result.stdout


def upload_once(server, tenant, path, expected_id, workdir):
    """Upload `path` with curl; return (curl's time_total in seconds,
    blobd's peak RSS in bytes)."""
    out = workdir / "answer.json"
    # curl 7.88 cannot load a 1 GiB file for --data-binary (it stops with
    # "out of memory"), so -T streams the file, with -X POST as the method.
    argv = ["curl", "-sS", "-o", str(out), "-w", "%{http_code} %{time_total}",
            "-H", f"Authorization: Bearer {tenant.user.token}",
            "-H", "Content-Type: application/octet-stream",
            "-X", "POST", "-T", str(path), server.url("/v1/blobs")]
    bl.reset_peak_rss(server.pid)
    _wall, stdout = timed(argv)
    peak = bl.peak_rss_bytes(server.pid)
    status, seconds = stdout.split()
    answer = out.read_text()
    if status != "201" or expected_id not in answer:
        raise SystemExit(f"upload failed with status {status}: "
                         f"{answer[:300]}")
    return float(seconds), peak


def main():
    size = bl.env_int("BENCH_UPLOAD_MIB", 1024) << 20
    rounds = bl.env_int("BENCH_ROUNDS", 3)
    with bl.Bench("upload") as bench:
        big = bench.dir / "random.bin"
        copy = bench.dir / "copy.bin"
        bl.say(f"writing {size >> 20} MiB of random bytes to {big}")
        digest = make_random_file(big, size)
        server = bench.blobd({"max_upload_bytes": 2 * size})
        rss_idle = bl.rss_bytes(server.pid)
        sha_s, copy_s, blobd_s, peaks = [], [], [], []
        for n in range(rounds):
            seconds, stdout = timed(["openssl", "dgst", "-sha256",
                                     str(big)])
            if digest not in stdout:
                raise SystemExit(f"openssl printed another digest: {stdout}")
            sha_s.append(seconds)
            seconds, _ = timed(["dd", f"if={big}", f"of={copy}", "bs=1M",
                                "conv=fsync", "status=none"])
            copy_s.append(seconds)
            copy.unlink()
            tenant = server.new_contract()
            seconds, peak = upload_once(server, tenant, big, digest,
                                        bench.dir)
            blobd_s.append(seconds)
            peaks.append(peak)
            bl.say(f"round {n + 1}/{rounds}: sha256 {sha_s[-1]:.2f} s, "
                   f"copy {copy_s[-1]:.2f} s, blobd {blobd_s[-1]:.2f} s, "
                   f"peak RSS {peak / 1e6:.0f} MB")
        big.unlink()
        report(size, rounds, sha_s, copy_s, blobd_s, peaks, rss_idle)


def report(size, rounds, sha_s, copy_s, blobd_s, peaks, rss_idle):
    mb = size / 1e6
    floor = bl.median([a + b for a, b in zip(sha_s, copy_s)])
    rows = []
    for name, runs in (("openssl dgst -sha256", sha_s),
                       ("dd bs=1M conv=fsync", copy_s),
                       ("floor: sha256 + copy", [a + b for a, b in
                                                 zip(sha_s, copy_s)]),
                       ("blobd POST /v1/blobs (curl -T)", blobd_s)):
        m = bl.median(runs)
        rows.append([name, f"{m:.2f}", f"{mb / m:.0f}",
                     f"{bl.ratio(m, floor):.2f}",
                     " ".join(f"{r:.2f}" for r in runs)])
    bl.print_table(
        f"upload: {size >> 20} MiB of random bytes, median of {rounds} "
        f"rounds ({bl.machine_line()})",
        ["step", "seconds", "MB/s", "time / floor", "runs (s)"], rows)
    print(f"\nblobd peak RSS during the upload (VmHWM, reset before it): "
          f"median {bl.median(peaks) / 1e6:.0f} MB, max "
          f"{max(peaks) / 1e6:.0f} MB; RSS before the first upload "
          f"{rss_idle / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
