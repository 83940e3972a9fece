"""Shared parts of the blobd benchmarks: a blobd and an nginx process on a
free loopback port with a temporary directory, accounts set up through the
API, wrk runs with their statistics, /proc readings and the result table.

Every process started here is stopped by its pid when the `Bench` context
ends, also on SIGTERM or SIGINT (run.sh bounds each section with timeout).
"""

import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = BENCH_DIR.parent
BLOBD_BIN = Path(os.environ.get("BLOBD_BIN", REPO_ROOT / "build" / "blobd"))
WRK_SCRIPT = BENCH_DIR / "lib" / "wrk_request.lua"
CORPUS_DIR = Path(os.environ.get(
    "BLOBD_CORPUS", REPO_ROOT.parent / "shared" / "corpus" / "images"))

START_TIMEOUT = 15
STOP_TIMEOUT = 60
HTTP_TIMEOUT = 120

# Plans of every benchmark server: `bench` gives one licence 1 TB, so no
# benchmark runs into a quota.
PLANS = {"basic": 5_000_000_000, "pro": 10_000_000_000,
         "bench": 1_000_000_000_000}


def stop_on_signals():
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the servers
    when run.sh's timeout ends a section."""
    def handler(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def env_int(name, default):
    """Read a positive integer setting from the environment."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    number = int(value)
    if number <= 0:
        raise SystemExit(f"{name} must be a positive integer, got {value}")
    return number


# --- /proc readings --------------------------------------------------------


def proc_status(pid):
    """Return /proc/PID/status as a dict of its first value per key."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts:
            fields[key] = parts[0]
    return fields


def peak_rss_bytes(pid):
    """VmHWM of the process: its peak resident set size since the last
    reset_peak_rss()."""
    return int(proc_status(pid)["VmHWM"]) * 1024


def rss_bytes(pid):
    return int(proc_status(pid)["VmRSS"]) * 1024


def thread_count(pid):
    return int(proc_status(pid)["Threads"])


def reset_peak_rss(pid):
    """Set VmHWM back to the current RSS (writing 5 to clear_refs, Linux
    4.0 and later), so that the next reading is the peak of one step."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def machine_line():
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return (f"{os.cpu_count()} CPUs ({model}), "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}")


# --- statistics and output -------------------------------------------------


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, pct):
    """Nearest-rank percentile of a list of numbers."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(a, b):
    return a / b if b else float("nan")


def print_table(title, header, rows):
    """Print a Markdown table, so that run.sh's output pastes into the
    README as it is."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) \
            + " |"
    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


def say(message):
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------


class Process:
    """A child process stopped by its pid at the end."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env=env, cwd=cwd)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stop with `sig`, then SIGKILL after STOP_TIMEOUT; return the
        exit status."""
        if not self.running():
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"{self.name} (pid {self.pid}) ignored signal {sig}; "
                "killing it")
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines=20):
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_http(url, process, timeout=START_TIMEOUT, any_status=False):
    """Wait until a GET of `url` returns 200 (any status with
    `any_status`); return False when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            return False
        try:
            status = requests.get(url, timeout=1).status_code
            if status == 200 or any_status:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return False


class Blobd:
    """One blobd on 127.0.0.1 with its own data directory and config."""

    def __init__(self, workdir, limits=None):
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "blobd.ini"
        self.log_path = self.workdir / "blobd.log"
        self.token = secrets.token_hex(24)
        self.port = None
        self.process = None
        lines = ["[plans]"] + [f"{k} = {v}" for k, v in PLANS.items()]
        lines += ["", "[limits]"]
        lines += [f"{k} = {v}" for k, v in (limits or {}).items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def pid(self):
        return self.process.pid

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        if not BLOBD_BIN.exists():
            raise SystemExit(f"{BLOBD_BIN} is missing: run make first")
        env = dict(os.environ, BLOBD_OPERATOR_TOKEN=self.token)
        # A port taken between free_port() and the bind ends blobd at once,
        # so an early exit is retried on another port.
        for _attempt in range(3):
            self.port = free_port()
            argv = [str(BLOBD_BIN), "--data", str(self.data_dir),
                    "--listen", f"127.0.0.1:{self.port}",
                    "--config", str(self.config_path)]
            self.process = Process("blobd", argv, self.log_path, env=env,
                                   cwd=self.workdir)
            if wait_http(self.url("/healthz"), self.process):
                return self
            self.process.stop(signal.SIGKILL)
        raise SystemExit("blobd did not start; log tail:\n"
                         + self.process.log_tail())

    def stop(self):
        if self.process is None:
            return None
        status = self.process.stop()
        if status != 0:
            say(f"blobd exited with status {status}; log tail:\n"
                + self.process.log_tail())
        return status

    def session(self, token):
        return Api(self, token)

    def operator(self):
        return Api(self, self.token)

    def new_contract(self):
        """Create a contract with an admin and a user, both logged in, and
        a group of the two; return them as a Tenant."""
        return Tenant(self)


class Api:
    """requests.Session of one caller."""

    def __init__(self, server, token):
        self.server = server
        self.token = token
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, expect, **kwargs):
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        response = self.http.request(method, self.server.url(path), **kwargs)
        if response.status_code != expect:
            raise SystemExit(f"{method} {path}: expected {expect}, got "
                             f"{response.status_code}: {response.text[:500]}")
        return response

    def json(self, method, path, expect, **kwargs):
        return self.call(method, path, expect, **kwargs).json()


class Tenant:
    """A contract with an admin, a user, their sessions and a group."""

    def __init__(self, server):
        operator = server.operator()
        self.cid = unique("bench")
        operator.json("POST", "/v1/contracts", 201,
                      json={"id": self.cid, "name": "Bench", "plan": "bench",
                            "licences": 1})
        self.admin_uid, self.admin = self._user(server, operator, "admin")
        self.user_uid, self.user = self._user(server, operator, "user")
        self.gid = self.new_group([self.admin_uid, self.user_uid])
        self.server = server

    def _user(self, server, operator, role):
        username = unique(role)
        password = secrets.token_urlsafe(12)
        view = operator.json(
            "POST", f"/v1/contracts/{self.cid}/users", 201,
            json={"username": username, "password": password, "role": role})
        session = Api(server, None).json(
            "POST", "/v1/sessions", 201,
            json={"contract": self.cid, "username": username,
                  "password": password, "chat_code": view["chat_code"],
                  "device": "bench"})
        return view["id"], server.session(session["token"])

    def new_group(self, members):
        view = self.admin.json(
            "POST", f"/v1/contracts/{self.cid}/groups", 201,
            json={"name": unique("group"), "members": members})
        return view["id"]

    def view(self):
        return self.server.operator().json(
            "GET", f"/v1/contracts/{self.cid}", 200)


NGINX_CONF = """\
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


class Nginx:
    """An nginx of our own serving `root` as static files, with its config,
    pid file and error log in `workdir`; never the system service."""

    def __init__(self, workdir, root, workers=None):
        self.workdir = Path(workdir)
        self.root = Path(root)
        self.workers = workers or os.cpu_count() or 1
        self.port = None
        self.process = None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        conf = self.workdir / "nginx.conf"
        for _attempt in range(3):
            self.port = free_port()
            conf.write_text(NGINX_CONF.format(
                workers=self.workers, dir=self.workdir, port=self.port,
                root=self.root))
            argv = ["nginx", "-p", str(self.workdir), "-c", str(conf)]
            self.process = Process("nginx", argv,
                                   self.workdir / "nginx.out")
            if wait_http(self.url("/"), self.process, any_status=True):
                return self
            self.process.stop(signal.SIGKILL)
        raise SystemExit("nginx did not start:\n" + self.process.log_tail())

    def stop(self):
        if self.process is not None:
            # SIGQUIT is nginx's graceful stop of master and workers.
            self.process.stop(signal.SIGQUIT)


class Bench:
    """Context of one section: a temporary directory and the servers
    started in it, all stopped and removed at the end."""

    def __init__(self, name):
        stop_on_signals()
        self.dir = Path(tempfile.mkdtemp(prefix=f"blobd-bench-{name}-"))
        self.servers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as error:  # keep stopping the others
                say(f"stopping {type(server).__name__} failed: {error}")
        if os.environ.get("BENCH_KEEP"):
            say(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def subdir(self, name):
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def blobd(self, limits=None):
        server = Blobd(self.subdir(unique("blobd")), limits)
        self.servers.append(server)
        return server.start()

    def nginx(self, root):
        server = Nginx(self.subdir(unique("nginx")), root)
        self.servers.append(server)
        return server.start()


# --- wrk -------------------------------------------------------------------


def run_wrk(url, seconds, threads=2, connections=32, token=None,
            method="GET", body=None, timeout_s=10):
    """Run wrk with lib/wrk_request.lua for `seconds` and return its
    summary: requests, requests_per_s, non_2xx (status errors),
    socket_errors and latency percentiles in milliseconds."""
    env = dict(os.environ, BENCH_METHOD=method)
    env.pop("BENCH_TOKEN", None)
    env.pop("BENCH_BODY", None)
    if token:
        env["BENCH_TOKEN"] = token
    if body is not None:
        env["BENCH_BODY"] = body
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
            f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT), url]
    result = subprocess.run(argv, capture_output=True, text=True, env=env,
                            timeout=seconds + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            summary = json.loads(line[len("BENCH_JSON "):])
            summary["requests_per_s"] = (summary["requests"]
                                         / (summary["duration_us"] / 1e6))
            return summary
    raise SystemExit(f"wrk printed no summary (exit {result.returncode}):\n"
                     f"{result.stdout}\n{result.stderr}")
