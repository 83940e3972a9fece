"""Purge by date (dry run and real) and the sweep of unreferenced blobs
after their grace period."""

import math
import time
from datetime import datetime, timezone

import pytest

from conftest import Tenant, error_code, random_bytes, wait_until


def rfc3339(epoch_seconds):
    return datetime.fromtimestamp(epoch_seconds, timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def next_second_boundary():
    """Wait until the clock has passed the next whole second; return that
    second as an RFC 3339 time and as Unix seconds."""
    boundary = math.floor(time.time()) + 1
    while time.time() < boundary + 0.05:
        time.sleep(0.05)
    return rfc3339(boundary), boundary


def purge(client, cid, before, dry_run):
    return client.post(f"/v1/contracts/{cid}/purge",
                       json={"before": before, "dry_run": dry_run})


class PurgeScene:
    """Messages and blobs on both sides of a purge date.

    Before the date: a text message, a message with blob X, blob Z that is
    never attached, blob V that a new message attaches, and blob U that an
    old message attaches and that is uploaded again after the date. After
    the date: messages with blobs Y and V, a text message, and blob W that
    is never attached. The purge deletes 3 messages and blobs X and Z.
    """

    def __init__(self, server):
        self.tenant = Tenant(server, users=2)
        self.anna, self.bert = self.tenant.users
        self.group = self.tenant.group([self.anna, self.bert])
        gid = self.group["id"]
        anna = self.anna.client
        self.data = {name: random_bytes(size) for name, size in (
            ("X", 1100), ("Z", 1300), ("V", 1700), ("U", 1900),
            ("Y", 2300), ("W", 2900))}
        self.blob = {}
        for name in ("X", "Z", "V", "U"):
            self.blob[name] = anna.upload_ok(self.data[name])["id"]
        self.old = [
            anna.post_message_ok(gid, "old text"),
            anna.post_message_ok(gid, "old x", [(self.blob["X"], "x.bin")]),
            anna.post_message_ok(gid, "old u", [(self.blob["U"], "u.bin")]),
        ]
        self.before, self.before_epoch = next_second_boundary()
        for name in ("Y", "W"):
            self.blob[name] = anna.upload_ok(self.data[name])["id"]
        anna.upload_ok(self.data["U"])
        self.new = [
            self.bert.client.post_message_ok(gid, "new text"),
            anna.post_message_ok(gid, "new v", [(self.blob["V"], "v.bin")]),
            anna.post_message_ok(gid, "new y2", [(self.blob["Y"], "y.bin")]),
        ]
        self.deleted_blobs = ("X", "Z")
        self.kept_blobs = ("V", "U", "Y", "W")

    def history_ids(self):
        response = self.bert.client.get(
            f"/v1/conversations/{self.group['id']}/messages",
            params={"limit": 1000})
        return [m["id"] for m in response.json()["messages"]]


def test_purge_dry_run_changes_nothing(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    before_view = tenant.view()
    before_history = scene.history_ids()
    response = purge(tenant.admin.client, tenant.cid, scene.before, True)
    assert response.status_code == 200
    assert response.json() == {
        "messages_deleted": 3, "blobs_deleted": 2,
        "bytes_freed": 1100 + 1300}
    assert tenant.view() == before_view
    assert scene.history_ids() == before_history
    for name in scene.deleted_blobs:
        download = scene.anna.client.get(f"/v1/blobs/{scene.blob[name]}")
        assert download.status_code == 200, name


def test_purge_real_matches_dry_run(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    dry = purge(tenant.admin.client, tenant.cid, scene.before, True).json()
    used_before = tenant.view()
    response = purge(tenant.admin.client, tenant.cid, scene.before, False)
    assert response.status_code == 200
    real = response.json()
    assert real == dry
    used_after = tenant.view()
    assert used_before["used_bytes"] - used_after["used_bytes"] == \
        real["bytes_freed"]
    assert used_before["blob_count"] - used_after["blob_count"] == \
        real["blobs_deleted"]
    assert used_before["message_count"] - used_after["message_count"] == \
        real["messages_deleted"]
    assert used_after["used_bytes"] == 1700 + 1900 + 2300 + 2900
    report = tenant.operator.get("/v1/usage").json()["contracts"]
    assert {v["id"]: v for v in report}[tenant.cid] == used_after


def test_purge_messages_before_date_gone(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    purge(tenant.operator, tenant.cid, scene.before, False)
    remaining = scene.history_ids()
    assert sorted(remaining) == sorted(m["id"] for m in scene.new)
    for message in scene.old:
        assert message["id"] not in remaining


def test_purge_blobs_deleted_and_kept(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    purge(tenant.operator, tenant.cid, scene.before, False)
    anna = scene.anna.client
    for name in scene.deleted_blobs:
        response = anna.get(f"/v1/blobs/{scene.blob[name]}")
        assert response.status_code == 404, name
    for name in scene.kept_blobs:
        response = anna.get(f"/v1/blobs/{scene.blob[name]}")
        assert response.status_code == 200, name
        assert response.content == scene.data[name], name


def test_purge_second_run_zero(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    purge(tenant.operator, tenant.cid, scene.before, False)
    used = tenant.used_bytes()
    again = purge(tenant.operator, tenant.cid, scene.before, False)
    assert again.status_code == 200
    assert again.json() == {"messages_deleted": 0, "blobs_deleted": 0,
                            "bytes_freed": 0}
    assert tenant.used_bytes() == used


def test_purge_sync_purged_before(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    bert = scene.bert.client
    since = bert.get("/v1/sync", params={"since": 0}).json()["next_since"]
    purge(tenant.operator, tenant.cid, scene.before, False)
    body = bert.get("/v1/sync", params={"since": since}).json()
    assert body["purged_before"] == scene.before
    # The purge takes a seq of its own.
    assert body["next_since"] > since
    full = bert.get("/v1/sync", params={"since": 0}).json()
    assert sorted(m["id"] for m in full["messages"]) == \
        sorted(m["id"] for m in scene.new)
    assert full["purged_before"] == scene.before


def test_purge_by_operator(server):
    scene = PurgeScene(server)
    tenant = scene.tenant
    response = purge(tenant.operator, tenant.cid, scene.before, False)
    assert response.status_code == 200
    assert response.json()["messages_deleted"] == 3


def test_purge_other_contract_untouched(server):
    scene = PurgeScene(server)
    other = PurgeScene(server)
    other_view = other.tenant.view()
    purge(scene.tenant.operator, scene.tenant.cid, scene.before, False)
    assert other.tenant.view() == other_view


def test_purge_by_user_403(server):
    tenant = Tenant(server, users=1)
    response = purge(tenant.users[0].client, tenant.cid,
                     "2099-01-01T00:00:00Z", False)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


@pytest.mark.parametrize("body", [
    {"before": "yesterday", "dry_run": True},
    {"before": "2026-13-01T00:00:00Z", "dry_run": True},
    {"dry_run": True},
    {"before": 1700000000, "dry_run": True},
    {"before": "2026-01-01T00:00:00Z", "dry_run": "yes"},
])
def test_purge_bad_body_400(server, body):
    tenant = Tenant(server, users=0)
    response = tenant.operator.post(
        f"/v1/contracts/{tenant.cid}/purge", json=body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


SWEEP_LIMITS = {"unattached_grace_seconds": 2, "sweep_interval_seconds": 1}


def test_sweep_unreferenced_blob(blobd):
    server = blobd(limits=SWEEP_LIMITS)
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    blob = client.upload_ok(random_bytes(3000))
    assert tenant.used_bytes() == 3000
    assert wait_until(lambda: tenant.used_bytes() == 0, 20)
    assert tenant.view()["blob_count"] == 0
    response = client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 404
    report = tenant.operator.get("/v1/usage").json()["contracts"]
    assert {v["id"]: v for v in report}[tenant.cid] == tenant.view()


def test_sweep_keeps_referenced_blob(blobd):
    server = blobd(limits=SWEEP_LIMITS)
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    blob = anna.client.upload_ok(random_bytes(3000))
    message = anna.client.post_message_ok(group["id"], "x",
                                          [(blob["id"], "x.bin")])
    time.sleep(5)
    assert tenant.used_bytes() == 3000
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 200
    anna.client.delete(f"/v1/messages/{message['id']}")
    assert wait_until(lambda: tenant.used_bytes() == 0, 20)
    assert anna.client.get(f"/v1/blobs/{blob['id']}").status_code == 404


def test_sweep_reupload_restarts_grace(blobd):
    server = blobd(limits={"unattached_grace_seconds": 4,
                           "sweep_interval_seconds": 1})
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    data = random_bytes(3000)
    start = time.monotonic()
    client.upload_ok(data)
    time.sleep(3)
    client.upload_ok(data)
    # The first upload's grace ended at 4 s and a sweep runs every second,
    # so without the restart the blob would be gone by 5.5 s.
    time.sleep(max(0.0, 5.5 - (time.monotonic() - start)))
    assert tenant.used_bytes() == 3000
    assert wait_until(lambda: tenant.used_bytes() == 0, 20)


def test_sweep_logs_freed(blobd):
    server = blobd(limits=SWEEP_LIMITS)
    tenant = Tenant(server, users=1)
    tenant.users[0].client.upload_ok(random_bytes(4321))
    assert wait_until(lambda: tenant.used_bytes() == 0, 20)
    assert wait_until(lambda: "4321" in server.log_text(), 5)
