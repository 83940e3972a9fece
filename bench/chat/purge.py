"""Purge benchmark: fill one contract with TARGET messages over HTTP, then
POST /v1/contracts/{cid}/purge with `before` in the future, which deletes
them all. Reports the purge's time and blobd's peak RSS during it. Probe
requests of the same contract (a history GET and a message POST) run
every 100 ms during the purge, and their latency is compared with the
same probes on the idle server just before.

The fill runs wrk (-t2 -c16) in chunks of at most a minute until the
contract holds TARGET messages or FILL_SECONDS have passed. When the
budget ends first, the purge runs on what was filled and the report gives
a linear estimate for TARGET, marked as an estimate.

Settings (environment): BENCH_PURGE_MESSAGES (1000000), BENCH_FILL_SECONDS
(600).
"""

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import benchlib as bl  # noqa: E402

POST_BODY = '{"text": "message to be purged"}'
PROBE_INTERVAL_S = 0.1
BASELINE_S = 5
CHUNK_MAX_S = 60
PURGE_TIMEOUT_S = 3600


class Prober(threading.Thread):
    """Sends one request every PROBE_INTERVAL_S and records its latency in
    milliseconds and blobd's RSS."""

    def __init__(self, server, token, method, path, body=None):
        super().__init__(daemon=True)
        self.api = bl.Api(server, token)
        self.pid = server.pid
        self.method = method
        self.path = path
        self.body = body
        self.latencies = []
        self.started = []         # perf_counter() at each request's start
        self.failures = []
        self.max_rss = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            start = time.perf_counter()
            try:
                response = self.api.http.request(
                    self.method, self.api.server.url(self.path),
                    json=self.body, timeout=60)
                if response.status_code >= 300:
                    self.failures.append(response.status_code)
            except bl.requests.RequestException as error:
                self.failures.append(str(error))
            elapsed = time.perf_counter() - start
            self.latencies.append(elapsed * 1000)
            self.started.append(start)
            self.max_rss = max(self.max_rss, bl.rss_bytes(self.pid))
            self.done.wait(max(0.0, PROBE_INTERVAL_S - elapsed))

    def finish(self):
        self.done.set()
        self.join(timeout=90)


def fill(server, tenant, target, budget_s):
    """Post messages until the contract contains `target` messages or
    `budget_s` has passed; return (messages, seconds, rate of each chunk)."""
    url = server.url(f"/v1/conversations/{tenant.gid}/messages")
    start = time.monotonic()
    count = tenant.view()["message_count"]
    rate = 2000.0
    chunk_rates = []
    while count < target:
        left_s = budget_s - (time.monotonic() - start)
        if left_s < 2:
            break
        want_s = (target - count) / max(rate, 1.0) + 1
        seconds = int(max(2, min(CHUNK_MAX_S, want_s, left_s)))
        summary = bl.run_wrk(url, seconds, threads=2, connections=16,
                             token=tenant.user.token, method="POST",
                             body=POST_BODY)
        if summary["non_2xx"] or summary["socket_errors"]:
            bl.say(f"fill: {summary['non_2xx']} answers outside 2xx, "
                   f"{summary['socket_errors']} socket errors")
        rate = summary["requests_per_s"]
        chunk_rates.append(rate)
        count = tenant.view()["message_count"]
        bl.say(f"fill: {count} messages after "
               f"{time.monotonic() - start:.0f} s ({rate:.0f} posts/s)")
    return count, time.monotonic() - start, chunk_rates


def probe_pair(server, tenant):
    history = Prober(server, tenant.user.token, "GET",
                     f"/v1/conversations/{tenant.gid}/messages?limit=50")
    post = Prober(server, tenant.admin.token, "POST",
                  f"/v1/conversations/{tenant.gid}/messages",
                  body={"text": "posted during the purge"})
    history.start()
    post.start()
    return history, post


