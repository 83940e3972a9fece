"""Fixtures of the end-to-end tests: real blobd servers on 127.0.0.1, an HTTP
client for the blobd API and generators of test documents and photos.

Every server gets its own data directory, a free port, a configuration file
written by the test and a random operator token in BLOBD_OPERATOR_TOKEN. At
teardown each running server is stopped with SIGTERM, must exit 0, and
`blobd check --data DIR` must then accept its data.
"""

import hashlib
import io
import os
import random
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOBD_BIN = Path(os.environ.get("BLOBD_BIN", REPO_ROOT / "build" / "blobd"))
CORPUS_DIR = Path(os.environ.get(
    "BLOBD_CORPUS", REPO_ROOT.parent / "shared" / "corpus" / "images"))

# Bounds that only catch a hang; no test asserts a speed.
START_TIMEOUT = 10
STOP_TIMEOUT = 30
CHECK_TIMEOUT = 120
HTTP_TIMEOUT = 60

# A [plans] section replaces blobd's default plans, so the two defaults are
# always written. `unit` is one byte per licence: a contract's quota is then
# its licence count, which lets a test set an exact quota per contract.
DEFAULT_PLANS = {"basic": 5_000_000_000, "pro": 10_000_000_000, "unit": 1}

CHAT_CODE_PATTERN = r"[A-Z0-9]{10}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix):
    """Return a fresh name such as `acme-1f3a9c0d2e`, valid as a contract
    id and a username."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(response):
    """Return `error.code` of a JSON error response, or None."""
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def error_field(response, name):
    """Return a field beside `code` in a JSON error response, or None."""
    try:
        return response.json()["error"].get(name)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


class SourceAddressAdapter(HTTPAdapter):
    """Transport adapter that connects from a given local address, so that
    a test can be another client address (127.0.0.2, ...) on loopback."""

    def __init__(self, source_address, **kwargs):
        self.source_address = (source_address, 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = self.source_address
        super().init_poolmanager(*args, **kwargs)


class Client:
    """HTTP client of one caller: no token, the operator or a session."""

    def __init__(self, server, token=None, source_address=None):
        self.server = server
        self.token = token
        self.session = requests.Session()
        if source_address is not None:
            adapter = SourceAddressAdapter(source_address)
            self.session.mount("http://", adapter)

    def request(self, method, path, headers=None, **kwargs):
        all_headers = {}
        if self.token is not None:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return self.session.request(method, self.server.url(path),
                                    headers=all_headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def head(self, path, **kwargs):
        return self.request("HEAD", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def upload(self, data, headers=None):
        """POST /v1/blobs with `data` (bytes, or a sized stream) as the
        body, sent with Content-Length."""
        return self.post("/v1/blobs", data=data, headers=headers)

    def upload_ok(self, data, headers=None):
        """Upload and return the blob view; fail the test unless 201."""
        response = self.upload(data, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    def post_message(self, gid, text="", attachments=()):
        body = {"text": text,
                "attachments": [{"blob": blob_id, "filename": name}
                                for blob_id, name in attachments]}
        return self.post(f"/v1/conversations/{gid}/messages", json=body)

    def post_message_ok(self, gid, text="", attachments=()):
        response = self.post_message(gid, text, attachments)
        assert response.status_code == 201, response.text
        return response.json()

    def close(self):
        self.session.close()


class BlobdServer:
    """One blobd process and its data directory, which outlives restarts."""

    def __init__(self, workdir, plans=None, limits=None,
                 operator_token=True):
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "blobd.ini"
        self.log_path = self.workdir / "blobd.log"
        self.token = secrets.token_hex(24) if operator_token else None
        self.port = None
        self.proc = None
        # False after a SIGKILL or an unclean exit: the teardown then does
        # not ask `blobd check` to accept data that recovery has not seen.
        self.clean = True
        self.write_config(plans, limits)

    def write_config(self, plans=None, limits=None, drop_plans=()):
        """Write the INI file that the next start reads."""
        all_plans = dict(DEFAULT_PLANS)
        all_plans.update(plans or {})
        for name in drop_plans:
            all_plans.pop(name, None)
        lines = ["[plans]"]
        lines += [f"{name} = {value}" for name, value in all_plans.items()]
        lines += ["", "[limits]"]
        lines += [f"{name} = {value}"
                  for name, value in (limits or {}).items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def command(self, port):
        return [str(BLOBD_BIN), "--data", str(self.data_dir),
                "--listen", f"127.0.0.1:{port}",
                "--config", str(self.config_path)]

    def environment(self):
        env = dict(os.environ)
        env.pop("BLOBD_OPERATOR_TOKEN", None)
        if self.token is not None:
            env["BLOBD_OPERATOR_TOKEN"] = self.token
        return env

    def start(self):
        """Start blobd and wait until GET /healthz returns 200."""
        assert not self.running, "blobd is already running"
        assert BLOBD_BIN.exists(), f"{BLOBD_BIN} is missing: run make"
        # A port taken between free_port() and the bind makes blobd exit,
        # so an early exit is retried on another port.
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(self.port), stdout=log,
                    stderr=subprocess.STDOUT, env=self.environment(),
                    cwd=self.workdir)
            if self.wait_healthy():
                self.clean = True
                return self
        pytest.fail(f"blobd did not start; log tail:\n{self.log_tail()}")

    def wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                response = requests.get(self.url("/healthz"), timeout=1)
                if response.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        pytest.fail(f"blobd did not answer /healthz within {START_TIMEOUT} s;"
                    f" log tail:\n{self.log_tail()}")

    def run_until_exit(self, timeout=START_TIMEOUT):
        """Start blobd where a start is expected to fail; return its exit
        status and its output."""
        assert not self.running, "blobd is already running"
        self.port = free_port()
        result = subprocess.run(self.command(self.port),
                                capture_output=True, env=self.environment(),
                                cwd=self.workdir, timeout=timeout)
        return result.returncode, (result.stdout + result.stderr).decode(
            "utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig` and return the exit status; fail the test when the
        process does not exit within `timeout` seconds."""
        assert self.running, "blobd is not running"
        self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.clean = False
            pytest.fail(f"blobd did not exit within {timeout} s of signal"
                        f" {sig!s}")
        self.clean = (sig == signal.SIGTERM and status == 0)
        return status

    def kill(self):
        return self.stop(signal.SIGKILL)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for an exit that a test caused; return the exit status."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.clean = False
            pytest.fail(f"blobd did not exit within {timeout} s")
        self.clean = (status == 0)
        return status

    def restart(self, sig=signal.SIGTERM):
        """Stop with `sig`, start again on the same data; return the exit
        status of the stop."""
        status = self.stop(sig)
        self.start()
        return status

    def check(self):
        """Run `blobd check --data DIR`; return (exit status, output)."""
        result = subprocess.run(
            [str(BLOBD_BIN), "check", "--data", str(self.data_dir)],
            capture_output=True, timeout=CHECK_TIMEOUT)
        return result.returncode, (result.stdout + result.stderr).decode(
            "utf-8", "replace")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def client(self, token=None, source_address=None):
        return Client(self, token, source_address)

    def operator(self):
        return Client(self, self.token)

    def vm_hwm_bytes(self):
        """Peak resident set size of the process (VmHWM), in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("VmHWM missing from /proc/PID/status")

    def finish(self):
        """Stop and check at teardown; return a list of problems."""
        problems = []
        if self.running:
            status = self.stop()
            if status != 0:
                problems.append(f"SIGTERM exit status {status}, expected 0")
        if self.clean and self.data_dir.exists():
            status, output = self.check()
            if status != 0:
                problems.append(f"blobd check exit status {status}: "
                                f"{output[-2000:]}")
        return problems


class ServerFactory:
    """Callable that starts servers and stops and checks them all at the
    end of the fixture's scope."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.servers = []

    def __call__(self, plans=None, limits=None, operator_token=True,
                 start=True):
        workdir = self.tmp_path_factory.mktemp("blobd")
        server = BlobdServer(workdir, plans, limits, operator_token)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def finish(self):
        problems = []
        for server in self.servers:
            problems += [f"{server.workdir}: {p}" for p in server.finish()]
        assert not problems, "\n".join(problems)


