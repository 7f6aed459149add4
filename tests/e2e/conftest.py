"""The whole platform, four service processes, started once for the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from c360.embedded import free_port
from c360.platform import SERVICES, ServiceProcesses, service_env
from runtime.settings import development_secret
from services.gateway.auth import Role, issue_token


@dataclass
class Platform:
    processes: ServiceProcesses
    data_dir: Path
    log_dir: Path
    database_url: str

    @property
    def gateway(self) -> str:
        return self.processes.url("gateway")

    def token(self, role: Role, *, rm_id: str | None = None, branch_id: str | None = None) -> str:
        secret = development_secret(self.data_dir)
        return issue_token(
            secret,
            subject=f"test-{role.value}",
            role=role,
            now=datetime.now(UTC),
            ttl=timedelta(minutes=30),
            rm_id=rm_id,
            branch_id=branch_id,
        )

    def headers(self, role: Role = Role.ADMIN, **claims: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **claims)}"}


@pytest.fixture(scope="session")
def platform(platform_database: str, topics: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("c360-data")
    log_dir = data_dir / "logs"
    ports = {s.name: free_port() for s in SERVICES}
    env = service_env(dict(os.environ), database_url=platform_database, bootstrap_servers=topics, ports=ports)
    env["C360_DATA_DIR"] = str(data_dir)
    env.pop("C360_JWT_SECRET", None)
    # Tests share a few token subjects; the rate limit has its own tests.
    env["C360_GATEWAY__RATE_LIMIT_PER_MINUTE"] = "1000000"
    env["C360_ENGAGEMENT__AUDIENCE_INTERVAL_S"] = "0.5"
    processes = ServiceProcesses(env, ports, log_dir=log_dir)
    processes.start()
    try:
        processes.wait_healthy(timeout_s=120)
        yield Platform(processes, data_dir, log_dir, platform_database)
    finally:
        processes.stop()
