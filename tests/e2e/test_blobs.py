"""Blob uploads and downloads: content addressing, deduplication, media
types, HTTP caching and ranges, upload limits and download rights."""

import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (Tenant, corpus_bytes, error_code, minimal_pdf,
                      random_bytes, sha256_hex, tmp_files, wait_until)

EMPTY_SHA256 = \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.fixture(scope="module")
def shared(server):
    """One contract with one user, shared by the tests of this module that
    do not count the contract's blobs."""
    return Tenant(server, users=1)


@pytest.fixture
def client(shared):
    return shared.users[0].client


def raw_exchange(server, head, body=b"", timeout=10):
    """Send `head` (the request line and headers, without the blank line)
    and `body` over a new socket; return (status, headers, parsed JSON or
    None). Raises socket.timeout when no response arrives within `timeout` s."""
    sock = socket.create_connection(("127.0.0.1", server.port),
                                    timeout=timeout)
    try:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        payload = response.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return response.status, dict(response.getheaders()), parsed
    finally:
        sock.close()


def upload_head(server, token, extra):
    lines = ["POST /v1/blobs HTTP/1.1",
             f"Host: 127.0.0.1:{server.port}",
             f"Authorization: Bearer {token}",
             "Connection: close"] + extra
    return "\r\n".join(lines)


def media_type(response):
    return response.headers["Content-Type"].split(";")[0].strip()


def test_blob_upload_view(client):
    data = random_bytes(5000)
    response = client.upload(data)
    assert response.status_code == 201
    view = response.json()
    assert view["id"] == sha256_hex(data)
    assert view["size"] == 5000
    assert view["original_size"] == 5000
    assert view["media_type"] == "application/octet-stream"
    assert "width" not in view
    assert "height" not in view


def test_blob_download_same_bytes(client):
    data = random_bytes(70_000)
    blob = client.upload_ok(data)
    response = client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Length"] == "70000"
    assert response.headers["ETag"] == f'"{blob["id"]}"'


