"""Durability: what a 2xx response reported survives a SIGTERM restart and a
SIGKILL restart."""

import http.client
import json
import signal
import socket
import threading
import time

import pytest

from conftest import (Tenant, corpus_bytes, create_user, error_code,
                      jpeg_bytes, login, minimal_pdf, photo_image,
                      random_bytes, sha256_hex)


class World:
    """A contract with users, sessions, a group, blobs and messages. A
    full world adds an admin, a user who never logged in and a second
    contract; the smaller one saves their password hashing."""

    def __init__(self, server, full=True):
        self.server = server
        self.tenant = Tenant(server, plan="pro", licences=3, users=2)
        self.anna, self.bert = self.tenant.users
        self.group = self.tenant.group([self.anna, self.bert], "Team Nord")
        self.pdf = minimal_pdf("durable")
        self.photo = corpus_bytes("exif_landscape_6.jpg")
        self.pdf_view = self.anna.client.upload_ok(self.pdf)
        self.photo_view = self.bert.client.upload_ok(self.photo)
        self.private = random_bytes(5000)
        self.private_view = self.anna.client.upload_ok(self.private)
        self.messages = [
            self.anna.client.post_message_ok(
                self.group["id"], "plan attached",
                [(self.pdf_view["id"], "plan.pdf")]),
            self.bert.client.post_message_ok(
                self.group["id"], "photo", [(self.photo_view["id"],
                                             "site.jpg")]),
            self.anna.client.post_message_ok(self.group["id"], "text only"),
        ]
        if full:
            self.pending = create_user(self.tenant.admin.client,
                                       self.tenant.cid)
            self.other = Tenant(server, plan="basic", licences=1, users=1)
            self.other.users[0].client.upload_ok(random_bytes(777))

    def snapshot(self):
        operator = self.server.operator()
        admin = self.tenant.admin.client
        anna = self.anna.client
        bert = self.bert.client
        stored_photo = anna.get(f"/v1/blobs/{self.photo_view['id']}")
        return {
            "usage": operator.get("/v1/usage").json(),
            "contract": operator.get(f"/v1/contracts/{self.tenant.cid}")
            .json(),
            "users": admin.get(f"/v1/contracts/{self.tenant.cid}/users")
            .json(),
            "anna groups": anna.get("/v1/conversations").json(),
            "bert groups": bert.get("/v1/conversations").json(),
            "history": anna.get(
                f"/v1/conversations/{self.group['id']}/messages").json(),
            "sync": bert.get("/v1/sync", params={"since": 0}).json(),
            "pdf": anna.get(f"/v1/blobs/{self.pdf_view['id']}").content,
            "photo": stored_photo.content,
            "private": anna.get(f"/v1/blobs/{self.private_view['id']}")
            .content,
        }

    def assert_intact(self, before):
        after = self.snapshot()
        for key in before:
            assert after[key] == before[key], key
        assert after["pdf"] == self.pdf
        assert after["private"] == self.private
        assert sha256_hex(after["photo"]) == self.photo_view["id"]
        response = login(self.server, self.tenant.cid, self.pending.username,
                         self.pending.password, self.pending.chat_code)
        assert response.status_code == 201


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_keeps_data(blobd, sig):
    server = blobd()
    world = World(server)
    before = world.snapshot()
    status = server.restart(sig)
    if sig == signal.SIGTERM:
        assert status == 0
    world.assert_intact(before)


def test_restart_twice_keeps_data(blobd):
    server = blobd()
    world = World(server)
    before = world.snapshot()
    server.restart(signal.SIGKILL)
    assert server.restart(signal.SIGTERM) == 0
    world.assert_intact(before)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_seq_continues(blobd, sig):
    server = blobd()
    world = World(server, full=False)
    last = world.messages[-1]["seq"]
    server.restart(sig)
    message = world.bert.client.post_message_ok(world.group["id"], "after")
    assert message["seq"] > last
    assert message["id"] not in {m["id"] for m in world.messages}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_revocation_persists(blobd, sig):
    server = blobd()
    world = World(server, full=False)
    response = world.tenant.operator.post(
        f"/v1/contracts/{world.tenant.cid}/users/{world.anna.uid}/chat-code")
    assert response.status_code == 200
    server.restart(sig)
    revoked = world.anna.client.get("/v1/conversations")
    assert revoked.status_code == 401
    assert error_code(revoked) == "session_revoked"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_logout_persists(blobd, sig):
    server = blobd()
    world = World(server, full=False)
    assert world.bert.client.delete("/v1/sessions/current").status_code == 204
    server.restart(sig)
    response = world.bert.client.get("/v1/conversations")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_deletion_persists(blobd, sig):
    server = blobd()
    world = World(server, full=False)
    gone = world.messages[0]
    assert world.anna.client.delete(f"/v1/messages/{gone['id']}") \
        .status_code == 204
    server.restart(sig)
    history = world.bert.client.get(
        f"/v1/conversations/{world.group['id']}/messages").json()
    assert gone["id"] not in {m["id"] for m in history["messages"]}
    response = world.bert.client.get(f"/v1/blobs/{world.pdf_view['id']}")
    assert response.status_code == 404


