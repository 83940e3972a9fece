"""Operator API: contracts, plans, licences and the usage report."""

import csv
import io

import pytest

from conftest import (Tenant, contract_view, create_contract, error_code,
                      error_field, random_bytes, unique)

BASIC = 5_000_000_000
PRO = 10_000_000_000


def test_contract_create_view(server):
    operator = server.operator()
    cid = unique("acme")
    response = operator.post("/v1/contracts", json={
        "id": cid, "name": "ACME GmbH", "plan": "basic", "licences": 10})
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "id": cid, "name": "ACME GmbH", "plan": "basic", "licences": 10,
        "quota_bytes": 10 * BASIC, "used_bytes": 0, "blob_count": 0,
        "message_count": 0}


def test_contract_get_same_view(server):
    operator = server.operator()
    created = create_contract(operator, plan="pro", licences=3)
    response = operator.get(f"/v1/contracts/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert created["quota_bytes"] == 3 * PRO


def test_contract_duplicate_id_409(server):
    operator = server.operator()
    created = create_contract(operator)
    response = operator.post("/v1/contracts", json={
        "id": created["id"], "name": "Other", "plan": "pro", "licences": 1})
    assert response.status_code == 409
    assert error_code(response) == "conflict"
    assert contract_view(operator, created["id"]) == created


@pytest.mark.parametrize("cid", [
    "", "ACME", "acme corp", "acme/x", "acme.x", "acme%2Fx", "ä", "a" * 65,
    17, None])
def test_contract_bad_id_400(server, cid):
    operator = server.operator()
    response = operator.post("/v1/contracts", json={
        "id": cid, "name": "Bad", "plan": "basic", "licences": 1})
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_contract_id_limits_accepted(server):
    operator = server.operator()
    longest = ("z" + unique("x").replace("-", "_")).ljust(64, "9")
    assert len(longest) == 64
    assert create_contract(operator, cid=longest)["id"] == longest
    short = unique("")[-10:]
    assert create_contract(operator, cid=short)["id"] == short


@pytest.mark.parametrize("licences", [
    0, -1, 1_000_001, "10", 1.5, None, True])
def test_contract_bad_licences_400(server, licences):
    operator = server.operator()
    response = operator.post("/v1/contracts", json={
        "id": unique("lic"), "name": "Bad", "plan": "basic",
        "licences": licences})
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_contract_licences_limits_accepted(server):
    operator = server.operator()
    assert create_contract(operator, licences=1)["quota_bytes"] == BASIC
    largest = create_contract(operator, licences=1_000_000)
    assert largest["quota_bytes"] == 1_000_000 * BASIC


def test_contract_missing_fields_400(server):
    operator = server.operator()
    for missing in ("id", "plan", "licences"):
        body = {"id": unique("m"), "name": "N", "plan": "basic",
                "licences": 1}
        del body[missing]
        response = operator.post("/v1/contracts", json=body)
        assert response.status_code == 400, missing
        assert error_code(response) == "invalid_request", missing


def test_contract_unknown_plan_400(server):
    operator = server.operator()
    response = operator.post("/v1/contracts", json={
        "id": unique("p"), "name": "N", "plan": "platinum", "licences": 1})
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_contract_malformed_json_400(server):
    operator = server.operator()
    response = operator.post("/v1/contracts", data=b'{"id": "x", ',
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_contract_unknown_404(server):
    operator = server.operator()
    response = operator.get(f"/v1/contracts/{unique('none')}")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "/users", None),
    ("POST", "/users", {"username": "x", "password": "pw-123456"}),
    ("POST", "/groups", {"name": "g", "members": []}),
    ("POST", "/purge", {"before": "2020-01-01T00:00:00Z", "dry_run": True}),
])
def test_contract_unknown_subroutes_404(server, method, suffix, body):
    operator = server.operator()
    response = operator.request(method, f"/v1/contracts/{unique('none')}"
                                f"{suffix}", json=body)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_contract_patch_plan(server):
    operator = server.operator()
    cid = create_contract(operator, plan="basic", licences=4)["id"]
    response = operator.patch(f"/v1/contracts/{cid}", json={"plan": "pro"})
    assert response.status_code == 200
    assert response.json()["plan"] == "pro"
    assert response.json()["quota_bytes"] == 4 * PRO
    assert contract_view(operator, cid) == response.json()


