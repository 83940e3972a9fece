"""Quota decisions: the exact boundary, duplicates of stored content,
concurrent uploads racing for the last bytes and photos that shrink."""

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (Tenant, error_code, error_field, jpeg_bytes,
                      photo_image, random_bytes, sha256_hex, tmp_files,
                      wait_until)

TINY_QUOTA = 100_000


@pytest.fixture(scope="module")
def server(module_blobd):
    """A server with the plan `tiny` of 100000 bytes per licence."""
    return module_blobd(plans={"tiny": TINY_QUOTA})


def upload_retrying(server, token, data, attempts=5):
    """Upload from a client of its own. Responses 429 and 503 change
    nothing, so the upload is repeated after their Retry-After (bounded)."""
    client = server.client(token)
    try:
        for _ in range(attempts):
            response = client.upload(data)
            if response.status_code not in (429, 503):
                return response
            time.sleep(min(int(response.headers.get("Retry-After", 1)), 5))
        return response
    finally:
        client.close()


def test_quota_exact_boundary(server):
    # Plan `unit` is one byte per licence: the quota is 1000 bytes.
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(600))
    response = client.upload(random_bytes(400))
    assert response.status_code == 201
    view = tenant.view()
    assert view["used_bytes"] == 1000
    assert view["quota_bytes"] == 1000
    assert view["blob_count"] == 2


def test_quota_one_byte_over_507(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(600))
    data = random_bytes(401)
    response = client.upload(data)
    assert response.status_code == 507
    assert error_code(response) == "quota_exceeded"
    assert error_field(response, "used_bytes") == 600
    assert error_field(response, "quota_bytes") == 1000
    assert error_field(response, "needed_bytes") == 401
    view = tenant.view()
    assert view["used_bytes"] == 600
    assert view["blob_count"] == 1
    assert client.get(f"/v1/blobs/{sha256_hex(data)}").status_code == 404
    assert wait_until(lambda: not tmp_files(server, tenant.cid), 5)


def test_quota_full_one_byte_507(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(1000))
    response = client.upload(b"x")
    assert response.status_code == 507
    assert error_code(response) == "quota_exceeded"
    assert error_field(response, "used_bytes") == 1000
    assert error_field(response, "quota_bytes") == 1000
    assert error_field(response, "needed_bytes") == 1
    assert tenant.view()["used_bytes"] == 1000


def test_quota_single_upload_over_507(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    response = tenant.users[0].client.upload(random_bytes(1001))
    assert response.status_code == 507
    assert error_code(response) == "quota_exceeded"
    assert error_field(response, "used_bytes") == 0
    assert error_field(response, "needed_bytes") == 1001
    assert tenant.view()["used_bytes"] == 0
    assert tenant.view()["blob_count"] == 0


def test_quota_duplicate_when_full(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=2)
    anna, bert = tenant.users
    first = random_bytes(700)
    stored = anna.client.upload_ok(first)
    anna.client.upload_ok(random_bytes(300))
    again = anna.client.upload(first)
    assert again.status_code == 201
    assert again.json() == stored
    by_other = bert.client.upload(first)
    assert by_other.status_code == 201
    assert by_other.json() == stored
    assert bert.client.get(f"/v1/blobs/{stored['id']}").content == first
    assert tenant.view()["used_bytes"] == 1000
    assert tenant.view()["blob_count"] == 2


def test_quota_empty_blob_when_full(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(1000))
    response = client.upload(b"")
    assert response.status_code == 201
    assert tenant.view()["used_bytes"] == 1000


def test_quota_race_equal_sizes(server):
    tenant = Tenant(server, plan="tiny", licences=1, users=1)
    token = tenant.users[0].token
    tenant.users[0].client.upload_ok(random_bytes(50_000))
    bodies = [random_bytes(10_000) for _ in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(
            lambda body: upload_retrying(server, token, body), bodies))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 507}, statuses
    # Used bytes only grow, so a correct server accepts exactly 5 of them.
    assert statuses.count(201) == 5
    for response in responses:
        if response.status_code == 507:
            assert error_code(response) == "quota_exceeded"
    view = tenant.view()
    assert view["used_bytes"] == TINY_QUOTA
    assert view["blob_count"] == 6