def test_blob_same_document_twice(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    pdf = minimal_pdf("twice")
    first = client.upload(pdf)
    second = client.upload(pdf)
    assert first.status_code == 201
    assert second.status_code == 201
    assert second.json() == first.json()
    view = tenant.view()
    assert view["used_bytes"] == len(pdf)
    assert view["blob_count"] == 1


def test_blob_same_bytes_two_users(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    data = random_bytes(3000)
    first = anna.client.upload_ok(data)
    second = bert.client.upload_ok(data)
    assert second == first
    assert tenant.view()["used_bytes"] == 3000
    assert tenant.view()["blob_count"] == 1
    for user in (anna, bert):
        response = user.client.get(f"/v1/blobs/{first['id']}")
        assert response.status_code == 200, user.username
        assert response.content == data


def test_blob_parallel_same_bytes(server):
    tenant = Tenant(server, users=2)
    tokens = [user.token for user in tenant.users]
    data = random_bytes(200_000)

    def upload(index):
        client = server.client(tokens[index % 2])
        try:
            return client.upload(data)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(upload, range(16)))
    assert [r.status_code for r in responses] == [201] * 16
    assert {r.json()["id"] for r in responses} == {sha256_hex(data)}
    view = tenant.view()
    assert view["used_bytes"] == 200_000
    assert view["blob_count"] == 1


def test_blob_same_bytes_two_contracts(server):
    first = Tenant(server, users=1)
    second = Tenant(server, users=1)
    data = random_bytes(4096)
    one = first.users[0].client.upload_ok(data)
    two = second.users[0].client.upload_ok(data)
    assert one["id"] == two["id"]
    assert first.view()["used_bytes"] == 4096
    assert second.view()["used_bytes"] == 4096
    assert first.view()["blob_count"] == 1
    assert second.view()["blob_count"] == 1


def test_blob_zero_bytes(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    response = client.upload(b"")
    assert response.status_code == 201
    assert response.json()["id"] == EMPTY_SHA256
    assert response.json()["size"] == 0
    assert response.json()["original_size"] == 0
    download = client.get(f"/v1/blobs/{EMPTY_SHA256}")
    assert download.status_code == 200
    assert download.content == b""
    assert download.headers["Content-Length"] == "0"
    assert tenant.view()["used_bytes"] == 0
    assert tenant.view()["blob_count"] == 1


def test_blob_media_type_from_bytes(client):
    pdf = minimal_pdf()
    view = client.upload_ok(pdf, headers={"Content-Type": "image/png",
                                          "X-Filename": "photo.png"})
    assert view["media_type"] == "application/pdf"
    assert view["id"] == sha256_hex(pdf)
    download = client.get(f"/v1/blobs/{view['id']}")
    assert media_type(download) == "application/pdf"
    assert download.content == pdf


@pytest.mark.parametrize("name,expected", [
    ("gif_named_as.jpg", "image/gif"),
    ("webp_named_as.png", "image/webp"),
    ("one_byte_newline.jpg", None),
])
def test_blob_non_image_stored_verbatim(client, name, expected):
    data = corpus_bytes(name)
    view = client.upload_ok(data, headers={"Content-Type": "image/jpeg"})
    assert view["id"] == sha256_hex(data)
    assert view["size"] == len(data)
    assert "width" not in view
    if expected is not None:
        assert view["media_type"] == expected
    assert view["media_type"] not in ("image/jpeg", "image/png")
    assert client.get(f"/v1/blobs/{view['id']}").content == data


def test_blob_jpeg_named_png(client):
    view = client.upload_ok(
        corpus_bytes("jpeg_named_as.png"),
        headers={"Content-Type": "image/png", "X-Filename": "x.png"})
    assert view["media_type"] == "image/jpeg"
    assert view["width"] > 0


def test_blob_headers(client):
    blob = client.upload_ok(minimal_pdf("headers"))
    response = client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{blob["id"]}"'
    cache = {part.strip() for part in
             response.headers["Cache-Control"].split(",")}
    assert "private" in cache
    assert "immutable" in cache
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers.get("Content-Disposition", "inline")
    assert not disposition.startswith("attachment")


@pytest.mark.parametrize("data", [
    b"<html><body><script>alert(1)</script></body></html>\n",
    b"\x7fELF\x02\x01\x01\x00" + bytes(200),
    bytes(range(256)) * 8,
], ids=["html", "elf", "binary"])
def test_blob_attachment_disposition(client, data):
    blob = client.upload_ok(data)
    response = client.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content == data


def test_blob_image_inline(client):
    blob = client.upload_ok(corpus_bytes("pngsuite_basn2c08.png"))
    response = client.get(f"/v1/blobs/{blob['id']}")
    assert media_type(response) == "image/png"
    disposition = response.headers.get("Content-Disposition", "inline")
    assert not disposition.startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_blob_head(client):
    data = random_bytes(12345)
    blob = client.upload_ok(data)
    response = client.head(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "12345"
    assert response.headers["ETag"] == f'"{blob["id"]}"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in response.headers["Cache-Control"]


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-9", 0, 9),
    ("bytes=100-199", 100, 199),
    ("bytes=990-", 990, 999),
    ("bytes=-5", 995, 999),
    ("bytes=995-5000", 995, 999),
])
def test_blob_range_206(client, header, start, end):
    data = random_bytes(1000)
    blob = client.upload_ok(data)
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/1000"
    assert response.content == data[start:end + 1]
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["ETag"] == f'"{blob["id"]}"'
    assert "immutable" in response.headers["Cache-Control"]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000"])
def test_blob_range_416(client, header):
    blob = client.upload_ok(random_bytes(1000))
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */1000"
    assert error_code(response) == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["items=0-5", "lines=1-2"])
def test_blob_range_unknown_unit_200(client, header):
    data = random_bytes(300)
    blob = client.upload_ok(data)
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"Range": header})
    assert response.status_code == 200
    assert response.content == data


def test_blob_range_several(client):
    data = random_bytes(300)
    blob = client.upload_ok(data)
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"Range": "bytes=0-9,100-109"})
    assert response.status_code in (200, 206)
    if response.status_code == 200:
        assert response.content == data


def test_blob_range_empty_416(client):
    blob = client.upload_ok(b"")
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"Range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */0"


@pytest.mark.parametrize("form", [
    '"{id}"', 'W/"{id}"', '"{zeros}", "{id}"', "*"],
    ids=["strong", "weak", "list", "star"])
def test_blob_if_none_match_304(client, form):
    blob = client.upload_ok(random_bytes(2000))
    etag = f'"{blob["id"]}"'
    header = form.format(id=blob["id"], zeros="0" * 64)
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert "immutable" in response.headers["Cache-Control"]


