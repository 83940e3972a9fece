"""Hostile HTTP: malformed ids in every id position, oversized and broken
headers and bodies, overflowing numbers, missing lengths and more
connections than the configured maximum.

Each request gets a 4xx in the API's error shape. Where libmicrohttpd
handles a request malformed at the HTTP level itself, the request gets a
4xx page of libmicrohttpd's own or a closed connection instead. After each one, blobd must still serve /healthz.
Requests that `requests` cannot send go over raw sockets.
"""

import json
import socket
import time

import pytest

from conftest import Tenant, random_bytes, sha256_hex, wait_until

# Small connection limits, so that the limit test reaches them quickly.
# Only that test's server has them: the keep-alive connections of the
# other tests' clients would count against them.
LIMITS = {"max_connections": 6, "max_connections_per_ip": 2}

# Ids that must never name anything: traversal, encoded traversal, NUL,
# invalid UTF-8, overlong, shell and glob characters.
BAD_IDS = [
    "..",
    "%2e%2e",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..%2f..%2fetc%2fpasswd",
    "%00",
    "x%00y",
    "%ff%fe",
    "a" * 200,
    "*",
    "%7B%7D",
    "%20",
]


class RawResponse:
    """Status, headers and body of one HTTP/1.1 response read off a
    socket. The status is None when the server sent no response."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def raw_request(server, data, source="127.0.0.1", timeout=10):
    """Send `data` as is on a fresh connection and read one response. The
    status is None when the connection closes without a response, or stays
    silent for `timeout` seconds."""
    sock = socket.create_connection(("127.0.0.1", server.port),
                                    timeout=timeout,
                                    source_address=(source, 0))
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock)
    finally:
        sock.close()


def read_response(sock):
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if b"\r\n\r\n" not in buf:
        return RawResponse(None, {}, buf)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    try:
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    except ConnectionResetError:
        pass
    return RawResponse(status, headers, rest[:length])


def request_bytes(method, path, token=None, headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += list(headers)
    if body is not None and not any(h.lower().startswith(
            ("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def assert_api_error(response, statuses):
    """Check that the response has one of `statuses` and the API's error
    shape."""
    status = getattr(response, "status_code", None) or response.status
    assert status in statuses, (status, response_text(response))
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str)


def response_text(response):
    if hasattr(response, "text"):
        return response.text
    return response.body[:300]


def assert_healthy(server):
    response = server.client(source_address="127.0.0.9").get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture(scope="module")
def hostile(module_blobd):
    """A server with a tenant that has one user in a group, one message and
    one blob of that user."""
    server = module_blobd()
    tenant = Tenant(server, users=1)
    user = tenant.users[0]
    group = tenant.group([user])
    data = random_bytes(3000, seed=7)
    blob = user.client.upload_ok(data)
    message = user.client.post_message_ok(group["id"], "hello",
                                          [(blob["id"], "a.bin")])
    return {"server": server, "tenant": tenant, "user": user,
            "gid": group["id"], "blob": blob, "data": data,
            "mid": message["id"]}


def id_positions(h):
    """(caller, method, path template) of every route with an id; `{}`
    takes the hostile id, the other ids are real."""
    tenant, user = h["tenant"], h["user"]
    cid, uid, gid = tenant.cid, user.uid, h["gid"]
    admin = tenant.admin.client
    operator = tenant.operator
    return [
        (operator, "GET", "/v1/contracts/{}"),
        (operator, "PATCH", "/v1/contracts/{}"),
        (admin, "GET", "/v1/contracts/{}/users"),
        (admin, "POST", "/v1/contracts/{}/users"),
        (admin, "PATCH", f"/v1/contracts/{cid}/users/{{}}"),
        (admin, "POST", f"/v1/contracts/{cid}/users/{{}}/chat-code"),
        (admin, "PATCH", "/v1/contracts/{}/users/" + uid),
        (admin, "GET", f"/v1/contracts/{cid}/groups/{{}}"),
        (admin, "PUT", f"/v1/contracts/{cid}/groups/{{}}/members"),
        (admin, "DELETE", f"/v1/contracts/{cid}/groups/{{}}"),
        (admin, "GET", "/v1/contracts/{}/groups/" + gid),
        (admin, "POST", "/v1/contracts/{}/purge"),
        (user.client, "GET", "/v1/blobs/{}"),
        (user.client, "HEAD", "/v1/blobs/{}"),
        (user.client, "GET", "/v1/conversations/{}/messages"),
        (user.client, "POST", "/v1/conversations/{}/messages"),
        (user.client, "DELETE", "/v1/messages/{}"),
    ]


# JSON bodies that would succeed with a real id, so that only the id can
# make the request fail.
BODIES = {
    ("PATCH", "/v1/contracts/{}"): {"licences": 11},
    ("POST", "/v1/contracts/{}/users"): {"username": "x", "password": "p"},
    ("PUT", "members"): {"members": []},
    ("POST", "purge"): {"before": "2000-01-01T00:00:00Z", "dry_run": True},
    ("POST", "messages"): {"text": "x"},
}


def body_for(method, template):
    for (m, key), body in BODIES.items():
        if m == method and (template == key or template.endswith(key)):
            return json.dumps(body).encode()
    return b"{}" if method in ("POST", "PATCH", "PUT") else None


def test_hostile_ids_every_position(hostile):
    """Each hostile id in each id position gets 400, 404 or 405 in the
    error shape, never a 2xx or a 5xx."""
    server = hostile["server"]
    failures = []
    for caller, method, template in id_positions(hostile):
        for bad in BAD_IDS:
            path = template.replace("{}", bad)
            body = body_for(method, template)
            response = raw_request(server, request_bytes(
                method, path, caller.token, body=body))
            ok = response.status in (400, 404, 405)
            if ok and method != "HEAD":
                try:
                    body_json = response.json()
                    ok = set(body_json) == {"error"}
                except ValueError:
                    ok = False
            if not ok:
                failures.append((method, path, response.status,
                                 response.body[:200]))
    assert not failures, failures
    assert_healthy(server)


def test_hostile_nul_suffix_not_truncated(hostile):
    """An id followed by an encoded NUL does not name the id before it."""
    server, tenant = hostile["server"], hostile["tenant"]
    blob_id = hostile["blob"]["id"]
    cases = [
        (tenant.operator.token, f"/v1/contracts/{tenant.cid}%00x"),
        (tenant.operator.token, f"/v1/contracts/{tenant.cid}%00"),
        (hostile["user"].token, f"/v1/blobs/{blob_id}%00.txt"),
        (hostile["user"].token,
         f"/v1/conversations/{hostile['gid']}%00/messages"),
    ]
    for token, path in cases:
        response = raw_request(server, request_bytes("GET", path, token,
                                                     body=None))
        assert response.status in (400, 404), (path, response.status)
        assert set(response.json()) == {"error"}
    assert_healthy(server)


def test_hostile_traversal_never_serves_files(hostile):
    """Raw traversal paths, unnormalised by any client, find no route."""
    server, user = hostile["server"], hostile["user"]
    for path in ["/v1/blobs/../../etc/passwd", "/v1/blobs/../../../../etc",
                 "/../../etc/passwd", "/v1/blobs/%2e%2e/%2e%2e/etc/passwd",
                 "/v1/blobs/..%2F..%2Fetc%2Fpasswd", "/v1/blobs/./x",
                 "//v1//blobs//x"]:
        response = raw_request(server, request_bytes("GET", path, user.token,
                                                     body=None))
        assert response.status in (400, 404), (path, response.status)
        assert b"root:" not in response.body
        assert set(response.json()) == {"error"}
    assert_healthy(server)


def test_hostile_path_too_long(hostile):
    server, user = hostile["server"], hostile["user"]
    for length in (255, 256, 4000, 60000):
        path = "/v1/blobs/" + "a" * length
        response = raw_request(server, request_bytes("GET", path, user.token,
                                                     body=None))
        if length >= 60000:
            # Near the connection's memory limit, libmicrohttpd responds
            # itself.
            assert response.status is None or \
                400 <= response.status < 500, response.status
        else:
            assert_api_error(response, (400, 404))
    assert_healthy(server)


def test_hostile_oversized_header(hostile):
    """A header beyond the connection memory limit gets 431 from
    libmicrohttpd, or the connection is closed."""
    server = hostile["server"]
    for size in (70_000, 1_000_000):
        data = request_bytes("GET", "/healthz",
                             headers=[f"X-Big: {'a' * size}"], body=None)
        response = raw_request(server, data)
        assert response.status in (None, 413, 431), response.status
    many = [f"X-H{i}: {'b' * 100}" for i in range(2000)]
    response = raw_request(server, request_bytes("GET", "/healthz",
                                                 headers=many, body=None))
    assert response.status in (None, 413, 431), response.status
    assert_healthy(server)


def test_hostile_garbage_request_line(hostile):
    """Garbage gets 400 or 505 from libmicrohttpd, a closed connection, or
    no response at all, because libmicrohttpd skips leading empty lines
    and waits for a request line until the inactivity timeout."""
    server = hostile["server"]
    for data in [b"GARBAGE\r\n\r\n", b"\x00\x01\x02\x03\r\n\r\n",
                 b"GET\r\n\r\n", b"GET /healthz\r\n\r\n",
                 b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
                 b"\r\n\r\n\r\n", b"G" * 10000 + b"\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                 random_bytes(4096, seed=3)]:
        response = raw_request(server, data, timeout=1)
        assert response.status is None or 400 <= response.status < 600, \
            response.status
        assert response.status != 200
    assert_healthy(server)


def test_hostile_deeply_nested_json(hostile):
    """jansson stops at its depth limit (2048); the body gets 400."""
    server, tenant = hostile["server"], hostile["tenant"]
    for body in [b"[" * 100_000 + b"]" * 100_000,
                 b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                 b"[" * 100_000]:
        response = raw_request(server, request_bytes(
            "POST", "/v1/contracts", tenant.operator.token, body=body))
        assert_api_error(response, (400,))
        assert response.json()["error"]["code"] == "invalid_request"
    assert_healthy(server)


def test_hostile_json_too_large(hostile):
    """A JSON body above 1 MiB gets 413, announced or chunked."""
    server, tenant = hostile["server"], hostile["tenant"]
    big = json.dumps({"id": "x", "name": "n" * (2 << 20)}).encode()
    response = raw_request(server, request_bytes(
        "POST", "/v1/contracts", tenant.operator.token, body=big))
    assert_api_error(response, (413,))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 65536]),
                                         big[i:i + 65536])
                      for i in range(0, len(big), 65536)) + b"0\r\n\r\n"
    response = raw_request(server, request_bytes(
        "POST", "/v1/contracts", tenant.operator.token,
        headers=["Transfer-Encoding: chunked"], body=chunks))
    assert_api_error(response, (413,))
    assert_healthy(server)


def test_hostile_json_invalid_utf8_and_nul(hostile):
    server, tenant = hostile["server"], hostile["tenant"]
    op = tenant.operator.token
    bodies = [
        b'{"id":"bad\xff\xfe","name":"n","plan":"basic","licences":1}',
        b'{"id":"ok-id","name":"\xc3\x28","plan":"basic","licences":1}',
        b'{"id":"ok-id","name":"\xed\xa0\x80","plan":"basic","licences":1}',
        b'{"id":"x\\u0000y","name":"n","plan":"basic","licences":1}',
        b'{"id":"ok-id","name":"\\ud800","plan":"basic","licences":1}',
        b'{"id":"ok-id","id":"other","name":"n","plan":"basic",'
        b'"licences":1}',
        b'\xef\xbb\xbf{"id":"ok-id"}',
        b"",
        b"null",
        b"[]",
        b'"text"',
    ]
    for body in bodies:
        response = raw_request(server, request_bytes("POST", "/v1/contracts",
                                                     op, body=body))
        assert_api_error(response, (400,))
    user = hostile["user"]
    response = raw_request(server, request_bytes(
        "POST", "/v1/sessions",
        body=b'{"contract":"a\xff","username":"u","password":"p",'
             b'"chat_code":"ABCDEFGHIJ"}'))
    assert_api_error(response, (400,))
    response = raw_request(server, request_bytes(
        "POST", f"/v1/conversations/{hostile['gid']}/messages", user.token,
        body=b'{"text":"\xff\xff"}'))
    assert_api_error(response, (400,))
    assert_healthy(server)


@pytest.mark.parametrize("licences", [
    "18446744073709551616", "18446744073709551615", "9223372036854775807",
    "9223372036854775808", "-1", "0", "1000001", "4294967297", "1e3",
    "1.5", "\"10\"", "true", "null", "-9223372036854775808",
    "1" + "0" * 400])
def test_hostile_licences_overflow(hostile, licences):
    server, tenant = hostile["server"], hostile["tenant"]
    body = ('{"id":"ovf-%d","name":"n","plan":"basic","licences":%s}'
            % (abs(hash(licences)) % 10**9, licences)).encode()
    response = raw_request(server, request_bytes(
        "POST", "/v1/contracts", tenant.operator.token, body=body))
    assert_api_error(response, (400,))
    patch = ('{"licences":%s}' % licences).encode()
    response = raw_request(server, request_bytes(
        "PATCH", f"/v1/contracts/{tenant.cid}", tenant.operator.token,
        body=patch))
    assert_api_error(response, (400,))
    assert tenant.view()["licences"] == 10


def test_hostile_query_numbers(hostile):
    """Query numbers above their maximum are clamped, overflowing ones
    included; negative and non-numeric ones get 400."""
    server, user, gid = hostile["server"], hostile["user"], hostile["gid"]
    client = user.client
    for query in ["limit=99999999999999999999", "limit=18446744073709551616",
                  "before=99999999999999999999999999"]:
        response = client.get(f"/v1/conversations/{gid}/messages?{query}")
        assert response.status_code == 200, (query, response.text)
        assert len(response.json()["messages"]) == 1
    response = client.get("/v1/sync?since=0&limit=99999999999999999999")
    assert response.status_code == 200
    for query in ["limit=-1", "limit=1e3", "limit=", "limit=%2B5",
                  "limit=0x10", "limit=5%00", "limit=%205",
                  "before=-9223372036854775808", "limit=12abc"]:
        response = client.get(f"/v1/conversations/{gid}/messages?{query}")
        assert_api_error(response, (400,))
    for query in ["since=-1", "wait=-5", "since=abc", "wait=1.5"]:
        response = client.get(f"/v1/sync?{query}")
        assert_api_error(response, (400,))
    assert_healthy(server)


@pytest.mark.parametrize("value", ["-5", "-0", "99999999999999999999999",
                                   "18446744073709551616", "1e6", "abc",
                                   "5, 6", "0x10", " "])
def test_hostile_content_length(hostile, value):
    """A negative, overflowing or non-numeric Content-Length gets a 4xx
    (from libmicrohttpd or blobd) or a closed connection."""
    server, user = hostile["server"], hostile["user"]
    for path, token in [("/v1/blobs", user.token),
                        ("/v1/contracts", hostile["tenant"].operator.token)]:
        data = request_bytes("POST", path, token,
                             headers=[f"Content-Length: {value}"],
                             body=b"hello")
        response = raw_request(server, data)
        assert response.status is None or 400 <= response.status < 500, \
            (path, value, response.status)
    assert_healthy(server)


def test_hostile_upload_huge_content_length(hostile):
    """A Content-Length far above max_upload_bytes gets 413 in the error
    shape before any body byte is read."""
    server, user = hostile["server"], hostile["user"]
    for value in ("9223372036854775807", "18446744073709551615",
                  str(104857601)):
        response = raw_request(server, request_bytes(
            "POST", "/v1/blobs", user.token,
            headers=[f"Content-Length: {value}"], body=b""))
        assert response.status in (413,), (value, response.status)
        if response.body:
            assert response.json()["error"]["code"] == "too_large"
    assert_healthy(server)


def test_hostile_chunked_upload_411(hostile):
    server, user = hostile["server"], hostile["user"]
    response = raw_request(server, request_bytes(
        "POST", "/v1/blobs", user.token,
        headers=["Transfer-Encoding: chunked"],
        body=b"5\r\nhello\r\n0\r\n\r\n"))
    assert_api_error(response, (411,))
    assert response.json()["error"]["code"] == "length_required"
    assert_healthy(server)


def test_hostile_broken_chunked_body(hostile):
    server, tenant = hostile["server"], hostile["tenant"]
    for body in [b"zz\r\nhello\r\n0\r\n\r\n",
                 b"ffffffffffffffffffff\r\nhello\r\n",
                 b"-5\r\nhello\r\n0\r\n\r\n"]:
        response = raw_request(server, request_bytes(
            "POST", "/v1/contracts", tenant.operator.token,
            headers=["Transfer-Encoding: chunked"], body=body))
        assert response.status is None or 400 <= response.status < 500, \
            response.status
    assert_healthy(server)


def test_hostile_range_overflow(hostile):
    server, user, blob = hostile["server"], hostile["user"], hostile["blob"]
    path = f"/v1/blobs/{blob['id']}"
    for value in ["bytes=99999999999999999999999-",
                  "bytes=0-99999999999999999999999",
                  "bytes=-99999999999999999999999", "bytes=--1",
                  "bytes=18446744073709551615-0", "bytes=0-0,-1" * 50,
                  "bits=0-1", "bytes=" + "1" * 200 + "-"]:
        response = user.client.get(path, headers={"Range": value})
        assert response.status_code in (200, 206, 416), (value,
                                                         response.status_code)
        if response.status_code == 200:
            assert sha256_hex(response.content) == blob["id"]
    response = user.client.get(path,
                               headers={"Range": "bytes=18446744073709551615-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{blob['size']}"
    assert_healthy(server)


def test_hostile_request_id_not_echoed(hostile):
    """An unsafe X-Request-Id is replaced, so it cannot reach log lines or
    headers unescaped."""
    server = hostile["server"]
    for value in ["a" * 65, "<script>", "a b", "x\"y", "id;rm"]:
        response = server.client().get("/healthz",
                                       headers={"X-Request-Id": value})
        assert response.status_code == 200
        assert response.headers["X-Request-Id"] != value
        assert value not in server.log_text()
    response = server.client().get("/healthz",
                                   headers={"X-Request-Id": "safe-id_1.2:3"})
    assert response.headers["X-Request-Id"] == "safe-id_1.2:3"


def test_hostile_json_field_types(hostile):
    """Fields of the wrong type, or strings where ids are expected, get
    400 or 404 in the error shape."""
    server, tenant, user = hostile["server"], hostile["tenant"], \
        hostile["user"]
    gid = hostile["gid"]
    admin = tenant.admin.client
    cases = [
        (admin, "POST", f"/v1/contracts/{tenant.cid}/groups",
         {"name": "g", "members": ["../../etc/passwd"]}),
        (admin, "POST", f"/v1/contracts/{tenant.cid}/groups",
         {"name": "g", "members": [{"a": 1}]}),
        (admin, "POST", f"/v1/contracts/{tenant.cid}/groups",
         {"name": ["g"], "members": []}),
        (admin, "PUT", f"/v1/contracts/{tenant.cid}/groups/{gid}/members",
         {"members": "all"}),
        (admin, "POST", f"/v1/contracts/{tenant.cid}/purge",
         {"before": "9999-99-99T99:99:99Z"}),
        (admin, "POST", f"/v1/contracts/{tenant.cid}/purge",
         {"before": 12345}),
        (admin, "POST", f"/v1/contracts/{tenant.cid}/purge",
         {"before": "2026-01-01T00:00:00Z", "dry_run": "yes"}),
        (user.client, "POST", f"/v1/conversations/{gid}/messages",
         {"text": 5}),
        (user.client, "POST", f"/v1/conversations/{gid}/messages",
         {"text": "x", "attachments": [{"blob": "../../etc/passwd"}]}),
        (user.client, "POST", f"/v1/conversations/{gid}/messages",
         {"text": "x", "attachments": [{"blob": "A" * 64}]}),
        (user.client, "POST", f"/v1/conversations/{gid}/messages",
         {"text": "x", "attachments": "blob"}),
        (user.client, "POST", f"/v1/conversations/{gid}/messages",
         {"text": "x", "attachments": [{"blob": hostile["blob"]["id"],
                                        "filename": 7}]}),
        (admin, "PATCH", f"/v1/contracts/{tenant.cid}/users/{user.uid}",
         {"valid_until": "yesterday"}),
        (admin, "PATCH", f"/v1/contracts/{tenant.cid}/users/{user.uid}",
         {"role": "root"}),
    ]
    for caller, method, path, body in cases:
        response = caller.request(method, path, json=body)
        assert_api_error(response, (400, 404))
    assert_healthy(server)


def hold_connection(server, source):
    """Open a keep-alive connection from `source` that blobd has accepted
    and served once, so that it counts against the limits until it is
    closed. A connection without a response is retried, because the
    connection of the start-up health check may still count."""
    for _attempt in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port),
                                        timeout=1,
                                        source_address=(source, 0))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if read_response(sock).status == 200:
            sock.settimeout(10)
            return sock
        sock.close()
        time.sleep(0.1)
    raise AssertionError(f"no connection from {source} was served")


def healthz_answer(server, source, timeout):
    """Return the status of GET /healthz on a new connection from
    `source`, or None when the connection is closed or stays silent for
    `timeout` seconds."""
    try:
        response = raw_request(server, request_bytes("GET", "/healthz",
                                                     body=None),
                               source=source, timeout=timeout)
    except (ConnectionResetError, ConnectionRefusedError):
        return None
    return response.status


def test_hostile_connections_per_ip(blobd):
    """Beyond max_connections_per_ip, libmicrohttpd closes an address's
    new connections at once, while other addresses are served."""
    server = blobd(limits=LIMITS)
    open_connections = [hold_connection(server, "127.0.0.1")
            for _ in range(LIMITS["max_connections_per_ip"])]
    try:
        assert healthz_answer(server, "127.0.0.1", 5) is None
        assert healthz_answer(server, "127.0.0.2", 5) == 200
    finally:
        for sock in open_connections:
            sock.close()
    assert wait_until(lambda: healthz_answer(server, "127.0.0.1", 5) == 200,
                      10)


def test_hostile_connections_total(blobd):
    """At max_connections, libmicrohttpd accepts no more connections: a new
    one waits unserved in the listen queue, and is served once a held
    connection closes."""
    server = blobd(limits=LIMITS)
    open_connections = [hold_connection(server, f"127.0.1.{index + 1}")
            for index in range(LIMITS["max_connections"])]
    waiting = None
    try:
        waiting = socket.create_connection(("127.0.0.1", server.port),
                                           timeout=2,
                                           source_address=("127.0.0.3", 0))
        waiting.sendall(request_bytes("GET", "/healthz", body=None))
        assert read_response(waiting).status is None
        open_connections.pop().close()
        waiting.settimeout(10)
        assert read_response(waiting).status == 200
    finally:
        for sock in open_connections:
            sock.close()
        if waiting is not None:
            waiting.close()
    assert_healthy(server)
