"""Contract admin API for users, logins, sessions, chat codes, roles and
account expiry."""

import re
import time
from datetime import datetime, timedelta, timezone
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (CHAT_CODE_PATTERN, Tenant, create_user, error_code,
                      error_field, login, unique)

PAST = "2000-01-01T00:00:00Z"
FUTURE = "2099-06-30T00:00:00Z"


def test_user_create_view(server):
    tenant = Tenant(server, users=0)
    username = unique("anna")
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users",
        json={"username": username, "password": "correct horse"})
    assert response.status_code == 201
    view = response.json()
    assert set(view) == {"id", "username", "role", "valid_until",
                         "chat_code"}
    assert view["username"] == username
    assert view["role"] == "user"
    assert view["valid_until"] is None
    assert isinstance(view["id"], str)
    assert view["id"]
    assert re.fullmatch(CHAT_CODE_PATTERN, view["chat_code"])


def test_user_create_with_expiry(server):
    tenant = Tenant(server, users=0)
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users",
        json={"username": unique("b"), "password": "pw-123456",
              "role": "admin", "valid_until": FUTURE})
    assert response.status_code == 201
    assert response.json()["role"] == "admin"
    assert response.json()["valid_until"] == FUTURE


def test_user_create_by_operator(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    assert user.login()


def test_user_chat_codes_distinct(server):
    tenant = Tenant(server, users=0)
    codes = {create_user(tenant.operator, tenant.cid).chat_code
             for _ in range(6)}
    assert len(codes) == 6


def test_user_list_hides_secrets(server):
    tenant = Tenant(server, users=2)
    response = tenant.admin.client.get(f"/v1/contracts/{tenant.cid}/users")
    assert response.status_code == 200
    users = response.json()["users"]
    by_id = {u["id"]: u for u in users}
    assert set(by_id) == {tenant.admin.uid} | {u.uid for u in tenant.users}
    for user in tenant.users:
        assert by_id[user.uid] == {"id": user.uid, "username": user.username,
                                   "role": "user", "valid_until": None}
    for view in users:
        assert "password" not in view
        assert "chat_code" not in view


def test_user_duplicate_username_409(server):
    tenant = Tenant(server, users=1)
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users",
        json={"username": tenant.users[0].username, "password": "x1234567"})
    assert response.status_code == 409
    assert error_code(response) == "conflict"


