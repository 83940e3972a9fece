"""TLS: blobd started with --tls-cert and --tls-key serves HTTPS with TLS
1.2 and 1.3 only. A self-signed certificate is made with `openssl req` in
a temporary directory, and curl and `openssl s_client` talk to blobd.

TLS 1.0 and 1.1 must be rejected by blobd itself: the client is allowed
to offer them (OpenSSL security level 0), and a control run against
`openssl s_server` shows that the client does negotiate TLS 1.1 where a
server accepts it.
"""

import re
import subprocess
import time

import pytest

from conftest import BlobdServer, Tenant, free_port, random_bytes, sha256_hex

LEGACY_CIPHERS = "DEFAULT@SECLEVEL=0"
TOOL_TIMEOUT = 30


class TlsServer(BlobdServer):
    """A BlobdServer that serves HTTPS with the given certificate."""

    def __init__(self, workdir, cert, key):
        super().__init__(workdir)
        self.cert = cert
        self.key = key

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def command(self, port):
        return super().command(port) + ["--tls-cert", str(self.cert),
                                        "--tls-key", str(self.key)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=TOOL_TIMEOUT)
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, certificate):
    # requests (the health check at start and the test clients) verifies
    # blobd's certificate against this bundle.
    patch = pytest.MonkeyPatch()
    patch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    server = TlsServer(tmp_path_factory.mktemp("blobd"), *certificate)
    try:
        server.start()
        yield server
        problems = server.finish()
        assert not problems, problems
    finally:
        if server.running:
            server.kill()
        patch.undo()


def curl(server, path, *args, token=None):
    """Run curl against blobd over HTTPS and return the status, the body
    and curl's verbose output."""
    command = ["curl", "-sS", "-v", "--cacert", str(server.cert),
               "-o", "-", "-w", "\n%{http_code}", *args]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    result = subprocess.run(command + [server.url(path)],
                            capture_output=True, timeout=TOOL_TIMEOUT)
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status or 0), body, result.stderr.decode("utf-8", "replace")


def negotiated(stderr):
    match = re.search(r"SSL connection using (TLSv[0-9.]+)", stderr)
    return match.group(1) if match else None


def s_client(port, *args):
    """Run a handshake with `openssl s_client` and return the negotiated
    protocol, or None when the handshake failed."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "localhost", *args],
        input=b"", capture_output=True, timeout=TOOL_TIMEOUT)
    text = result.stdout.decode("utf-8", "replace")
    cipher = re.search(r"Cipher is (\S+)", text)
    protocol = re.search(r"Protocol\s*:\s*(\S+)", text)
    if not cipher or cipher.group(1) == "(NONE)" or not protocol:
        return None
    return protocol.group(1)


def test_tls_healthz_over_https(tls_server):
    status, body, stderr = curl(tls_server, "/healthz")
    assert status == 200, stderr
    assert body == b'{"status":"ok"}'


@pytest.mark.parametrize("flags,version", [
    (["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"),
    (["--tlsv1.3"], "TLSv1.3"),
])
def test_tls_12_and_13_accepted(tls_server, flags, version):
    status, _, stderr = curl(tls_server, "/healthz", *flags)
    assert status == 200, stderr
    assert negotiated(stderr) == version


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_tls_legacy_rejected(tls_server, certificate, flag):
    assert s_client(tls_server.port, flag, "-cipher", LEGACY_CIPHERS) is None
    assert s_client(tls_server.port, "-tls1_2") == "TLSv1.2"
    # Control: the same client negotiates the old version with a server
    # that allows it.
    port = free_port()
    cert, key = certificate
    control = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
         "-cert", str(cert), "-key", str(key), flag, "-cipher",
         LEGACY_CIPHERS, "-naccept", "1", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        expected = {"-tls1_1": "TLSv1.1", "-tls1": "TLSv1"}[flag]
        for _attempt in range(50):
            protocol = s_client(port, flag, "-cipher", LEGACY_CIPHERS)
            if protocol is not None:
                break
            time.sleep(0.1)    # s_server not listening yet
        assert protocol == expected
    finally:
        control.kill()
        control.wait()
    # blobd still serves after the rejected handshakes.
    assert curl(tls_server, "/healthz")[0] == 200


def test_tls_plain_http_gets_nothing(tls_server):
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
         f"http://127.0.0.1:{tls_server.port}/healthz"],
        capture_output=True, timeout=TOOL_TIMEOUT)
    assert result.stdout in (b"000", b"400"), result.stdout


def test_tls_upload_download(tls_server, tmp_path):
    tenant = Tenant(tls_server, users=1)
    user = tenant.users[0]
    data = random_bytes(3 << 20, seed=9)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)

    status, body, stderr = curl(tls_server, "/v1/blobs", "--data-binary",
                                f"@{path}", token=user.token)
    assert status == 201, stderr
    assert b'"id":"' + sha256_hex(data).encode() + b'"' in body

    status, body, stderr = curl(tls_server, f"/v1/blobs/{sha256_hex(data)}",
                                token=user.token)
    assert status == 200, stderr
    assert body == data

    status, body, stderr = curl(tls_server, f"/v1/blobs/{sha256_hex(data)}",
                                "-H", "Range: bytes=1000-1999",
                                token=user.token)
    assert status == 206, stderr
    assert body == data[1000:2000]

    # The requests-based client of the other tests works over TLS too.
    response = user.client.get(f"/v1/blobs/{sha256_hex(data)}")
    assert response.status_code == 200
    assert response.content == data