def test_blob_head_if_none_match_304(client):
    blob = client.upload_ok(random_bytes(700))
    response = client.head(f"/v1/blobs/{blob['id']}",
                           headers={"If-None-Match": f'"{blob["id"]}"'})
    assert response.status_code == 304


def test_blob_if_none_match_other_200(client):
    blob = client.upload_ok(random_bytes(2000))
    response = client.get(f"/v1/blobs/{blob['id']}",
                          headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert response.status_code == 200
    assert len(response.content) == 2000


def test_blob_unknown_404(client):
    response = client.get(f"/v1/blobs/{'ab' * 32}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_blob_other_user_404(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    blob = anna.client.upload_ok(random_bytes(800))
    for client in (bert.client, tenant.admin.client):
        for method in ("GET", "HEAD"):
            response = client.request(method, f"/v1/blobs/{blob['id']}")
            assert response.status_code == 404, method
            if method == "GET":
                assert error_code(response) == "not_found"


def test_blob_operator_404(server):
    tenant = Tenant(server, users=1)
    blob = tenant.users[0].client.upload_ok(random_bytes(800))
    response = tenant.operator.get(f"/v1/blobs/{blob['id']}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_blob_without_token_401(server):
    tenant = Tenant(server, users=1)
    blob = tenant.users[0].client.upload_ok(random_bytes(800))
    anonymous = server.client()
    upload = anonymous.upload(random_bytes(100))
    assert upload.status_code == 401
    assert error_code(upload) == "unauthorized"
    download = anonymous.get(f"/v1/blobs/{blob['id']}")
    assert download.status_code == 401
    assert error_code(download) == "unauthorized"
    assert tenant.view()["blob_count"] == 1


def test_blob_length_required_411(server):
    tenant = Tenant(server, users=1)
    head = upload_head(server, tenant.users[0].token, [])
    status, _headers, body = raw_exchange(server, head)
    assert status == 411
    assert body["error"]["code"] == "length_required"
    assert tenant.view()["blob_count"] == 0


def test_blob_chunked_411(server):
    tenant = Tenant(server, users=1)
    head = upload_head(server, tenant.users[0].token,
                       ["Transfer-Encoding: chunked"])
    status, _headers, body = raw_exchange(
        server, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411
    assert body["error"]["code"] == "length_required"
    assert tenant.view()["blob_count"] == 0


def test_blob_too_large_before_body(server):
    tenant = Tenant(server, users=1)
    head = upload_head(server, tenant.users[0].token,
                       ["Content-Length: 104857601"])
    # No byte of the body is sent: the response must follow from the headers.
    status, _headers, body = raw_exchange(server, head)
    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert tenant.view()["used_bytes"] == 0


def test_blob_too_large_expect_continue(server):
    tenant = Tenant(server, users=1)
    head = upload_head(server, tenant.users[0].token,
                       ["Content-Length: 200000000",
                        "Expect: 100-continue"])
    status, _headers, body = raw_exchange(server, head)
    assert status == 413
    assert body["error"]["code"] == "too_large"


def test_blob_max_upload_boundary(blobd):
    server = blobd(limits={"max_upload_bytes": 1000})
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    assert client.upload(random_bytes(1000)).status_code == 201
    response = client.upload(random_bytes(1001))
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert tenant.view()["used_bytes"] == 1000


def test_blob_aborted_upload_leaves_nothing(server):
    tenant = Tenant(server, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(100))
    head = upload_head(server, tenant.users[0].token,
                       ["Content-Length: 2000000"])
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode() + b"\r\n\r\n" + random_bytes(700_000))
    time.sleep(0.3)
    sock.close()
    emptied = wait_until(lambda: not tmp_files(server, tenant.cid), 15)
    assert emptied, tmp_files(server, tenant.cid)
    view = tenant.view()
    assert view["used_bytes"] == 100
    assert view["blob_count"] == 1
    # The server still serves uploads after the aborted one.
    assert client.upload(random_bytes(10)).status_code == 201


def test_blob_x_filename_not_stored(client):
    data = random_bytes(300)
    one = client.upload_ok(data, headers={"X-Filename": "report.bin"})
    two = client.upload_ok(data, headers={"X-Filename": "other.bin"})
    assert one == two
    assert "filename" not in one