@pytest.mark.parametrize("body", [
    {"password": "x1234567"},
    {"username": "nopassword"},
    {"username": "r", "password": "x1234567", "role": "root"},
    {"username": "v", "password": "x1234567", "valid_until": "tomorrow"},
    {"username": 5, "password": "x1234567"},
])
def test_user_create_invalid_400(server, body):
    tenant = Tenant(server, users=0)
    response = tenant.admin.client.post(f"/v1/contracts/{tenant.cid}/users",
                                        json=body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_login_returns_token(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    response = login(server, tenant.cid, user.username, user.password,
                     user.chat_code)
    assert response.status_code == 201
    assert response.json()["user_id"] == user.uid
    token = response.json()["token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    conversations = server.client(token).get("/v1/conversations")
    assert conversations.status_code == 200
    assert conversations.json() == {"conversations": []}


def test_login_each_wrong_part_401(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    other = Tenant(server, users=0)
    wrong_code = "A" * 10 if user.chat_code != "A" * 10 else "B" * 10
    attempts = {
        "contract": (other.cid, user.username, user.password, user.chat_code),
        "unknown contract": (unique("none"), user.username, user.password,
                             user.chat_code),
        "username": (tenant.cid, unique("nobody"), user.password,
                     user.chat_code),
        "password": (tenant.cid, user.username, user.password + "x",
                     user.chat_code),
        "chat code": (tenant.cid, user.username, user.password, wrong_code),
        "empty chat code": (tenant.cid, user.username, user.password, ""),
    }
    bodies = {}
    for part, (cid, username, password, code) in attempts.items():
        response = login(server, cid, username, password, code)
        assert response.status_code == 401, part
        assert error_code(response) == "unauthorized", part
        bodies[part] = response.json()
    assert len({str(body) for body in bodies.values()}) == 1, bodies


@pytest.mark.parametrize("missing", [
    "contract", "username", "password", "chat_code"])
def test_login_missing_part_400(server, missing):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    body = {"contract": tenant.cid, "username": user.username,
            "password": user.password, "chat_code": user.chat_code}
    del body[missing]
    response = server.client().post("/v1/sessions", json=body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_session_unknown_token_401(server):
    response = server.client("0" * 64).get("/v1/conversations")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_session_delete_current(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    phone = user.client
    laptop = user.login(device="laptop")
    response = phone.delete("/v1/sessions/current")
    assert response.status_code == 204
    after = phone.get("/v1/conversations")
    assert after.status_code == 401
    assert error_code(after) == "unauthorized"
    assert laptop.get("/v1/conversations").status_code == 200


def test_chat_code_replace_revokes(server):
    tenant = Tenant(server, users=2)
    user, bystander = tenant.users
    phone = user.client
    laptop = user.login(device="laptop")
    old_code = user.chat_code
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}/chat-code")
    assert response.status_code == 200
    new_code = response.json()["chat_code"]
    assert re.fullmatch(CHAT_CODE_PATTERN, new_code)
    assert new_code != old_code
    for client in (phone, laptop):
        revoked = client.get("/v1/conversations")
        assert revoked.status_code == 401
        assert error_code(revoked) == "session_revoked"
        assert error_field(revoked, "wipe") is True
    assert bystander.client.get("/v1/conversations").status_code == 200


def test_chat_code_revoked_on_every_route(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    blob = user.client.upload_ok(b"kept before revocation")
    tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}/chat-code")
    requests_after = [
        user.client.get(f"/v1/blobs/{blob['id']}"),
        user.client.head(f"/v1/blobs/{blob['id']}"),
        user.client.upload(b"after revocation"),
        user.client.get("/v1/sync"),
        user.client.delete("/v1/sessions/current"),
    ]
    for response in requests_after:
        assert response.status_code == 401, response.request.method
        if response.request.method != "HEAD":
            assert error_code(response) == "session_revoked"
    assert tenant.used_bytes() == len(b"kept before revocation")


def test_chat_code_replace_new_login(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    response = tenant.admin.client.post(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}/chat-code")
    new_code = response.json()["chat_code"]
    old = login(server, tenant.cid, user.username, user.password,
                user.chat_code)
    assert old.status_code == 401
    assert error_code(old) == "unauthorized"
    new = login(server, tenant.cid, user.username, user.password, new_code)
    assert new.status_code == 201
    fresh = server.client(new.json()["token"]).get("/v1/conversations")
    assert fresh.status_code == 200


def test_chat_code_replace_by_operator(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    response = tenant.operator.post(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}/chat-code")
    assert response.status_code == 200
    revoked = user.client.get("/v1/conversations")
    assert revoked.status_code == 401
    assert error_code(revoked) == "session_revoked"


def test_role_user_forbidden(server):
    tenant = Tenant(server, users=2)
    user, other = tenant.users
    client = user.client
    base = f"/v1/contracts/{tenant.cid}"
    group = tenant.group([user, other])
    calls = [
        ("GET", base + "/users", None),
        ("POST", base + "/users", {"username": unique("x"),
                                   "password": "x1234567"}),
        ("PATCH", f"{base}/users/{other.uid}", {"role": "admin"}),
        ("POST", f"{base}/users/{other.uid}/chat-code", None),
        ("POST", base + "/groups", {"name": "g", "members": [user.uid]}),
        ("PUT", f"{base}/groups/{group['id']}/members",
         {"members": [user.uid]}),
        ("DELETE", f"{base}/groups/{group['id']}", None),
        ("POST", base + "/purge", {"before": "2099-01-01T00:00:00Z",
                                   "dry_run": True}),
        ("GET", base, None),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body)
        assert response.status_code == 403, (method, path)
        assert error_code(response) == "forbidden", (method, path)
    assert other.client.get("/v1/conversations").status_code == 200


def test_role_promote_to_admin(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}", json={"role": "admin"})
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    listed = user.client.get(f"/v1/contracts/{tenant.cid}/users")
    assert listed.status_code == 200


def test_role_demote_takes_effect(server):
    tenant = Tenant(server, users=0)
    second = create_user(tenant.admin.client, tenant.cid, role="admin")
    client = second.login()
    assert client.get(f"/v1/contracts/{tenant.cid}/users").status_code == 200
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{second.uid}", json={"role": "user"})
    assert response.status_code == 200
    denied = client.get(f"/v1/contracts/{tenant.cid}/users")
    assert denied.status_code == 403
    assert error_code(denied) == "forbidden"


def test_patch_password(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.admin.client, tenant.cid)
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}",
        json={"password": "a new password"})
    assert response.status_code == 200
    assert "password" not in response.json()
    old = login(server, tenant.cid, user.username, user.password,
                user.chat_code)
    assert old.status_code == 401
    new = login(server, tenant.cid, user.username, "a new password",
                user.chat_code)
    assert new.status_code == 201


def test_patch_unknown_user_404(server):
    tenant = Tenant(server, users=0)
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{unique('nouser')}",
        json={"role": "admin"})
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_expired_login_403(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid, valid_until=PAST)
    response = login(server, tenant.cid, user.username, user.password,
                     user.chat_code)
    assert response.status_code == 403
    assert error_code(response) == "account_expired"


def test_expired_wrong_part_401(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid, valid_until=PAST)
    wrong_code = "Z" * 10 if user.chat_code != "Z" * 10 else "Y" * 10
    for password, code in ((user.password + "x", user.chat_code),
                           (user.password, wrong_code)):
        response = login(server, tenant.cid, user.username, password, code)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"


def test_expired_session_403(server):
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}",
        json={"valid_until": PAST})
    assert response.status_code == 200
    assert response.json()["valid_until"] == PAST
    for after in (user.client.get("/v1/conversations"),
                  user.client.upload(b"after expiry")):
        assert after.status_code == 403
        assert error_code(after) == "account_expired"


def test_valid_until_reached_in_session(server):
    tenant = Tenant(server, users=0)
    soon = datetime.now(timezone.utc) + timedelta(seconds=3)
    user = create_user(tenant.operator, tenant.cid,
                       valid_until=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    client = user.login()
    assert client.get("/v1/conversations").status_code == 200
    while datetime.now(timezone.utc) < soon + timedelta(seconds=1.1):
        time.sleep(0.2)
    response = client.get("/v1/conversations")
    assert response.status_code == 403
    assert error_code(response) == "account_expired"


def test_valid_until_cleared(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.admin.client, tenant.cid, valid_until=PAST)
    response = tenant.admin.client.patch(
        f"/v1/contracts/{tenant.cid}/users/{user.uid}",
        json={"valid_until": None})
    assert response.status_code == 200
    assert response.json()["valid_until"] is None
    assert user.login().get("/v1/conversations").status_code == 200


def test_valid_until_future_login(server):
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid, valid_until=FUTURE)
    assert user.login().get("/v1/conversations").status_code == 200


def fail_logins(server, user, count, source_address="127.0.0.1"):
    for attempt in range(count):
        response = login(server, user.cid, user.username, "wrong password",
                         user.chat_code, source_address=source_address)
        assert response.status_code == 401, attempt


def test_login_rate_limit_429(blobd):
    server = blobd()
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    other = create_user(tenant.operator, tenant.cid)
    fail_logins(server, user, 10)
    response = login(server, tenant.cid, user.username, user.password,
                     user.chat_code)
    assert response.status_code == 429
    assert error_code(response) == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    # The lock is for this username from this address only.
    elsewhere = login(server, tenant.cid, user.username, user.password,
                      user.chat_code, source_address="127.0.0.2")
    assert elsewhere.status_code == 201
    other_user = login(server, tenant.cid, other.username, other.password,
                       other.chat_code)
    assert other_user.status_code == 201


def test_login_rate_limit_nine_failures(blobd):
    server = blobd()
    tenant = Tenant(server, users=0)
    user = create_user(tenant.operator, tenant.cid)
    fail_logins(server, user, 9)
    response = login(server, tenant.cid, user.username, user.password,
                     user.chat_code)
    assert response.status_code == 201


def test_login_rate_limit_per_address(blobd):
    server = blobd()
    tenant = Tenant(server, users=0)
    users = [create_user(tenant.operator, tenant.cid) for _ in range(11)]
    # blobd hashes logins on a pool of workers, so parallel failures finish
    # sooner; 5 per username stay below the per-username limit.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda user: fail_logins(server, user, 5), users[:10]))
    last = users[10]
    response = login(server, tenant.cid, last.username, last.password,
                     last.chat_code)
    assert response.status_code == 429
    assert error_code(response) == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    elsewhere = login(server, tenant.cid, last.username, last.password,
                      last.chat_code, source_address="127.0.0.3")
    assert elsewhere.status_code == 201