def test_restart_sigterm_finishes_upload(blobd):
    server = blobd()
    tenant = Tenant(server, users=1)
    body = random_bytes(2_000_000)
    head = (f"POST /v1/blobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {tenant.users[0].token}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        sock.sendall(head.encode() + body[:1_000_000])
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(body[1_000_000:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        status = response.status
        payload = json.loads(response.read())
    finally:
        sock.close()
    assert status == 201
    assert payload["id"] == sha256_hex(body)
    assert server.wait_exit() == 0
    server.start()
    client = tenant.users[0].client
    assert client.get(f"/v1/blobs/{payload['id']}").content == body
    assert tenant.used_bytes() == len(body)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL],
                         ids=["sigterm", "sigkill"])
def test_restart_purge_persists(blobd, sig):
    server = blobd()
    world = World(server, full=False)
    response = world.tenant.operator.post(
        f"/v1/contracts/{world.tenant.cid}/purge",
        json={"before": "2099-01-01T00:00:00Z", "dry_run": False})
    assert response.status_code == 200
    assert response.json()["messages_deleted"] == 3
    view = world.tenant.view()
    purged_before = world.bert.client.get(
        "/v1/sync", params={"since": 0}).json()["purged_before"]
    assert purged_before is not None
    server.restart(sig)
    assert world.tenant.view() == view
    assert view["message_count"] == 0
    body = world.bert.client.get("/v1/sync", params={"since": 0}).json()
    assert body["messages"] == []
    assert body["purged_before"] == purged_before


def test_restart_missing_plan_refused(blobd):
    server = blobd(plans={"gold": 7_000_000_000})
    operator = server.operator()
    cid = "plan-" + sha256_hex(random_bytes(8))[:8]
    response = operator.post("/v1/contracts", json={
        "id": cid, "name": "Gold", "plan": "gold", "licences": 2})
    assert response.status_code == 201
    assert server.stop() == 0
    server.write_config(plans={})
    status, output = server.run_until_exit()
    assert status != 0
    assert cid in output
    server.write_config(plans={"gold": 7_000_000_000})
    server.start()
    assert operator.get(f"/v1/contracts/{cid}").json()["plan"] == "gold"


def test_restart_kill_during_uploads(blobd):
    server = blobd()
    tenant = Tenant(server, users=1)
    token = tenant.users[0].token
    bodies = [random_bytes(300_000 + index) for index in range(24)]
    photos = [jpeg_bytes(photo_image(2600, 1800, seed=index, noise=6))
              for index in range(4)]
    answers = {}

    def upload(index, body):
        client = server.client(token)
        try:
            answers[index] = client.upload(body).status_code
        except Exception as error:  # the connection dies with the server
            answers[index] = repr(error)
        finally:
            client.close()

    threads = [threading.Thread(target=upload, args=(i, body))
               for i, body in enumerate(bodies + photos)]
    for thread in threads:
        thread.start()
    while len(answers) < 6 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    server.stop(signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=60)
    server.start()

    # A probe contract learns the stored id and size of each photo, since
    # rescaling is deterministic.
    probe = Tenant(server, users=1)
    expected = [(body, sha256_hex(body), len(body)) for body in bodies]
    for photo in photos:
        view = probe.users[0].client.upload_ok(photo)
        expected.append((photo, view["id"], view["size"]))

    client = tenant.users[0].client
    stored_sizes = 0
    stored_count = 0
    for index, (body, blob_id, size) in enumerate(expected):
        response = client.get(f"/v1/blobs/{blob_id}")
        if answers.get(index) == 201:
            assert response.status_code == 200, index
        if response.status_code == 200:
            assert len(response.content) == size, index
            if index < len(bodies):
                assert response.content == body, index
            stored_sizes += size
            stored_count += 1
    view = tenant.view()
    assert view["used_bytes"] == stored_sizes
    assert view["blob_count"] == stored_count
