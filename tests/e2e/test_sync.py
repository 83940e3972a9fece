"""Sync: sequence numbers, paging with since/limit/next_since, deletions,
long polls and their end on revocation, expiry and shutdown."""

import signal
import threading
import time

import pytest

from conftest import Tenant, error_code, error_field

# Bound on the extra time a waiting request may take beyond its `wait`,
# only to catch a hang.
HANG_MARGIN = 10


def sync(client, **params):
    wait = params.get("wait", 0)
    timeout = 30 + (wait if isinstance(wait, int) else 0)
    return client.get("/v1/sync", params=params, timeout=timeout)


class BackgroundSync:
    """A waiting GET /v1/sync in a thread, timed from its start."""

    def __init__(self, client, **params):
        self.client = client
        self.params = params
        self.response = None
        self.error = None
        self.elapsed = None
        self.thread = threading.Thread(target=self.run)
        self.started = time.monotonic()
        self.thread.start()

    def run(self):
        try:
            self.response = sync(self.client, **self.params)
        except Exception as error:  # reported by the test's asserts
            self.error = error
        self.elapsed = time.monotonic() - self.started

    def join(self):
        self.thread.join(self.params["wait"] + HANG_MARGIN + 30)
        assert not self.thread.is_alive(), "sync request hangs"
        assert self.error is None, repr(self.error)
        return self.response


