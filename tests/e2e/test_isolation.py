"""Contract isolation: ids of another contract get the same response as ids
that do not exist, and every route but /healthz and login needs a valid
token."""

import pytest

from conftest import Tenant, error_code, login, random_bytes, unique


def missing_like(identifier):
    """Return an id of the same length and character classes that no
    object has: digits become 9, hex letters f, other letters z or Z."""
    out = []
    for char in identifier:
        if char.isdigit():
            out.append("9")
        elif char in "abcdef":
            out.append("f")
        elif char.islower():
            out.append("z")
        elif char.isupper():
            out.append("Z")
        else:
            out.append(char)
    return "".join(out)


class Pair:
    """Contract A (the callers) and contract B (the target), with users,
    a group, a blob and a message in each."""

    def __init__(self, server):
        self.server = server
        self.a = Tenant(server, users=1)
        self.b = Tenant(server, users=2)
        a_user = self.a.users[0]
        b_one, b_two = self.b.users
        self.a_group = self.a.group([a_user])
        self.b_group = self.b.group([b_one, b_two])
        self.b_data = random_bytes(2222)
        self.b_blob = b_one.client.upload_ok(self.b_data)["id"]
        self.b_message = b_one.client.post_message_ok(
            self.b_group["id"], "internal", [(self.b_blob, "b.bin")])
        self.ids = {
            "cid": self.b.cid, "uid": b_two.uid, "gid": self.b_group["id"],
            "mid": self.b_message["id"], "blob": self.b_blob}
        self.missing = {
            "cid": unique("none"), "uid": missing_like(b_two.uid),
            "gid": missing_like(self.b_group["id"]),
            "mid": missing_like(self.b_message["id"]),
            "blob": "f" * 64}
        self.b_view = self.b.view()
        self.b_users = self.b.admin.client.get(
            f"/v1/contracts/{self.b.cid}/users").json()

    def assert_b_intact(self):
        assert self.b.view() == self.b_view
        users = self.b.admin.client.get(f"/v1/contracts/{self.b.cid}/users")
        assert users.json() == self.b_users
        b_one, b_two = self.b.users
        for user in (b_one, b_two):
            groups = user.client.get("/v1/conversations")
            assert groups.status_code == 200, user.username
            assert [g["id"] for g in groups.json()["conversations"]] == \
                [self.b_group["id"]]
        history = b_two.client.get(
            f"/v1/conversations/{self.b_group['id']}/messages").json()
        assert [m["id"] for m in history["messages"]] == \
            [self.b_message["id"]]
        assert b_two.client.get(f"/v1/blobs/{self.b_blob}").content == \
            self.b_data


@pytest.fixture(scope="module")
def pair(server):
    return Pair(server)


FUTURE = "2099-01-01T00:00:00Z"

# (name, method, path, JSON body, status expected for A's admin, for A's
# user). `{a}` is contract A; other fields are ids of B, or their missing
# twins. None: the response only has to equal the one for a missing id.
CASES = [
    ("contract get", "GET", "/v1/contracts/{cid}", None, 404, 404),
    ("contract patch", "PATCH", "/v1/contracts/{cid}", {"licences": 5},
     None, None),
    ("users list", "GET", "/v1/contracts/{cid}/users", None, 404, 404),
    ("user create", "POST", "/v1/contracts/{cid}/users",
     {"username": "intruder", "password": "pw-123456"}, 404, 404),
    ("user patch", "PATCH", "/v1/contracts/{cid}/users/{uid}",
     {"role": "admin"}, 404, 404),
    ("user patch own path", "PATCH", "/v1/contracts/{a}/users/{uid}",
     {"valid_until": "2000-01-01T00:00:00Z"}, 404, 403),
    ("chat code", "POST", "/v1/contracts/{cid}/users/{uid}/chat-code",
     None, 404, 404),
    ("chat code own path", "POST", "/v1/contracts/{a}/users/{uid}/chat-code",
     None, 404, 403),
    ("group create", "POST", "/v1/contracts/{cid}/groups",
     {"name": "intruders", "members": []}, 404, 404),
    ("group create foreign member", "POST", "/v1/contracts/{a}/groups",
     {"name": "g", "members": ["{uid}"]}, None, 403),
    ("members put", "PUT", "/v1/contracts/{cid}/groups/{gid}/members",
     {"members": []}, 404, 404),
    ("members put own path", "PUT", "/v1/contracts/{a}/groups/{gid}/members",
     {"members": []}, 404, 403),
    ("members put foreign member", "PUT",
     "/v1/contracts/{a}/groups/{a_gid}/members",
     {"members": ["{a_uid}", "{uid}"]}, None, 403),
    ("group delete", "DELETE", "/v1/contracts/{cid}/groups/{gid}", None,
     404, 404),
    ("group delete own path", "DELETE", "/v1/contracts/{a}/groups/{gid}",
     None, 404, 403),
    ("purge", "POST", "/v1/contracts/{cid}/purge",
     {"before": FUTURE, "dry_run": False}, 404, 404),
    ("history", "GET", "/v1/conversations/{gid}/messages", None, 404, 404),
    ("post", "POST", "/v1/conversations/{gid}/messages",
     {"text": "hello", "attachments": []}, 404, 404),
    ("post foreign attachment", "POST", "/v1/conversations/{a_gid}/messages",
     {"text": "x", "attachments": [{"blob": "{blob}", "filename": "b"}]},
     404, 404),
    ("message delete", "DELETE", "/v1/messages/{mid}", None, 404, 404),
    ("blob get", "GET", "/v1/blobs/{blob}", None, 404, 404),
    ("blob head", "HEAD", "/v1/blobs/{blob}", None, 404, 404),
]


