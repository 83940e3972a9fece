"""Message benchmark: how many messages blobd takes per second, how fast a
waiting sync delivers one, and what waiting syncs cost.

1. Parked syncs: PARKED raw connections send GET /v1/sync?wait=60 and wait.
   blobd's thread count and RSS are read before and while they wait. Then
   one message wakes them all, and the time until the last response
   arrives is measured (the fan-out).
2. Delivery latency: one device long-polls GET /v1/sync?since=..&wait=30
   while another client posts PROBES messages into its conversation, one
   at a time. Latency is the time from the POST's 201 (and from sending
   the POST) to the sync answer that carries the message. Measured on an
   idle server, then while wrk posts into another conversation of the same
   contract, which wakes the waiting sync on every message.
3. Post throughput: wrk -t2 -c16 POSTs /v1/conversations/{gid}/messages,
   alternately with no waiting sync and with PARKED waiting syncs of
   another conversation of the contract, which every post wakes.

Settings (environment): BENCH_ROUNDS (3), BENCH_SECONDS (10 per wrk run),
BENCH_PARKED (300), BENCH_PROBES (200).
"""

import selectors
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import benchlib as bl  # noqa: E402

POST_BODY = '{"text": "bench load message"}'
CONNECTIONS = 16
WAIT_SECONDS = 30
# Pause between a delivery and the next probe, so the device is waiting
# again when the probe is posted.
PROBE_GAP_S = 0.02
ANSWER_TIMEOUT_S = 20


def current_seq(api):
    view = api.json("GET", "/v1/sync?since=0&limit=1000", 200)
    # With fewer than `limit` items, next_since is the contract's seq.
    if len(view["messages"]) + len(view["deleted"]) >= 1000:
        raise SystemExit("the probe conversation contains 1000 or more "
                         "messages; use a new contract")
    return view["next_since"]


class ParkedSyncs:
    """Raw sockets that each hold one GET /v1/sync with wait=60."""

    def __init__(self, server, token, count, since):
        self.sockets = []
        request = (f"GET /v1/sync?since={since}&wait=60 HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{server.port}\r\n"
                   f"Authorization: Bearer {token}\r\n"
                   "Connection: close\r\n\r\n").encode()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port),
                                            timeout=10)
            sock.sendall(request)
            self.sockets.append(sock)

    def answered(self):
        """Return how many sockets have a response (or a close) to read."""
        sel = selectors.DefaultSelector()
        for sock in self.sockets:
            sel.register(sock, selectors.EVENT_READ)
        ready = sel.select(timeout=0)
        sel.close()
        return len(ready)

    def read_all(self, timeout):
        """Read every response to its end; return (seconds until the last
        one completed, list of status codes)."""
        start = time.perf_counter()
        statuses = []
        sel = selectors.DefaultSelector()
        buffers = {}
        for sock in self.sockets:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            buffers[sock] = bytearray()
        last = start
        deadline = start + timeout
        while buffers and time.perf_counter() < deadline:
            for key, _ in sel.select(timeout=0.5):
                sock = key.fileobj
                chunk = sock.recv(65536)
                if chunk:
                    buffers[sock] += chunk
                    continue
                head = bytes(buffers.pop(sock)[:12]).split()
                statuses.append(int(head[1]) if len(head) > 1 else 0)
                sel.unregister(sock)
                last = time.perf_counter()
        sel.close()
        statuses += [0] * len(buffers)
        return last - start, statuses

    def close(self):
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def park_and_release(server, tenant, count, sample):
    """Park `count` syncs of the user, call `sample()` while they wait,
    then wake them with one message; return (sample's result, still
    waiting before the wake, fan-out seconds, statuses)."""
    since = current_seq(tenant.user)
    parked = ParkedSyncs(server, tenant.user.token, count, since)
    try:
        time.sleep(1.0)
        result = sample()
        waiting = count - parked.answered()
        tenant.admin.json("POST", f"/v1/conversations/{tenant.gid}/messages",
                          201, json={"text": "wake"})
        fan_out, statuses = parked.read_all(ANSWER_TIMEOUT_S)
    finally:
        parked.close()
    return result, waiting, fan_out, statuses


