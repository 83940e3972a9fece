"""Groups and messages: membership, attachments, history paging, deletion
and who may download an attachment."""

import re

import pytest

from conftest import (Tenant, corpus_bytes, error_code, minimal_pdf,
                      random_bytes, unique)

RFC3339_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


@pytest.fixture(scope="module")
def team(server):
    """One contract with three users; each test makes its own groups, so
    the tests do not see each other's messages."""
    return Tenant(server, users=3)


def history(client, gid, **params):
    return client.get(f"/v1/conversations/{gid}/messages", params=params)


def history_ids(client, gid):
    response = history(client, gid, limit=1000)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["messages"]]


def test_group_create_view(team):
    tenant = team
    anna, bert = tenant.users[:2]
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/groups",
        json={"name": "Team Nord", "members": [anna.uid, bert.uid]})
    assert response.status_code == 201
    view = response.json()
    assert set(view) == {"id", "name", "members"}
    assert view["name"] == "Team Nord"
    assert sorted(view["members"]) == sorted([anna.uid, bert.uid])


def test_group_create_by_operator(team):
    tenant = team
    response = tenant.operator.post(
        f"/v1/contracts/{tenant.cid}/groups",
        json={"name": "Ops", "members": [tenant.users[0].uid]})
    assert response.status_code == 201


def test_group_members_replace(team):
    tenant = team
    anna, bert, cora = tenant.users
    group = tenant.group([anna, bert])
    response = tenant.admin.client.put(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}/members",
        json={"members": [anna.uid, cora.uid]})
    assert response.status_code == 200
    assert response.json()["id"] == group["id"]
    assert sorted(response.json()["members"]) == sorted([anna.uid, cora.uid])