def fill(template, values):
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(item, values) for key, item in template.items()}
    return template


@pytest.mark.parametrize("role", ["admin", "user"])
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_isolation_foreign_like_missing(pair, case, role):
    _name, method, path, body, admin_status, user_status = case
    caller = pair.a.admin if role == "admin" else pair.a.users[0]
    expected = admin_status if role == "admin" else user_status
    own = {"a": pair.a.cid, "a_gid": pair.a_group["id"],
           "a_uid": pair.a.users[0].uid}
    answers = {}
    for kind, ids in (("missing", pair.missing), ("foreign", pair.ids)):
        values = dict(ids, **own)
        answers[kind] = caller.client.request(
            method, fill(path, values), json=fill(body, values))
    foreign, missing = answers["foreign"], answers["missing"]
    assert foreign.status_code == missing.status_code
    assert error_code(foreign) == error_code(missing)
    assert foreign.status_code in (400, 403, 404)
    if expected is not None:
        assert foreign.status_code == expected
    pair.assert_b_intact()


def test_isolation_sync_excludes_foreign(pair):
    body = pair.a.users[0].client.get("/v1/sync", params={"since": 0}).json()
    assert pair.b_message["id"] not in {m["id"] for m in body["messages"]}
    admin_body = pair.a.admin.client.get("/v1/sync",
                                         params={"since": 0}).json()
    assert pair.b_message["id"] not in \
        {m["id"] for m in admin_body["messages"]}


def test_isolation_same_bytes_separate(pair):
    # Uploading B's bytes in A gives A its own copy, not access to B's data.
    a_user = pair.a.users[0]
    view = a_user.client.upload_ok(pair.b_data)
    assert view["id"] == pair.b_blob
    assert pair.a.view()["used_bytes"] >= 2222
    pair.assert_b_intact()


def test_isolation_login_foreign_user(pair):
    b_user = pair.b.users[0]
    response = login(pair.server, pair.a.cid, b_user.username,
                     b_user.password, b_user.chat_code)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


# Every route of the API that needs a token.
AUTH_ROUTES = [
    ("GET", "/v1/usage"),
    ("GET", "/v1/usage?format=csv"),
    ("POST", "/v1/contracts"),
    ("GET", "/v1/contracts/{a}"),
    ("PATCH", "/v1/contracts/{a}"),
    ("GET", "/v1/contracts/{a}/users"),
    ("POST", "/v1/contracts/{a}/users"),
    ("PATCH", "/v1/contracts/{a}/users/{a_uid}"),
    ("POST", "/v1/contracts/{a}/users/{a_uid}/chat-code"),
    ("POST", "/v1/contracts/{a}/groups"),
    ("PUT", "/v1/contracts/{a}/groups/{a_gid}/members"),
    ("DELETE", "/v1/contracts/{a}/groups/{a_gid}"),
    ("POST", "/v1/contracts/{a}/purge"),
    ("DELETE", "/v1/sessions/current"),
    ("GET", "/v1/conversations"),
    ("POST", "/v1/blobs"),
    ("GET", "/v1/blobs/{a_blob}"),
    ("HEAD", "/v1/blobs/{a_blob}"),
    ("GET", "/v1/conversations/{a_gid}/messages"),
    ("POST", "/v1/conversations/{a_gid}/messages"),
    ("GET", "/v1/sync"),
    ("DELETE", "/v1/messages/{a_mid}"),
    ("GET", "/metrics"),
]

BAD_AUTHORIZATION = {
    "none": None,
    "garbage": "Bearer not-a-token",
    "empty": "Bearer ",
    "basic": "Basic YWRtaW46YWRtaW4=",
    "no scheme": "0123456789abcdef0123456789abcdef",
}


@pytest.fixture(scope="module")
def own_ids(pair):
    user = pair.a.users[0]
    blob = user.client.upload_ok(random_bytes(100))["id"]
    message = user.client.post_message_ok(pair.a_group["id"], "own")
    return {"a": pair.a.cid, "a_uid": user.uid, "a_gid": pair.a_group["id"],
            "a_blob": blob, "a_mid": message["id"]}


@pytest.mark.parametrize("auth", BAD_AUTHORIZATION,
                         ids=list(BAD_AUTHORIZATION))
@pytest.mark.parametrize("route", AUTH_ROUTES,
                         ids=[f"{m} {p}" for m, p in AUTH_ROUTES])
def test_isolation_bad_token_401(pair, own_ids, route, auth):
    method, path = route
    headers = {}
    if BAD_AUTHORIZATION[auth] is not None:
        headers["Authorization"] = BAD_AUTHORIZATION[auth]
    client = pair.server.client()
    body = b"" if method in ("POST", "PUT", "PATCH") else None
    response = client.request(method, path.format(**own_ids), data=body,
                              headers=headers)
    assert response.status_code == 401
    if method != "HEAD":
        assert error_code(response) == "unauthorized"