def test_sync_seq_strictly_increasing(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    first = tenant.group([anna, bert])
    second = tenant.group([anna])
    seqs = []
    for index in range(6):
        group = first if index % 2 else second
        author = bert if index % 2 and index % 3 else anna
        seqs.append(author.client.post_message_ok(group["id"], str(index))
                    ["seq"])
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs


def test_sync_all_oldest_first(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    posted = [anna.client.post_message_ok(group["id"], f"m{i}")
              for i in range(4)]
    response = sync(bert.client, since=0)
    assert response.status_code == 200
    body = response.json()
    assert [m["id"] for m in body["messages"]] == [m["id"] for m in posted]
    assert body["messages"] == posted
    assert body["deleted"] == []
    assert body["purged_before"] is None
    assert body["next_since"] == posted[-1]["seq"]


def test_sync_nothing_new(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    last = client.post_message_ok(group["id"], "x")["seq"]
    response = sync(client, since=last)
    assert response.status_code == 200
    assert response.json()["messages"] == []
    assert response.json()["deleted"] == []
    assert response.json()["next_since"] == last


def test_sync_limit_pages(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    posted = [client.post_message_ok(group["id"], f"m{i}") for i in range(7)]
    seen = []
    since = 0
    for _page in range(10):
        body = sync(client, since=since, limit=3).json()
        assert len(body["messages"]) <= 3
        seen += [m["id"] for m in body["messages"]]
        if body["messages"]:
            assert body["next_since"] == body["messages"][-1]["seq"]
        since = body["next_since"]
        if len(body["messages"]) < 3:
            break
    assert seen == [m["id"] for m in posted]


def test_sync_only_own_conversations(server):
    tenant = Tenant(server, users=3)
    anna, bert, cora = tenant.users
    mine = tenant.group([anna, bert])
    theirs = tenant.group([anna, cora])
    visible = anna.client.post_message_ok(mine["id"], "for bert")
    anna.client.post_message_ok(theirs["id"], "for cora")
    body = sync(bert.client, since=0).json()
    assert [m["id"] for m in body["messages"]] == [visible["id"]]


def test_sync_removed_member(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    anna.client.post_message_ok(group["id"], "before removal")
    response = tenant.operator.put(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}/members",
        json={"members": [anna.uid]})
    assert response.status_code == 200
    anna.client.post_message_ok(group["id"], "after removal")
    body = sync(bert.client, since=0).json()
    assert body["messages"] == []


def test_sync_deleted_list(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    message = anna.client.post_message_ok(group["id"], "to delete")
    kept = anna.client.post_message_ok(group["id"], "kept")
    since = sync(bert.client, since=0).json()["next_since"]
    assert anna.client.delete(f"/v1/messages/{message['id']}") \
        .status_code == 204
    body = sync(bert.client, since=since).json()
    assert body["deleted"] == [message["id"]]
    assert body["messages"] == []
    # The deletion takes the next seq, so a device that saw `since` learns
    # of it and moves on.
    assert body["next_since"] > since
    later = sync(bert.client, since=body["next_since"]).json()
    assert later["deleted"] == []
    full = sync(bert.client, since=0).json()
    assert [m["id"] for m in full["messages"]] == [kept["id"]]


def test_sync_group_delete_listed(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    messages = [anna.client.post_message_ok(group["id"], str(i))
                for i in range(2)]
    since = sync(anna.client, since=0).json()["next_since"]
    response = tenant.admin.client.delete(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}")
    assert response.status_code == 204
    body = sync(anna.client, since=since).json()
    assert sorted(body["deleted"]) == sorted(m["id"] for m in messages)
    assert body["next_since"] > since


@pytest.mark.parametrize("params", [
    {"since": -1}, {"since": "abc"}, {"limit": -2}, {"wait": -1},
    {"wait": "soon"}])
def test_sync_bad_params_400(server, params):
    tenant = Tenant(server, users=1)
    response = sync(tenant.users[0].client, **params)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_sync_limit_clamped(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    client.post_message_ok(group["id"], "x")
    response = sync(client, since=0, limit=10**9)
    assert response.status_code == 200
    assert len(response.json()["messages"]) == 1


def test_sync_wait_returns_on_post(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    since = anna.client.post_message_ok(group["id"], "old")["seq"]
    waiting = BackgroundSync(bert.client, since=since, wait=10)
    time.sleep(0.5)
    posted = anna.client.post_message_ok(group["id"], "new")
    response = waiting.join()
    print(f"sync wait=10 answered {waiting.elapsed:.3f} s after it started")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["messages"]] == [posted["id"]]
    assert response.json()["next_since"] == posted["seq"]
    assert waiting.elapsed < 10


def test_sync_wait_with_backlog(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    posted = client.post_message_ok(group["id"], "already there")
    waiting = BackgroundSync(client, since=0, wait=30)
    response = waiting.join()
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["messages"]] == [posted["id"]]
    assert waiting.elapsed < 30


def test_sync_wait_returns_on_delete(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    group = tenant.group([anna, bert])
    message = anna.client.post_message_ok(group["id"], "old")
    waiting = BackgroundSync(bert.client, since=message["seq"], wait=10)
    time.sleep(0.5)
    anna.client.delete(f"/v1/messages/{message['id']}")
    response = waiting.join()
    assert response.status_code == 200
    assert response.json()["deleted"] == [message["id"]]
    assert waiting.elapsed < 10


def test_sync_wait_other_group_keeps_waiting(server):
    tenant = Tenant(server, users=3)
    anna, bert, cora = tenant.users
    bert_group = tenant.group([anna, bert])
    cora_group = tenant.group([anna, cora])
    since = anna.client.post_message_ok(bert_group["id"], "old")["seq"]
    waiting = BackgroundSync(bert.client, since=since, wait=3)
    time.sleep(0.5)
    anna.client.post_message_ok(cora_group["id"], "not for bert")
    response = waiting.join()
    assert response.status_code == 200
    assert response.json()["messages"] == []


def test_sync_wait_times_out_empty(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    since = client.post_message_ok(group["id"], "x")["seq"]
    waiting = BackgroundSync(client, since=since, wait=1)
    response = waiting.join()
    assert response.status_code == 200
    assert response.json()["messages"] == []
    assert response.json()["next_since"] == since
    assert waiting.elapsed < 1 + HANG_MARGIN


def test_sync_revocation_ends_wait(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    waiting = BackgroundSync(user.client, since=0, wait=30)
    time.sleep(0.5)
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}/chat-code")
    assert response.status_code == 200
    answer = waiting.join()
    assert answer.status_code == 401
    assert error_code(answer) == "session_revoked"
    assert error_field(answer, "wipe") is True
    assert waiting.elapsed < 30


def test_sync_expiry_ends_wait(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    waiting = BackgroundSync(user.client, since=0, wait=30)
    time.sleep(0.5)
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}",
        json={"valid_until": "2000-01-01T00:00:00Z"})
    assert response.status_code == 200
    answer = waiting.join()
    assert answer.status_code == 403
    assert error_code(answer) == "account_expired"
    assert waiting.elapsed < 30


def test_sync_sigterm_answers_wait(blobd):
    server = blobd()
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users)
    since = client.post_message_ok(group["id"], "x")["seq"]
    waiting = BackgroundSync(client, since=since, wait=30)
    time.sleep(0.5)
    assert server.stop(signal.SIGTERM, timeout=25) == 0
    answer = waiting.join()
    assert answer.status_code == 200
    assert answer.json()["messages"] == []
    assert waiting.elapsed < 30