def test_conversations_lists_own_groups(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    both = tenant.group([anna, bert])
    only_anna = tenant.group([anna])
    only_bert = tenant.group([bert])
    response = anna.client.get("/v1/conversations")
    assert response.status_code == 200
    listed = {g["id"]: g for g in response.json()["conversations"]}
    assert set(listed) == {both["id"], only_anna["id"]}
    assert listed[both["id"]]["name"] == both["name"]
    assert only_bert["id"] not in listed


def test_message_post_view(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    count = tenant.view()["message_count"]
    pdf = minimal_pdf("plan")
    blob = anna.client.upload_ok(pdf)
    response = anna.client.post_message(group["id"], "see plan",
                                        [(blob["id"], "plan.pdf")])
    assert response.status_code == 201
    message = response.json()
    assert isinstance(message["id"], str)
    assert isinstance(message["seq"], int)
    assert message["conversation"] == group["id"]
    assert message["sender"] == anna.uid
    assert re.fullmatch(RFC3339_UTC, message["sent_at"])
    assert message["text"] == "see plan"
    assert message["attachments"] == [{
        "blob": blob["id"], "filename": "plan.pdf", "size": len(pdf),
        "media_type": "application/pdf"}]
    assert tenant.view()["message_count"] == count + 1


def test_message_unicode_filename(team):
    anna, bert = team.users[:2]
    group = team.group([anna, bert])
    blob = anna.client.upload_ok(minimal_pdf("unicode"))
    name = "Angebot März – Größe 2.pdf"
    message = anna.client.post_message_ok(group["id"], "ünïcödé ✓",
                                          [(blob["id"], name)])
    assert message["attachments"][0]["filename"] == name
    assert message["text"] == "ünïcödé ✓"
    listed = history(bert.client, group["id"]).json()["messages"][0]
    assert listed["attachments"][0]["filename"] == name


def test_message_member_downloads_attachment(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    data = random_bytes(4000)
    blob = anna.client.upload_ok(data)
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 404
    anna.client.post_message_ok(group["id"], "x", [(blob["id"], "x.bin")])
    response = bert.client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.content == data


def test_message_forward_attachment(team):
    anna, bert, cora = team.users
    first = team.group([anna, bert])
    second = team.group([bert, cora])
    data = random_bytes(1234)
    blob = anna.client.upload_ok(data)
    anna.client.post_message_ok(first["id"], "x", [(blob["id"], "x.bin")])
    assert cora.client.get(f"/v1/blobs/{blob['id']}").status_code == 404
    # Bert may download the blob through the first group, so he may attach
    # it in the second.
    forwarded = bert.client.post_message(second["id"], "fwd",
                                         [(blob["id"], "copy.bin")])
    assert forwarded.status_code == 201
    response = cora.client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.content == data


def test_message_non_member_404(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna])
    count = tenant.view()["message_count"]
    for client in (bert.client, tenant.admin.client):
        response = client.post_message(group["id"], "let me in")
        assert response.status_code == 404
        assert error_code(response) == "not_found"
    assert tenant.view()["message_count"] == count


def test_message_unknown_group_404(team):
    tenant = team
    response = tenant.users[0].client.post_message(unique("nogroup"), "x")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_message_operator_403(team):
    tenant = team
    group = tenant.group(tenant.users[:1])
    response = tenant.operator.post_message(group["id"], "from operator")
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_message_foreign_attachment_404(team):
    tenant = team
    anna, bert, cora = tenant.users
    group = tenant.group([anna, bert])
    count = tenant.view()["message_count"]
    cora_blob = cora.client.upload_ok(random_bytes(900))
    response = anna.client.post_message(group["id"], "not mine",
                                        [(cora_blob["id"], "c.bin")])
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert bert.client.get(f"/v1/blobs/{cora_blob['id']}").status_code == 404
    assert tenant.view()["message_count"] == count


def test_message_unknown_attachment_404(team):
    tenant = team
    group = tenant.group(tenant.users[:1])
    response = tenant.users[0].client.post_message(
        group["id"], "ghost", [("cd" * 32, "ghost.bin")])
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_message_text_limit_default(team):
    tenant = team
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    count = tenant.view()["message_count"]
    assert client.post_message(group["id"], "a" * 65536).status_code == 201
    response = client.post_message(group["id"], "a" * 65537)
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    # The limit is in bytes of UTF-8, not in characters.
    assert client.post_message(group["id"], "é" * 32768).status_code == 201
    response = client.post_message(group["id"], "é" * 32769)
    assert response.status_code == 413
    assert tenant.view()["message_count"] == count + 2


def test_message_text_limit_config(blobd):
    server = blobd(limits={"max_text_bytes": 100})
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    assert client.post_message(group["id"], "b" * 100).status_code == 201
    response = client.post_message(group["id"], "b" * 101)
    assert response.status_code == 413
    assert error_code(response) == "too_large"


def test_message_malformed_json_400(team):
    tenant = team
    group = tenant.group(tenant.users[:1])
    response = tenant.users[0].client.post(
        f"/v1/conversations/{group['id']}/messages", data=b"{not json",
        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_history_newest_first_paging(team):
    tenant = team
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    posted = [client.post_message_ok(group["id"], f"m{i}") for i in range(7)]
    expected = [m["id"] for m in reversed(posted)]
    seen = []
    before = None
    for _page in range(10):
        params = {"limit": 3}
        if before is not None:
            params["before"] = before
        response = history(client, group["id"], **params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["messages"]) <= 3
        seqs = [m["seq"] for m in page["messages"]]
        assert seqs == sorted(seqs, reverse=True)
        seen += [m["id"] for m in page["messages"]]
        before = page["next_before"]
        if len(page["messages"]) < 3:
            assert before is None
        if before is None:
            break
    assert seen == expected


def test_history_before_exclusive(team):
    tenant = team
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    posted = [client.post_message_ok(group["id"], f"m{i}") for i in range(5)]
    response = history(client, group["id"], before=posted[3]["seq"])
    assert response.status_code == 200
    ids = [m["id"] for m in response.json()["messages"]]
    assert ids == [posted[2]["id"], posted[1]["id"], posted[0]["id"]]
    assert response.json()["next_before"] is None


def test_history_default_limit_50(team):
    tenant = team
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    posted = [client.post_message_ok(group["id"], f"m{i}") for i in range(53)]
    response = history(client, group["id"])
    assert response.status_code == 200
    page = response.json()
    assert len(page["messages"]) == 50
    assert page["messages"][0]["id"] == posted[-1]["id"]
    assert page["next_before"] is not None
    rest = history(client, group["id"], before=page["next_before"]).json()
    assert [m["id"] for m in rest["messages"]] == \
        [m["id"] for m in reversed(posted[:3])]


def test_history_limit_clamped(team):
    tenant = team
    client = tenant.users[0].client
    group = tenant.group(tenant.users[:1])
    for i in range(3):
        client.post_message_ok(group["id"], f"m{i}")
    response = history(client, group["id"], limit=1_000_000)
    assert response.status_code == 200
    assert len(response.json()["messages"]) == 3


@pytest.mark.parametrize("params", [
    {"limit": -1}, {"limit": "ten"}, {"before": -5}, {"before": "x"},
    {"limit": "1.5"}])
def test_history_bad_params_400(team, params):
    tenant = team
    group = tenant.group(tenant.users[:1])
    response = history(tenant.users[0].client, group["id"], **params)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_history_non_member_404(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna])
    anna.client.post_message_ok(group["id"], "private")
    response = history(bert.client, group["id"])
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_delete_by_sender(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    count = tenant.view()["message_count"]
    message = anna.client.post_message_ok(group["id"], "oops")
    response = anna.client.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 204
    assert message["id"] not in history_ids(bert.client, group["id"])
    again = anna.client.delete(f"/v1/messages/{message['id']}")
    assert again.status_code == 404
    assert error_code(again) == "not_found"
    assert tenant.view()["message_count"] == count


def test_delete_by_admin(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    message = anna.client.post_message_ok(group["id"], "inappropriate")
    response = tenant.admin.client.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 204
    assert message["id"] not in history_ids(anna.client, group["id"])


def test_delete_by_other_member_403(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    message = anna.client.post_message_ok(group["id"], "mine")
    response = bert.client.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert message["id"] in history_ids(anna.client, group["id"])


def test_delete_by_non_member_404(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna])
    message = anna.client.post_message_ok(group["id"], "mine")
    response = bert.client.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert message["id"] in history_ids(anna.client, group["id"])


def test_delete_by_operator_403(team):
    tenant = team
    group = tenant.group(tenant.users[:1])
    message = tenant.users[0].client.post_message_ok(group["id"], "x")
    response = tenant.operator.delete(f"/v1/messages/{message['id']}")
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_blob_survives_one_of_two_deletes(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    used = tenant.used_bytes()
    data = random_bytes(2500)
    blob = anna.client.upload_ok(data)
    first = anna.client.post_message_ok(group["id"], "1",
                                        [(blob["id"], "a.bin")])
    anna.client.post_message_ok(group["id"], "2", [(blob["id"], "a.bin")])
    anna.client.delete(f"/v1/messages/{first['id']}")
    response = bert.client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.content == data
    assert tenant.used_bytes() == used + 2500


def test_blob_only_deleted_messages_404(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    blob = anna.client.upload_ok(random_bytes(2500))
    messages = [anna.client.post_message_ok(group["id"], str(i),
                                            [(blob["id"], "a.bin")])
                for i in range(2)]
    for message in messages:
        assert anna.client.delete(f"/v1/messages/{message['id']}") \
            .status_code == 204
    response = bert.client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
    # The uploader keeps access until the grace period ends.
    assert anna.client.get(f"/v1/blobs/{blob['id']}").status_code == 200


def test_blob_same_attachment_twice(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    blob = anna.client.upload_ok(random_bytes(1500))
    message = anna.client.post_message_ok(
        group["id"], "twice", [(blob["id"], "a.bin"), (blob["id"], "b.bin")])
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 200
    anna.client.delete(f"/v1/messages/{message['id']}")
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 404


def test_photo_shared_not_third_user(team):
    tenant = team
    anna, bert, cora = tenant.users
    team = tenant.group([anna, bert])
    tenant.group([cora, anna])
    photo = anna.client.upload_ok(corpus_bytes("exif_landscape_3.jpg"))
    anna.client.post_message_ok(team["id"], "site photo",
                                [(photo["id"], "site.jpg")])
    shared = bert.client.get(f"/v1/blobs/{photo['id']}")
    assert shared.status_code == 200
    for method in ("GET", "HEAD"):
        response = cora.client.request(method, f"/v1/blobs/{photo['id']}")
        assert response.status_code == 404, method


def test_removed_member_loses_access(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    blob = anna.client.upload_ok(random_bytes(1000))
    anna.client.post_message_ok(group["id"], "x", [(blob["id"], "x.bin")])
    response = tenant.admin.client.put(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}/members",
        json={"members": [anna.uid]})
    assert response.status_code == 200
    assert history(bert.client, group["id"]).status_code == 404
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 404
    assert bert.client.post_message(group["id"], "x").status_code == 404
    listed = bert.client.get("/v1/conversations").json()["conversations"]
    assert group["id"] not in {g["id"] for g in listed}


def test_added_member_sees_history(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna])
    blob = anna.client.upload_ok(random_bytes(1000))
    message = anna.client.post_message_ok(group["id"], "before bert",
                                          [(blob["id"], "x.bin")])
    tenant.admin.client.put(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}/members",
        json={"members": [anna.uid, bert.uid]})
    assert history_ids(bert.client, group["id"]) == [message["id"]]
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 200


def test_group_delete_drops_messages(team):
    tenant = team
    anna, bert = tenant.users[:2]
    group = tenant.group([anna, bert])
    count = tenant.view()["message_count"]
    blob = anna.client.upload_ok(random_bytes(1000))
    anna.client.post_message_ok(group["id"], "x", [(blob["id"], "x.bin")])
    anna.client.post_message_ok(group["id"], "y")
    response = tenant.admin.client.delete(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}")
    assert response.status_code == 204
    assert history(bert.client, group["id"]).status_code == 404
    assert bert.client.get(f"/v1/blobs/{blob['id']}").status_code == 404
    assert tenant.view()["message_count"] == count
    again = tenant.admin.client.delete(
        f"/v1/contracts/{tenant.cid}/groups/{group['id']}")
    assert again.status_code == 404