def main():
    target = bl.env_int("BENCH_PURGE_MESSAGES", 1_000_000)
    budget_s = bl.env_int("BENCH_FILL_SECONDS", 600)
    with bl.Bench("purge") as bench:
        server = bench.blobd({"max_connections_per_ip": 256})
        tenant = server.new_contract()
        count, fill_s, chunk_rates = fill(server, tenant, target, budget_s)

        baseline = probe_pair(server, tenant)
        time.sleep(BASELINE_S)
        for prober in baseline:
            prober.finish()

        before_count = tenant.view()["message_count"]
        rss_before = bl.rss_bytes(server.pid)
        bl.reset_peak_rss(server.pid)
        during = probe_pair(server, tenant)
        start = time.perf_counter()
        answer = tenant.admin.json(
            "POST", f"/v1/contracts/{tenant.cid}/purge", 200,
            json={"before": "2100-01-01T00:00:00Z", "dry_run": False},
            timeout=PURGE_TIMEOUT_S)
        purge_s = time.perf_counter() - start
        for prober in during:
            prober.finish()
        peak = bl.peak_rss_bytes(server.pid)
        after_count = tenant.view()["message_count"]
        bl.say(f"purge of {before_count} messages: {purge_s:.1f} s, "
               f"answer {answer}")
        report(target, count, fill_s, chunk_rates, before_count,
               after_count, answer, (start, purge_s), rss_before, peak,
               baseline, during)


def probe_row(name, prober, window=None):
    """Return a table row of the probe's latencies; with the purge's
    (start, seconds) as `window`, also the max of the requests sent in
    its first and in its last quarter."""
    lat = prober.latencies
    row = [name, len(lat), f"{bl.percentile(lat, 50):.1f}",
           f"{bl.percentile(lat, 99):.1f}", f"{max(lat):.1f}"]
    if window is None:
        return row + ["", "", len(prober.failures)]
    start, seconds = window
    quarters = []
    for low, high in ((0.0, 0.25), (0.75, 1.0)):
        part = [ms for ms, t in zip(lat, prober.started)
                if low <= (t - start) / seconds < high]
        quarters.append(f"{max(part):.1f}" if part else "-")
    return row + quarters + [len(prober.failures)]


def report(target, count, fill_s, chunk_rates, before_count, after_count,
           answer, window, rss_before, peak, baseline, during):
    purge_s = window[1]
    rows = [
        ["messages in the contract at the purge", f"{before_count}"],
        ["fill: seconds, mean posts/s",
         f"{fill_s:.0f} s, {count / fill_s:.0f} posts/s (first chunk "
         f"{chunk_rates[0]:.0f}, last {chunk_rates[-1]:.0f})"
         if chunk_rates else "no fill"],
        ["purge answer", f"{answer}"],
        ["purge seconds", f"{purge_s:.1f}"],
        ["messages purged per second",
         f"{answer['messages_deleted'] / purge_s:.0f}"],
        ["messages left after (posted during the purge)",
         f"{after_count}"],
        ["blobd RSS before / peak during (VmHWM)",
         f"{rss_before / 1e6:.0f} MB / {peak / 1e6:.0f} MB"],
    ]
    if before_count < target:
        estimate = purge_s * target / max(before_count, 1)
        rows.append([f"ESTIMATE for {target} messages (linear)",
                     f"{estimate:.0f} s; the fill budget ended at "
                     f"{before_count} messages"])
    bl.print_table(f"purge ({bl.machine_line()})", ["figure", "value"],
                   rows)
    history, post = during
    base_history, base_post = baseline
    bl.print_table(
        "purge: probe requests of the same contract every 100 ms (ms)",
        ["probe", "requests", "p50", "p99", "max", "max in 1st quarter",
         "max in last quarter", "failed"],
        [probe_row("GET history, idle before", base_history),
         probe_row("GET history, during the purge", history, window),
         probe_row("POST message, idle before", base_post),
         probe_row("POST message, during the purge", post, window)])


if __name__ == "__main__":
    main()