class SyncDevice(threading.Thread):
    """A device that long-polls sync and stamps each message's arrival."""

    def __init__(self, api, since):
        super().__init__(daemon=True)
        self.api = api
        self.since = since
        self.arrivals = {}
        self.cond = threading.Condition()
        self.stop = False
        self.error = None

    def run(self):
        try:
            while not self.stop:
                view = self.api.json(
                    "GET", f"/v1/sync?since={self.since}&wait={WAIT_SECONDS}",
                    200, timeout=WAIT_SECONDS + 30)
                now = time.perf_counter()
                with self.cond:
                    for message in view["messages"]:
                        self.arrivals[message["id"]] = now
                    self.cond.notify_all()
                self.since = view["next_since"]
        except BaseException as error:  # reported by the main thread
            self.error = error

    def wait_for(self, mid, timeout):
        with self.cond:
            self.cond.wait_for(lambda: mid in self.arrivals or self.error,
                               timeout)
            return self.arrivals.get(mid)


def measure_delivery(tenant, probes, keep_going=lambda: True):
    """Post up to `probes` messages while `keep_going()`; return the lists
    of latencies (from the 201, from sending) in milliseconds."""
    device = SyncDevice(bl.Api(tenant.server, tenant.user.token),
                        current_seq(tenant.user))
    device.start()
    from_201, from_send = [], []
    path = f"/v1/conversations/{tenant.gid}/messages"
    try:
        time.sleep(0.2)
        for n in range(probes):
            if not keep_going():
                break
            time.sleep(PROBE_GAP_S)
            sent = time.perf_counter()
            view = tenant.admin.json("POST", path, 201,
                                     json={"text": f"probe {n}"})
            answered = time.perf_counter()
            arrived = device.wait_for(view["id"], ANSWER_TIMEOUT_S)
            if arrived is None:
                raise SystemExit(f"probe {n} did not arrive by sync within "
                                 f"{ANSWER_TIMEOUT_S} s: {device.error}")
            from_201.append((arrived - answered) * 1000)
            from_send.append((arrived - sent) * 1000)
    finally:
        device.stop = True
        # One more message ends the device's waiting sync at once.
        tenant.admin.json("POST", path, 201, json={"text": "stop"})
        device.join(timeout=WAIT_SECONDS + 30)
    return from_201, from_send