def test_contract_patch_licences(server):
    operator = server.operator()
    cid = create_contract(operator, plan="pro", licences=4)["id"]
    response = operator.patch(f"/v1/contracts/{cid}", json={"licences": 12})
    assert response.status_code == 200
    assert response.json()["licences"] == 12
    assert response.json()["quota_bytes"] == 12 * PRO
    assert contract_view(operator, cid)["licences"] == 12


def test_contract_patch_both(server):
    operator = server.operator()
    cid = create_contract(operator, plan="pro", licences=4)["id"]
    response = operator.patch(f"/v1/contracts/{cid}",
                              json={"plan": "basic", "licences": 7})
    assert response.status_code == 200
    assert response.json()["plan"] == "basic"
    assert response.json()["quota_bytes"] == 7 * BASIC


@pytest.mark.parametrize("body", [
    {"plan": "platinum"}, {"licences": 0}, {"licences": 1_000_001},
    {"licences": "3"}, {"plan": 5}])
def test_contract_patch_bad_values_400(server, body):
    operator = server.operator()
    created = create_contract(operator)
    response = operator.patch(f"/v1/contracts/{created['id']}", json=body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"
    assert contract_view(operator, created["id"]) == created


def test_contract_patch_unknown_404(server):
    operator = server.operator()
    response = operator.patch(f"/v1/contracts/{unique('none')}",
                              json={"licences": 2})
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_contract_patch_below_usage_409(server):
    # Plan `unit` is one byte per licence, so the quota is the licence count.
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    tenant.users[0].client.upload_ok(random_bytes(600))
    operator = tenant.operator
    response = operator.patch(f"/v1/contracts/{tenant.cid}",
                              json={"licences": 599})
    assert response.status_code == 409
    assert error_code(response) == "quota_below_usage"
    assert error_field(response, "used_bytes") == 600
    assert error_field(response, "quota_bytes") == 599
    view = tenant.view()
    assert view["licences"] == 1000
    assert view["quota_bytes"] == 1000


def test_contract_patch_plan_below_usage_409(server):
    tenant = Tenant(server, plan="basic", licences=1, users=1)
    tenant.users[0].client.upload_ok(random_bytes(1500))
    response = tenant.operator.patch(f"/v1/contracts/{tenant.cid}",
                                     json={"plan": "unit"})
    assert response.status_code == 409
    assert error_code(response) == "quota_below_usage"
    assert error_field(response, "used_bytes") == 1500
    assert error_field(response, "quota_bytes") == 1
    assert tenant.view()["plan"] == "basic"


def test_contract_patch_to_exact_usage(server):
    tenant = Tenant(server, plan="unit", licences=1000, users=1)
    tenant.users[0].client.upload_ok(random_bytes(600))
    response = tenant.operator.patch(f"/v1/contracts/{tenant.cid}",
                                     json={"licences": 600})
    assert response.status_code == 200
    assert response.json()["quota_bytes"] == 600
    assert response.json()["used_bytes"] == 600


def test_contract_get_by_own_admin(server):
    tenant = Tenant(server, users=1)
    response = tenant.admin.client.get(f"/v1/contracts/{tenant.cid}")
    assert response.status_code == 200
    assert response.json() == tenant.view()


def test_contract_get_by_user_403(server):
    tenant = Tenant(server, users=1)
    response = tenant.users[0].client.get(f"/v1/contracts/{tenant.cid}")
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_contract_create_by_admin_403(server):
    tenant = Tenant(server, users=0)
    response = tenant.admin.client.post("/v1/contracts", json={
        "id": unique("x"), "name": "N", "plan": "basic", "licences": 1})
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_contract_patch_by_admin_403(server):
    tenant = Tenant(server, users=0)
    response = tenant.admin.client.patch(f"/v1/contracts/{tenant.cid}",
                                         json={"licences": 1_000_000})
    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert tenant.view()["licences"] == 10


def test_contract_counts_blobs_messages(server):
    tenant = Tenant(server, users=2)
    anna, bert = tenant.users
    first = anna.client.upload_ok(random_bytes(1000))
    second = bert.client.upload_ok(random_bytes(234))
    anna.client.upload_ok(random_bytes(1000, seed=None))
    group = tenant.group([anna, bert])
    anna.client.post_message_ok(group["id"], "one",
                                [(first["id"], "a.bin")])
    bert.client.post_message_ok(group["id"], "two",
                                [(second["id"], "b.bin")])
    view = tenant.view()
    assert view["used_bytes"] == 2234
    assert view["blob_count"] == 3
    assert view["message_count"] == 2


def test_usage_json_sorted(server):
    operator = server.operator()
    prefix = unique("u")
    for suffix in ("m", "c", "x", "a"):
        create_contract(operator, cid=f"{prefix}-{suffix}")
    response = operator.get("/v1/usage")
    assert response.status_code == 200
    ids = [view["id"] for view in response.json()["contracts"]]
    assert ids == sorted(ids)
    mine = [cid for cid in ids if cid.startswith(prefix)]
    assert mine == [f"{prefix}-{s}" for s in ("a", "c", "m", "x")]


def test_usage_json_figures(server):
    tenant = Tenant(server, plan="pro", licences=2, users=1)
    tenant.users[0].client.upload_ok(random_bytes(777))
    response = tenant.operator.get("/v1/usage")
    assert response.status_code == 200
    views = {v["id"]: v for v in response.json()["contracts"]}
    assert views[tenant.cid] == tenant.view()
    assert views[tenant.cid]["used_bytes"] == 777


def test_usage_csv(server):
    tenant = Tenant(server, plan="pro", licences=2, users=1)
    tenant.users[0].client.upload_ok(random_bytes(4321))
    response = tenant.operator.get("/v1/usage", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == \
        "contract,plan,licences,quota_bytes,used_bytes,blob_count"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    ids = [row["contract"] for row in rows]
    assert ids == sorted(ids)
    row = {r["contract"]: r for r in rows}[tenant.cid]
    assert row == {"contract": tenant.cid, "plan": "pro", "licences": "2",
                   "quota_bytes": str(2 * PRO), "used_bytes": "4321",
                   "blob_count": "1"}


def test_usage_csv_matches_json(server):
    operator = server.operator()
    create_contract(operator)
    as_json = operator.get("/v1/usage").json()["contracts"]
    as_csv = operator.get("/v1/usage", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    # Contracts created by other tests between the two calls would differ,
    # but this module's tests run one at a time.
    assert [r["contract"] for r in rows] == [v["id"] for v in as_json]
    for row, view in zip(rows, as_json):
        assert int(row["used_bytes"]) == view["used_bytes"], view["id"]
        assert int(row["quota_bytes"]) == view["quota_bytes"], view["id"]
        assert int(row["blob_count"]) == view["blob_count"], view["id"]


def test_usage_by_admin_403(server):
    tenant = Tenant(server, users=1)
    for client in (tenant.admin.client, tenant.users[0].client):
        response = client.get("/v1/usage")
        assert response.status_code == 403
        assert error_code(response) == "forbidden"


def test_usage_without_token_401(server):
    response = server.client().get("/v1/usage")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_usage_wrong_operator_token_401(server):
    response = server.client(server.token + "x").get("/v1/usage")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
