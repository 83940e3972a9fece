"""Slow clients: bodies that trickle in are cut once
upload_rate_grace_seconds have passed, slow request headers are bounded
by max_connections_per_ip, and idle connections by
connection_timeout_seconds. Other clients are served meanwhile.

libmicrohttpd's own timeout counts inactivity only, so a client that sends
one byte per second is never idle: blobd's rate check cuts its body, and
the connection limits bound how many such clients one address can hold.
"""

import os
import socket
import threading
import time

from conftest import Tenant, random_bytes, sha256_hex

LIMITS = {"upload_rate_grace_seconds": 2, "min_upload_rate_bytes": 1024,
          "max_connections_per_ip": 4, "connection_timeout_seconds": 3}
# A bound that only catches a hang, because an uncut body would take
# minutes.
HANG_SECONDS = 30


class Trickle(threading.Thread):
    """Send a request head, then its body one byte per second, until the
    server closes the connection or the body is complete."""

    def __init__(self, server, head, length, source):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", server.port),
                                             timeout=HANG_SECONDS,
                                             source_address=(source, 0))
        self.head = head
        self.length = length
        self.sent = 0
        self.cut = False
        self.response = b""
        self.started = threading.Event()

    def run(self):
        try:
            self.sock.sendall(self.head)
            deadline = time.monotonic() + HANG_SECONDS
            while self.sent < self.length and time.monotonic() < deadline:
                self.sock.sendall(b"x")
                self.sent += 1
                self.started.set()
                time.sleep(1)
            self.response = self.sock.recv(65536)
            self.cut = self.sent < self.length
        except (BrokenPipeError, ConnectionResetError):
            self.cut = True
        finally:
            self.started.set()
            self.sock.close()


def upload_head(server, token, length):
    return (f"POST /v1/blobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def json_head(path, token, length):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def tmp_files(server, cid):
    return os.listdir(server.data_dir / "contracts" / cid / "tmp")


def test_slow_upload_cut_others_served(blobd):
    server = blobd(limits=LIMITS)
    tenant = Tenant(server, users=2)
    slow_user, other = tenant.users
    group = tenant.group(tenant.users)
    used = tenant.used_bytes()

    upload = Trickle(server, upload_head(server, slow_user.token, 1000),
                     1000, "127.0.0.2")
    message = Trickle(server, json_head(
        f"/v1/conversations/{group['id']}/messages", slow_user.token, 1000),
        1000, "127.0.0.3")
    upload.start()
    message.start()
    assert upload.started.wait(HANG_SECONDS)
    assert message.started.wait(HANG_SECONDS)

    # While both trickle, another client uploads, downloads and posts.
    data = random_bytes(200_000, seed=5)
    view = other.client.upload_ok(data)
    response = other.client.get(f"/v1/blobs/{view['id']}")
    assert response.status_code == 200
    assert sha256_hex(response.content) == view["id"]
    other.client.post_message_ok(group["id"], "served meanwhile",
                                 [(view["id"], "a.bin")])
    assert upload.is_alive()
    assert message.is_alive()

    upload.join(HANG_SECONDS + 5)
    message.join(HANG_SECONDS + 5)
    assert not upload.is_alive()
    assert not message.is_alive()
    assert upload.cut, f"slow upload not cut after {upload.sent} bytes"
    assert message.cut, f"slow JSON body not cut after {message.sent} bytes"
    # Cut only once the grace period had passed.
    assert upload.sent >= LIMITS["upload_rate_grace_seconds"]
    assert tenant.used_bytes() == used + len(data)
    assert tmp_files(server, tenant.cid) == []
    assert "upload_too_slow" in server.log_text()
    assert server.client().get("/healthz").status_code == 200


def connection_state(sock, wait):
    """Return 'closed' when the server closed `sock`, or 'open' when the
    server still waits for the rest of the request after `wait` seconds."""
    sock.settimeout(wait)
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "closed"
    return "closed" if not data else f"answered {data[:40]!r}"


def test_slow_headers_bounded_per_address(blobd):
    """Slow request heads from one address: only max_connections_per_ip
    of them are kept, while another address is served."""
    server = blobd(limits=LIMITS)
    socks = []
    try:
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", server.port),
                                            timeout=5,
                                            source_address=("127.0.0.4", 0))
            try:
                sock.sendall(b"POST /v1/blobs HTTP/1.1\r\nHost: x\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            socks.append(sock)
        other = server.client(source_address="127.0.0.5")
        assert other.get("/healthz").status_code == 200
        states = [connection_state(sock, 0.5) for sock in socks]
        assert states.count("open") == LIMITS["max_connections_per_ip"], \
            states
        assert states.count("closed") == \
            len(socks) - LIMITS["max_connections_per_ip"], states
        # Trickling header bytes keeps them open past the grace period,
        # since the rate check counts body bytes only.
        for _ in range(LIMITS["upload_rate_grace_seconds"] + 1):
            for sock in socks:
                try:
                    sock.sendall(b"X")
                except OSError:
                    pass
            time.sleep(1)
        assert other.get("/healthz").status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_idle_connection_timeout(blobd):
    """A connection that sends nothing is closed after
    connection_timeout_seconds."""
    server = blobd(limits=LIMITS)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                    source_address=("127.0.0.6", 0))
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert connection_state(sock, HANG_SECONDS) == "closed"
    finally:
        sock.close()
