"""Crash test: client threads upload new and duplicate documents and photos,
post and delete messages and purge, while blobd is killed with SIGKILL at
random moments and restarted on the same data directory.

After each restart, every upload and message that got a 2xx is checked:
blobs are downloaded and compared by SHA-256, messages are read through
sync, and acknowledged deletions and purges must have taken effect. Then
blobd is stopped with SIGTERM and `blobd check` must accept the data.

A purge in cycle k uses the start of cycle k - 1 as its date. Whatever was
uploaded or posted from cycle k - 1 on must survive it, and older data may
be gone. The test runs CRASH_KILLS cycles (fewer under ASan); set
BLOBD_CRASH_KILLS to run more, for example 200.
"""

import datetime
import os
import random
import threading
import time

import requests

from conftest import (Client, Tenant, jpeg_bytes, photo_image, random_bytes,
                      sha256_hex)

SANITIZED = os.environ.get("BLOBD_SANITIZED") == "1"
KILLS = int(os.environ.get("BLOBD_CRASH_KILLS", "3" if SANITIZED else "8"))
THREADS = 4
REQUEST_TIMEOUT = 30
# SIGKILL comes this many seconds after the workload starts.
KILL_AFTER = (0.3, 1.5)


def rfc3339_ms(seconds):
    """Format a time as RFC 3339 in UTC, cut down to whole milliseconds so
    that the server never reads a later time than the one given."""
    millis = int(seconds * 1000)
    moment = datetime.datetime.fromtimestamp(millis / 1000,
                                             datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


class Model:
    """What blobd returned to the clients, shared by the worker threads.

    blobs: id -> {"data": bytes or None (processed images), "size": int,
    "uploaders": set of user indexes with a 2xx, "cycle": latest cycle of
    a 2xx upload}. messages: id -> the message view plus "cycle". Texts of
    every message sent, with or without a response, are kept in
    `sent_texts`.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.blobs = {}
        self.messages = {}
        self.sent_texts = set()
        self.delete_sent = set()      # message ids, with or without a 204
        self.deleted = set()          # message ids with a 204
        self.purge_cycle = 0          # cutoff cycle of the latest purge sent
        self.purge_acked = True
        self.cycle_start = {}
        self.errors = []
        self.acked = {"uploads": 0, "messages": 0, "deletes": 0,
                      "purges": 0}

    def note_upload(self, view, data, user, cycle):
        with self.lock:
            blob = self.blobs.setdefault(view["id"], {
                "data": data, "size": view["size"], "uploaders": set(),
                "cycle": cycle})
            if not self.must_exist(blob["cycle"]):
                # A purge may have deleted the blob, and its uploaders with
                # it, before this upload stored it again.
                blob["uploaders"] = set()
            blob["uploaders"].add(user)
            blob["cycle"] = max(blob["cycle"], cycle)
            self.acked["uploads"] += 1

    def must_exist(self, cycle):
        """True for data of `cycle` that no purge sent so far may delete."""
        return cycle >= self.purge_cycle


class Worker(threading.Thread):
    """One client thread of one user: a random mix of requests until
    `stop` is set or blobd goes away."""

    def __init__(self, server, model, users, index, gid, cycle, stop, seed):
        super().__init__(daemon=True)
        self.model = model
        self.user = index % len(users)
        self.uid = users[self.user].uid
        self.client = Client(server, users[self.user].token)
        self.index = index
        self.gid = gid
        self.cycle = cycle
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.count = 0

    def run(self):
        try:
            while not self.stop_event.is_set():
                self.step()
        except requests.RequestException:
            pass    # blobd was killed
        except Exception as exc:  # noqa: BLE001, reported by the test
            with self.model.lock:
                self.model.errors.append(f"worker {self.index}: {exc!r}")
        finally:
            self.client.close()

    def expect(self, response, statuses, what):
        if response.status_code not in statuses:
            with self.model.lock:
                self.model.errors.append(
                    f"{what}: {response.status_code} {response.text[:200]}")
            return False
        return True

    def step(self):
        roll = self.rng.random()
        if roll < 0.35:
            self.upload_new()
        elif roll < 0.5:
            self.upload_duplicate()
        elif roll < 0.6:
            self.upload_photo()
        elif roll < 0.85:
            self.post_message()
        else:
            self.delete_message()

    def upload(self, data, keep):
        response = self.client.post("/v1/blobs", data=data,
                                    timeout=REQUEST_TIMEOUT)
        if response.status_code == 503:
            return None
        if self.expect(response, (201,), "upload"):
            view = response.json()
            self.model.note_upload(view, data if keep else None, self.user,
                                   self.cycle)
            return view
        return None

    def upload_new(self):
        size = self.rng.choice([0, 1, 100, 5000, 60_000, 300_000, 1 << 20])
        self.upload(random_bytes(size, seed=self.rng.random()), keep=True)

    def upload_duplicate(self):
        with self.model.lock:
            known = [(blob_id, blob["data"])
                     for blob_id, blob in self.model.blobs.items()
                     if blob["data"] is not None]
        if not known:
            return self.upload_new()
        blob_id, data = self.rng.choice(known)
        view = self.upload(data, keep=True)
        if view is not None and view["id"] != blob_id:
            with self.model.lock:
                self.model.errors.append(f"duplicate upload of {blob_id} "
                                         f"got id {view['id']}")

    def upload_photo(self):
        image = photo_image(self.rng.randrange(64, 400),
                            self.rng.randrange(64, 400),
                            seed=self.rng.randrange(1 << 30), noise=0)
        self.upload(jpeg_bytes(image, quality=80), keep=False)

    def attachable(self):
        """Blobs this user uploaded that the purge of this cycle cannot
        delete, so that attaching them must succeed."""
        with self.model.lock:
            return [blob_id for blob_id, blob in self.model.blobs.items()
                    if self.user in blob["uploaders"] and
                    blob["cycle"] >= self.cycle - 1]

    def post_message(self):
        self.count += 1
        text = (f"cycle {self.cycle} worker {self.index} n {self.count} "
                f"{self.rng.randrange(1 << 40):x}")
        blobs = self.attachable()
        chosen = self.rng.sample(blobs, min(len(blobs),
                                            self.rng.randrange(3)))
        body = {"text": text,
                "attachments": [{"blob": blob_id, "filename": f"f{n}.bin"}
                                for n, blob_id in enumerate(chosen)]}
        with self.model.lock:
            self.model.sent_texts.add(text)
        response = self.client.post(f"/v1/conversations/{self.gid}/messages",
                                    json=body, timeout=REQUEST_TIMEOUT)
        if response.status_code == 503:
            return
        if self.expect(response, (201,), "message post"):
            view = response.json()
            view["cycle"] = self.cycle
            with self.model.lock:
                self.model.messages[view["id"]] = view
                self.model.acked["messages"] += 1

    def delete_message(self):
        with self.model.lock:
            own = [mid for mid, m in self.model.messages.items()
                   if m["cycle"] >= self.cycle - 1 and
                   mid not in self.model.delete_sent and
                   m["sender"] == self.uid]
            if not own:
                return
            mid = self.rng.choice(own)
            self.model.delete_sent.add(mid)
        response = self.client.delete(f"/v1/messages/{mid}",
                                      timeout=REQUEST_TIMEOUT)
        if response.status_code == 503:
            return
        if self.expect(response, (204,), "message delete"):
            with self.model.lock:
                self.model.deleted.add(mid)
                self.model.acked["deletes"] += 1


def purge(operator, cid, model, cycle):
    """Purge everything before the start of cycle - 1."""
    with model.lock:
        model.purge_cycle = max(model.purge_cycle, cycle - 1)
        model.purge_acked = False
        before = model.cycle_start[model.purge_cycle]
    response = operator.post(f"/v1/contracts/{cid}/purge",
                             json={"before": rfc3339_ms(before)},
                             timeout=REQUEST_TIMEOUT)
    if response.status_code == 200:
        with model.lock:
            model.purge_acked = True
            model.acked["purges"] += 1
    elif response.status_code != 503:
        with model.lock:
            model.errors.append(f"purge: {response.status_code} "
                                f"{response.text[:200]}")


def run_cycle(server, model, tenant, gid, cycle, rng):
    stop = threading.Event()
    model.cycle_start[cycle] = time.time()
    workers = [Worker(server, model, tenant.users, index, gid, cycle, stop,
                      rng.random())
               for index in range(THREADS)]
    for worker in workers:
        worker.start()
    operator = Client(server, server.token)
    kill_at = time.monotonic() + rng.uniform(*KILL_AFTER)
    try:
        if cycle >= 1 and rng.random() < 0.7:
            time.sleep(rng.uniform(0, 0.3))
            purge(operator, tenant.cid, model, cycle)
    except requests.RequestException:
        pass    # killed during the purge
    finally:
        operator.close()
    time.sleep(max(0.0, kill_at - time.monotonic()))
    server.kill()
    stop.set()
    for worker in workers:
        worker.join(REQUEST_TIMEOUT + 10)
        assert not worker.is_alive(), "a client thread hangs"


def sync_all(client):
    """Return every message of the client's conversations, oldest first,
    and the purge date that sync reports."""
    messages = []
    since = 0
    while True:
        response = client.get("/v1/sync", params={"since": since,
                                                   "limit": 1000})
        assert response.status_code == 200, response.text
        body = response.json()
        messages += body["messages"]
        if len(body["messages"]) < 1000:
            return messages, body["purged_before"]
        since = body["next_since"]


def verify(server, model, tenant):
    """Check every acknowledged change after a restart."""
    clients = [Client(server, user.token) for user in tenant.users]
    operator = Client(server, server.token)
    try:
        if not model.purge_acked:
            # A purge cut short completes when it is run again.
            before = model.cycle_start[model.purge_cycle]
            response = operator.post(f"/v1/contracts/{tenant.cid}/purge",
                                     json={"before": rfc3339_ms(before)})
            assert response.status_code == 200, response.text
            model.purge_acked = True
        verify_blobs(model, clients)
        verify_messages(model, clients)
    finally:
        for client in clients + [operator]:
            client.close()


def verify_blobs(model, clients):
    for blob_id, blob in model.blobs.items():
        if not model.must_exist(blob["cycle"]):
            continue
        user = min(blob["uploaders"])
        response = clients[user].get(f"/v1/blobs/{blob_id}")
        assert response.status_code == 200, (blob_id, response.text)
        assert sha256_hex(response.content) == blob_id
        assert len(response.content) == blob["size"]
        if blob["data"] is not None:
            assert response.content == blob["data"]


def verify_messages(model, clients):
    messages, purged_before = sync_all(clients[0])
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs)), "sync is not oldest first"
    present = {m["id"]: m for m in messages}
    for message in messages:
        assert message["text"] in model.sent_texts, message
        cycle = int(message["text"].split()[1])
        # The latest purge is complete: nothing sent before its date.
        if model.purge_cycle:
            assert cycle >= model.purge_cycle, message
    if model.purge_cycle:
        assert purged_before is not None
    for mid in model.deleted:
        assert mid not in present, f"deleted message {mid} is back"
    for mid, sent in model.messages.items():
        if not model.must_exist(sent["cycle"]) or mid in model.delete_sent:
            continue
        assert mid in present, f"message {mid} of cycle {sent['cycle']} " \
            f"is lost"
        got = present[mid]
        for field in ("seq", "text", "sender", "conversation",
                      "attachments"):
            assert got[field] == sent[field], (field, got, sent)
        # Attachments stay readable by every member.
        for attachment in got["attachments"]:
            response = clients[1].get(f"/v1/blobs/{attachment['blob']}")
            assert response.status_code == 200
            assert sha256_hex(response.content) == attachment["blob"]


def forget_old(model):
    """Drop what can no longer be checked, so that long runs stay small."""
    for blob_id in [b for b, blob in model.blobs.items()
                    if blob["cycle"] < model.purge_cycle - 1]:
        del model.blobs[blob_id]
    for mid in [m for m, msg in model.messages.items()
                if msg["cycle"] < model.purge_cycle - 1]:
        del model.messages[mid]


def test_crash_sigkill_restart(blobd):
    server = blobd()
    tenant = Tenant(server, users=2)
    gid = tenant.group(tenant.users)["id"]
    model = Model()
    seed = int(os.environ.get("BLOBD_CRASH_SEED", str(time.time_ns())))
    print(f"BLOBD_CRASH_SEED={seed}")
    rng = random.Random(seed)
    for cycle in range(KILLS):
        run_cycle(server, model, tenant, gid, cycle, rng)
        assert not model.errors, model.errors
        server.start()
        verify(server, model, tenant)
        assert server.stop() == 0
        status, output = server.check()
        assert status == 0, f"blobd check after kill {cycle + 1}:\n{output}"
        forget_old(model)
        server.start()
    print(f"kills {KILLS}, answered with 2xx: {model.acked}")
    # The kills must have met a running workload.
    assert model.acked["uploads"] >= KILLS
    assert model.acked["messages"] >= KILLS
