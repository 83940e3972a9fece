"""Download benchmark: GET /v1/blobs/{id} with a session token against
nginx serving the same bytes as a static file, with the same wrk load
(2 threads, 32 connections) on the same machine.

Each round runs blobd then nginx for each blob size; the figures are the
medians over the rounds. wrk shares the CPUs with the server, as a client
on the same host would.

Settings (environment): BENCH_ROUNDS (3), BENCH_SECONDS (10 per wrk run).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import benchlib as bl  # noqa: E402

SIZES = (("1 MiB", 1 << 20), ("4 KiB", 4 << 10))


def main():
    rounds = bl.env_int("BENCH_ROUNDS", 3)
    seconds = bl.env_int("BENCH_SECONDS", 10)
    with bl.Bench("get") as bench:
        # nginx workers run as an unprivileged user: they need to reach
        # and read the files.
        bench.dir.chmod(0o711)
        root = bench.subdir("www")
        root.chmod(0o755)
        server = bench.blobd()
        tenant = server.new_contract()
        targets = []
        for label, size in SIZES:
            data = os.urandom(size)
            view = tenant.user.json("POST", "/v1/blobs", 201, data=data)
            name = f"{view['id']}.bin"
            (root / name).write_bytes(data)
            (root / name).chmod(0o644)
            got = tenant.user.call("GET", f"/v1/blobs/{view['id']}", 200)
            if got.content != data:
                raise SystemExit("blobd returned other bytes than uploaded")
            targets.append((label, server.url(f"/v1/blobs/{view['id']}"),
                            f"/{name}"))
        nginx = bench.nginx(root)
        for _label, _url, nginx_path in targets:
            got = bl.requests.get(nginx.url(nginx_path), timeout=10)
            if got.status_code != 200 or \
                    got.content != (root / nginx_path[1:]).read_bytes():
                raise SystemExit(f"nginx returned status {got.status_code} "
                                 f"or other bytes for {nginx_path}")
        results = {}
        for n in range(rounds):
            for label, blobd_url, nginx_path in targets:
                for name, url, token in (
                        ("blobd", blobd_url, tenant.user.token),
                        ("nginx", nginx.url(nginx_path), None)):
                    summary = bl.run_wrk(url, seconds, threads=2,
                                         connections=32, token=token)
                    check_clean(name, label, summary)
                    results.setdefault((label, name), []).append(summary)
                    bl.say(f"round {n + 1}/{rounds} {label} {name}: "
                           f"{summary['requests_per_s']:.0f} req/s, p99 "
                           f"{summary['p99_ms']:.2f} ms")
            # The floor of blobd's HTTP layer: a route with no token and no
            # store access, under the same load.
            summary = bl.run_wrk(server.url("/healthz"), seconds, threads=2,
                                 connections=32)
            check_clean("blobd", "/healthz", summary)
            results.setdefault("healthz", []).append(summary)
        report(results, rounds, seconds)


def check_clean(name, label, summary):
    if summary["non_2xx"] or summary["socket_errors"]:
        bl.say(f"WARNING {name} {label}: {summary['non_2xx']} answers "
               f"outside 2xx/3xx, {summary['socket_errors']} socket errors")


def report(results, rounds, seconds):
    rows = []
    for label, _size in SIZES:
        medians = {}
        for name in ("blobd", "nginx"):
            runs = results[(label, name)]
            medians[name] = {
                key: bl.median([r[key] for r in runs])
                for key in ("requests_per_s", "p50_ms", "p99_ms")}
            medians[name]["errors"] = sum(r["non_2xx"] + r["socket_errors"]
                                          for r in runs)
            medians[name]["runs"] = " ".join(
                f"{r['requests_per_s']:.0f}" for r in runs)
        for name in ("blobd", "nginx"):
            m = medians[name]
            rows.append([
                label, name, f"{m['requests_per_s']:.0f}",
                f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}",
                f"{bl.ratio(m['requests_per_s'], medians['nginx']['requests_per_s']):.2f}",
                m["errors"], m["runs"]])
    bl.print_table(
        f"get: wrk -t2 -c32 -d{seconds}s, median of {rounds} rounds "
        f"({bl.machine_line()})",
        ["blob", "server", "req/s", "p50 ms", "p99 ms", "req/s / nginx",
         "errors", "runs (req/s)"], rows)
    healthz = results["healthz"]
    print(f"\nblobd GET /healthz (no token, no store) under the same load: "
          f"median {bl.median([r['requests_per_s'] for r in healthz]):.0f} "
          f"req/s, p99 {bl.median([r['p99_ms'] for r in healthz]):.2f} ms")


if __name__ == "__main__":
    main()