def test_quota_race_mixed_sizes(server):
    tenant = Tenant(server, plan="tiny", licences=1, users=2)
    tokens = [user.token for user in tenant.users]
    tenant.users[0].client.upload_ok(random_bytes(40_000))
    rng = random.Random(20)
    bodies = [random_bytes(rng.randrange(1000, 15_000)) for _ in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(
            lambda pair: upload_retrying(server, tokens[pair[0] % 2],
                                         pair[1]),
            enumerate(bodies)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 507}, statuses
    accepted = [b for b, r in zip(bodies, responses) if r.status_code == 201]
    rejected = [b for b, r in zip(bodies, responses) if r.status_code == 507]
    view = tenant.view()
    assert view["used_bytes"] <= TINY_QUOTA
    assert view["used_bytes"] == 40_000 + sum(len(b) for b in accepted)
    assert view["blob_count"] == 1 + len(accepted)
    # A rejection is right only if the upload did not fit then. Used bytes
    # only grow, so it cannot fit into what is free at the end either.
    free = TINY_QUOTA - view["used_bytes"]
    for body in rejected:
        assert len(body) > free, len(body)

    owner = tenant.users[0].client
    other = tenant.users[1].client
    for index, body in enumerate(bodies):
        client = owner if index % 2 == 0 else other
        download = client.get(f"/v1/blobs/{sha256_hex(body)}")
        expected = 200 if body in accepted else 404
        assert download.status_code == expected, index


def test_quota_race_usage_report(server):
    tenant = Tenant(server, plan="tiny", licences=1, users=1)
    token = tenant.users[0].token
    bodies = [random_bytes(9_000) for _ in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(
            lambda body: upload_retrying(server, token, body), bodies))
    accepted = sum(r.status_code == 201 for r in responses)
    assert accepted == 11
    report = tenant.operator.get("/v1/usage").json()["contracts"]
    row = {v["id"]: v for v in report}[tenant.cid]
    assert row["used_bytes"] == 11 * 9_000
    assert row["blob_count"] == 11


def test_quota_photo_shrinks_to_fit(server):
    photo = jpeg_bytes(photo_image(4000, 3000, seed=11, noise=8),
                       quality=90)
    probe = Tenant(server, users=1)
    stored = probe.users[0].client.upload_ok(photo)
    assert stored["original_size"] == len(photo)
    assert stored["size"] < len(photo) // 2
    # Plan `unit` with a million licences is a 1000000-byte quota; leave
    # free exactly the stored size, far less than the upload body.
    tenant = Tenant(server, plan="unit", licences=1_000_000, users=1)
    client = tenant.users[0].client
    filler = 1_000_000 - stored["size"]
    client.upload_ok(random_bytes(filler))
    free = tenant.view()["quota_bytes"] - tenant.view()["used_bytes"]
    assert free == stored["size"]
    assert len(photo) > free
    response = client.upload(photo)
    assert response.status_code == 201
    assert response.json() == stored
    assert tenant.view()["used_bytes"] == 1_000_000


def test_quota_photo_one_byte_short(server):
    photo = jpeg_bytes(photo_image(4000, 3000, seed=12, noise=8),
                       quality=90)
    probe = Tenant(server, users=1)
    stored = probe.users[0].client.upload_ok(photo)
    tenant = Tenant(server, plan="unit", licences=1_000_000, users=1)
    client = tenant.users[0].client
    client.upload_ok(random_bytes(1_000_000 - stored["size"] + 1))
    response = client.upload(photo)
    assert response.status_code == 507
    assert error_code(response) == "quota_exceeded"
    assert error_field(response, "needed_bytes") == stored["size"]
    assert tenant.view()["blob_count"] == 1