class ThreadSampler(threading.Thread):
    """Reads blobd's Threads count every 0.25 s; keeps the maximum."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_threads = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.max_threads = max(self.max_threads, bl.thread_count(self.pid))
            self.done.wait(0.25)

    def finish(self):
        self.done.set()
        self.join()
        return self.max_threads


def post_load(server, tenant, gid, seconds):
    sampler = ThreadSampler(server.pid)
    sampler.start()
    try:
        summary = bl.run_wrk(
            server.url(f"/v1/conversations/{gid}/messages"), seconds,
            threads=2, connections=CONNECTIONS, token=tenant.admin.token,
            method="POST", body=POST_BODY)
    finally:
        summary["max_threads"] = sampler.finish()
    return summary


def main():
    rounds = bl.env_int("BENCH_ROUNDS", 3)
    seconds = bl.env_int("BENCH_SECONDS", 10)
    parked_count = bl.env_int("BENCH_PARKED", 300)
    probes = bl.env_int("BENCH_PROBES", 200)
    with bl.Bench("messages") as bench:
        server = bench.blobd({"max_connections_per_ip": 4 * parked_count,
                              "max_connections": 8 * parked_count})
        tenant = server.new_contract()
        # Only the admin belongs to the load conversation, so the user's
        # syncs are woken by its messages but have nothing to return.
        load_gid = tenant.new_group([tenant.admin_uid])

        # 1. Parked syncs on an idle server.
        idle = (bl.thread_count(server.pid), bl.rss_bytes(server.pid))
        during, waiting, fan_out, statuses = park_and_release(
            server, tenant, parked_count,
            lambda: (bl.thread_count(server.pid), bl.rss_bytes(server.pid)))
        after = (bl.thread_count(server.pid), bl.rss_bytes(server.pid))
        bl.say(f"{waiting}/{parked_count} syncs waited; threads "
               f"{idle[0]} -> {during[0]}; fan-out {fan_out * 1000:.0f} ms")
        park_rows = [
            ["before", idle[0], f"{idle[1] / 1e6:.0f}", ""],
            [f"{parked_count} syncs parked ({waiting} still waiting after "
             "1 s)", during[0], f"{during[1] / 1e6:.0f}", ""],
            ["one message wakes them", "", "",
             f"all {statuses.count(200)} answered 200 in "
             f"{fan_out * 1000:.0f} ms"],
            ["after", after[0], f"{after[1] / 1e6:.0f}", ""]]

        # 2. Delivery latency, idle and under post load.
        idle_lat = measure_delivery(tenant, probes)
        bl.say(f"idle delivery: {len(idle_lat[0])} probes")
        load_seconds = max(30, seconds)
        load_result = {}
        load_thread = threading.Thread(
            target=lambda: load_result.update(
                post_load(server, tenant, load_gid, load_seconds)),
            daemon=True)
        load_thread.start()
        time.sleep(1.0)
        load_lat = measure_delivery(tenant, probes, load_thread.is_alive)
        load_thread.join(timeout=load_seconds + 90)
        bl.say(f"delivery under load: {len(load_lat[0])} probes, load "
               f"{load_result.get('requests_per_s', 0):.0f} posts/s")

        # 3. Post throughput without and with parked syncs.
        plain, with_parked = [], []
        for n in range(rounds):
            plain.append(post_load(server, tenant, load_gid, seconds))
            summary, _waiting, _fan, _st = park_and_release(
                server, tenant, parked_count,
                lambda: post_load(server, tenant, load_gid, seconds))
            with_parked.append(summary)
            bl.say(f"round {n + 1}/{rounds}: "
                   f"{plain[-1]['requests_per_s']:.0f} posts/s plain, "
                   f"{with_parked[-1]['requests_per_s']:.0f} with "
                   f"{parked_count} parked syncs")
        report(rounds, seconds, parked_count, plain, with_parked,
               idle_lat, load_lat, load_result, park_rows)


def report(rounds, seconds, parked_count, plain, with_parked, idle_lat,
           load_lat, load_result, park_rows):
    base = bl.median([s["requests_per_s"] for s in plain])
    rows = []
    for name, runs in (("no waiting sync", plain),
                       (f"{parked_count} waiting syncs woken by each post",
                        with_parked)):
        rate = bl.median([s["requests_per_s"] for s in runs])
        rows.append([
            name, f"{rate:.0f}",
            f"{bl.median([s['p50_ms'] for s in runs]):.2f}",
            f"{bl.median([s['p99_ms'] for s in runs]):.2f}",
            f"{bl.ratio(rate, base):.2f}",
            sum(s["non_2xx"] + s["socket_errors"] for s in runs),
            max(s["max_threads"] for s in runs),
            " ".join(f"{s['requests_per_s']:.0f}" for s in runs)])
    bl.print_table(
        f"messages: posts per second, wrk -t2 -c{CONNECTIONS} -d{seconds}s, "
        f"median of {rounds} rounds ({bl.machine_line()})",
        ["case", "posts/s", "p50 ms", "p99 ms", "rate / no sync", "errors",
         "max threads", "runs (posts/s)"], rows)

    rows = []
    load_rate = load_result.get("requests_per_s", 0)
    for name, (from_201, from_send) in (
            ("idle server", idle_lat),
            (f"during {load_rate:.0f} posts/s into another conversation",
             load_lat)):
        rows.append([name, len(from_201),
                     f"{bl.percentile(from_201, 50):.2f}",
                     f"{bl.percentile(from_201, 99):.2f}",
                     f"{max(from_201):.2f}",
                     f"{bl.percentile(from_send, 50):.2f}",
                     f"{bl.percentile(from_send, 99):.2f}"])
    bl.print_table(
        "messages: sync delivery latency (ms; negative when the sync answer "
        "arrives before the poster reads its 201)",
        ["case", "messages", "p50 from 201", "p99 from 201", "max from 201",
         "p50 from send", "p99 from send"], rows)

    bl.print_table(
        "messages: waiting syncs and blobd's threads",
        ["state", "threads", "RSS MB", "wake"], park_rows)


if __name__ == "__main__":
    main()