@pytest.fixture
def blobd(tmp_path_factory):
    """Factory of servers that live for one test."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.finish()


@pytest.fixture(scope="module")
def module_blobd(tmp_path_factory):
    """Factory of servers shared by the tests of one module."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.finish()


@pytest.fixture(scope="module")
def server(module_blobd):
    """A server with the default limits, shared by the tests of a module.
    Tests that share it each create their own contract."""
    return module_blobd()


# --- accounts -------------------------------------------------------------


class User:
    """A user account and, once logged in, its session client."""

    def __init__(self, server, cid, view, password, chat_code):
        self.server = server
        self.cid = cid
        self.uid = view["id"]
        self.username = view["username"]
        self.role = view["role"]
        self.password = password
        self.chat_code = chat_code
        self.token = None
        self.client = None

    def login(self, device="e2e"):
        response = login(self.server, self.cid, self.username, self.password,
                         self.chat_code, device)
        assert response.status_code == 201, response.text
        self.token = response.json()["token"]
        self.client = self.server.client(self.token)
        return self.client


def create_contract(operator, cid=None, plan="basic", licences=10,
                    name=None):
    """Create a contract and return its view."""
    cid = cid or unique("c")
    body = {"id": cid, "name": name or f"Company {cid}", "plan": plan,
            "licences": licences}
    response = operator.post("/v1/contracts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def contract_view(operator, cid):
    response = operator.get(f"/v1/contracts/{cid}")
    assert response.status_code == 200, response.text
    return response.json()


def create_user(caller, cid, username=None, password=None, role="user",
                valid_until=None):
    """Create a user through `caller` (the operator or an admin) and return
    a User that is not logged in yet."""
    username = username or unique("u")
    password = password or secrets.token_urlsafe(12)
    body = {"username": username, "password": password, "role": role}
    if valid_until is not None:
        body["valid_until"] = valid_until
    response = caller.post(f"/v1/contracts/{cid}/users", json=body)
    assert response.status_code == 201, response.text
    view = response.json()
    return User(caller.server, cid, view, password, view["chat_code"])


def login(server, cid, username, password, chat_code, device="e2e",
          source_address=None):
    """POST /v1/sessions; return the response."""
    client = server.client(source_address=source_address)
    body = {"contract": cid, "username": username, "password": password,
            "chat_code": chat_code, "device": device}
    response = client.post("/v1/sessions", json=body)
    client.close()
    return response


def create_group(caller, cid, members, name=None):
    """Create a group and return its view."""
    body = {"name": name or unique("group"),
            "members": [m.uid if isinstance(m, User) else m for m in members]}
    response = caller.post(f"/v1/contracts/{cid}/groups", json=body)
    assert response.status_code == 201, response.text
    return response.json()


class Tenant:
    """A contract with `users` logged-in users, created by the operator,
    and a logged-in admin made on first use (each login costs a password
    hash, so tests that need no admin skip it)."""

    def __init__(self, server, plan="basic", licences=10, users=2):
        self.server = server
        self.operator = server.operator()
        self.contract = create_contract(self.operator, plan=plan,
                                        licences=licences)
        self.cid = self.contract["id"]
        self._admin = None
        self.users = []
        for _ in range(users):
            user = create_user(self.operator, self.cid)
            user.login()
            self.users.append(user)

    @property
    def admin(self):
        if self._admin is None:
            self._admin = create_user(self.operator, self.cid, role="admin")
            self._admin.login()
        return self._admin

    def view(self):
        return contract_view(self.operator, self.cid)

    def used_bytes(self):
        return self.view()["used_bytes"]

    def group(self, members, name=None):
        """Create a group through the operator and return its view."""
        return create_group(self.operator, self.cid, members, name)


# --- test documents and photos --------------------------------------------


def corpus_bytes(name):
    path = CORPUS_DIR / name
    if not path.exists():
        pytest.fail(f"corpus file {path} is missing: set BLOBD_CORPUS")
    return path.read_bytes()


def random_bytes(size, seed=None):
    if seed is None:
        return os.urandom(size)
    return random.Random(seed).randbytes(size)


def minimal_pdf(text="blobd end-to-end test"):
    """Build a one-page PDF with a correct cross-reference table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n"
        + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def photo_image(width, height, seed=1, noise=24):
    """Make a photo-like RGB PIL image: colour gradients plus noise."""
    from PIL import Image, ImageDraw

    red = Image.linear_gradient("L").resize((width, height))
    green = red.rotate(90).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(10, max(11, min(width, height) // 6))
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                     fill=colour)
    if noise:
        grain = Image.effect_noise((width, height), noise).convert("RGB")
        image = Image.blend(image, grain, 0.2)
    return image


def jpeg_bytes(image, quality=92, exif=None):
    buffer = io.BytesIO()
    options = {"quality": quality}
    if exif is not None:
        options["exif"] = exif
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def open_image(data):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def tmp_files(server, cid):
    """List the files in the contract's directory of uploads in progress."""
    tmp_dir = server.data_dir / "contracts" / cid / "tmp"
    if not tmp_dir.exists():
        return []
    return sorted(path.name for path in tmp_dir.rglob("*") if path.is_file())


def wait_until(predicate, timeout, interval=0.2):
    """Poll `predicate` until it returns a true value or `timeout` seconds
    pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
