"""Service routes and cross-cutting rules: /healthz, /metrics, request
ids, the error shape and the operator token file."""

import re
import stat
import uuid

import pytest

from conftest import Tenant, error_code, random_bytes, wait_until

# A Prometheus text-format line: a comment, or a sample with optional labels,
# a value and an optional timestamp.
METRIC_SAMPLE = re.compile(
    r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    r"(\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\]|\\.)*\",?)*\})?"
    r" (-?[0-9.]+([eE][-+]?[0-9]+)?|NaN|[-+]Inf)( -?[0-9]+)?")
METRIC_COMMENT = re.compile(
    r"# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|"
    r"TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
    r"(counter|gauge|histogram|summary|untyped))|#.*")


def metric_names(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def test_healthz_without_token(server):
    response = server.client().get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


def test_healthz_ignores_bad_token(server):
    response = server.client("not-a-token").get("/healthz")
    assert response.status_code == 200


def test_metrics_without_token_401(server):
    response = server.client().get("/metrics")
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_metrics_user_and_admin_403(server):
    tenant = Tenant(server, users=1)
    for client in (tenant.admin.client, tenant.users[0].client):
        response = client.get("/metrics")
        assert response.status_code == 403
        assert error_code(response) == "forbidden"


def test_metrics_prometheus_text(server):
    tenant = Tenant(server, users=1)
    tenant.users[0].client.upload_ok(random_bytes(1000))
    response = server.operator().get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = [line for line in response.text.splitlines() if line]
    samples = [line for line in lines if not line.startswith("#")]
    assert samples
    for line in lines:
        pattern = METRIC_COMMENT if line.startswith("#") else METRIC_SAMPLE
        assert pattern.fullmatch(line), line


@pytest.mark.parametrize("word", [
    "request", "upload", "dedup", "rescale", "quota"])
def test_metrics_families(server, word):
    response = server.operator().get("/metrics")
    names = metric_names(response.text)
    assert any(word in name.lower() for name in names), sorted(names)


def test_metrics_change_with_traffic(server):
    tenant = Tenant(server, users=1)
    operator = server.operator()
    before = operator.get("/metrics").text
    data = random_bytes(5000)
    for _ in range(3):
        tenant.users[0].client.upload_ok(data)
    after = operator.get("/metrics").text
    assert after != before


@pytest.mark.parametrize("path,auth", [
    ("/healthz", False), ("/v1/usage", True), ("/v1/usage", False),
    ("/v1/contracts/none-such", True), ("/v1/nothing/here", True)])
def test_request_id_echoed(server, path, auth):
    client = server.operator() if auth else server.client()
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = client.get(path, headers={"X-Request-Id": request_id})
    assert response.headers.get("X-Request-Id") == request_id


def test_request_id_echoed_on_upload(server):
    tenant = Tenant(server, users=1)
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = tenant.users[0].client.upload(
        random_bytes(100), headers={"X-Request-Id": request_id})
    assert response.status_code == 201
    assert response.headers.get("X-Request-Id") == request_id


def test_request_id_generated(server):
    client = server.client()
    first = client.get("/healthz").headers.get("X-Request-Id")
    second = client.get("/healthz").headers.get("X-Request-Id")
    missing = client.get("/v1/nothing").headers.get("X-Request-Id")
    assert first
    assert second
    assert missing
    assert first != second


def test_request_id_in_log(server):
    request_id = f"e2e-log-{uuid.uuid4().hex}"
    server.operator().get("/v1/usage", headers={"X-Request-Id": request_id})
    assert wait_until(lambda: request_id in server.log_text(), 5)


def test_unknown_route_404(server):
    response = server.operator().get("/v1/no/such/route")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_json_body_too_large_413(server):
    operator = server.operator()
    response = operator.post("/v1/contracts", json={
        "id": "big", "name": "x" * (2 << 20), "plan": "basic",
        "licences": 1})
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert operator.get("/v1/contracts/big").status_code == 404


def test_error_shape(server):
    tenant = Tenant(server, users=1)
    operator = server.operator()
    answers = [
        server.client().get("/v1/usage"),
        tenant.users[0].client.get("/v1/usage"),
        operator.get("/v1/contracts/none-such"),
        operator.post("/v1/contracts", json={"id": "BAD"}),
        tenant.users[0].client.get("/v1/sync", params={"since": -1}),
    ]
    for response in answers:
        assert response.headers["Content-Type"].startswith(
            "application/json"), response.status_code
        error = response.json()["error"]
        assert isinstance(error["code"], str), response.status_code
        assert isinstance(error["message"], str), response.status_code
        assert error["message"], response.status_code


def test_operator_token_file(blobd):
    server = blobd(operator_token=False)
    token_path = server.data_dir / "operator.token"
    assert token_path.exists()
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    token = token_path.read_text().strip()
    assert token
    assert str(token_path) in server.log_text()
    assert token not in server.log_text()
    server.token = token
    response = server.operator().get("/v1/usage")
    assert response.status_code == 200


def test_operator_token_file_kept(blobd):
    server = blobd(operator_token=False)
    token_path = server.data_dir / "operator.token"
    token = token_path.read_text().strip()
    server.restart()
    assert token_path.read_text().strip() == token
    response = server.client(token).get("/v1/usage")
    assert response.status_code == 200
