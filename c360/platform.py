"""Running the platform: migrations, topics, and the four service processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from runtime import migrations
from runtime.kafka import ensure_topics, platform_topics


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    port: int

    @property
    def migrations_package(self) -> str:
        return f"{self.module}.migrations"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = (
    ServiceDef("profile", "services.profile", 8001),
    ServiceDef("scoring", "services.scoring", 8002),
    ServiceDef("engagement", "services.engagement", 8003),
    ServiceDef("gateway", "services.gateway", 8000),
)


def migrate_all(database_url: str) -> None:
    """Bring every service's schema to its latest revision."""
    for service in SERVICES:
        migrations.upgrade(service.migrations_package, database_url)


def create_topics(bootstrap_servers: str, partitions: int, replication_factor: int = 1) -> list[str]:
    return asyncio.run(
        ensure_topics(
            bootstrap_servers, platform_topics(), partitions=partitions, replication_factor=replication_factor
        )
    )


def service_env(
    base: dict[str, str], *, database_url: str, bootstrap_servers: str, ports: dict[str, int]
) -> dict[str, str]:
    """The environment the four processes share: connections, ports and upstream URLs."""
    env = {**base, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    for name, port in ports.items():
        env[f"C360_{name.upper()}__PORT"] = str(port)
    for name in ("profile", "scoring", "engagement"):
        env[f"C360_GATEWAY__{name.upper()}_URL"] = f"http://127.0.0.1:{ports[name]}"
    return env


class ServiceProcesses:
    """The four services as child processes, started and stopped together."""

    def __init__(self, env: dict[str, str], ports: dict[str, int], log_dir: Path | None = None) -> None:
        self.env = env
        self.ports = ports
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, names: tuple[str, ...] | None = None) -> None:
        for service in SERVICES:
            if names is not None and service.name not in names:
                continue
            self.start_one(service.name)

    def start_one(self, name: str) -> None:
        service = next(s for s in SERVICES if s.name == name)
        out: int | object = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", service.module],
            env=self.env,
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited(self) -> dict[str, int]:
        """The services whose process has ended, with their exit codes."""
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def exit_message(self, name: str, lines: int = 15) -> str:
        """Why `name` ended, as far as it said: its exit code and the tail of its log."""
        message = f"the {name} service exited with code {self.processes[name].returncode}"
        if self.log_dir is None or not (self.log_dir / f"{name}.log").exists():
            return message
        tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
        return message + "; the end of its log:\n" + "\n".join(tail)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        for name, process in self.processes.items():
            while True:
                if process.poll() is not None:
                    raise RuntimeError(self.exit_message(name))
                try:
                    if httpx.get(self.url(name) + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {name} service is not ready after {timeout_s}s")
                time.sleep(0.2)

    def stop(self, names: tuple[str, ...] | None = None, sig: int = signal.SIGTERM) -> None:
        chosen = [n for n in self.processes if names is None or n in names]
        for name in chosen:
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(sig)
        for name in chosen:
            process = self.processes.pop(name)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def default_ports() -> dict[str, int]:
    """Each service's port as its own settings read it (`C360_<NAME>__PORT`, or its default)."""
    from services.engagement.settings import EngagementSettings
    from services.gateway.settings import GatewaySettings
    from services.profile.settings import ProfileSettings
    from services.scoring.settings import ScoringSettings

    return {
        "profile": ProfileSettings().profile.port,
        "scoring": ScoringSettings().scoring.port,
        "engagement": EngagementSettings().engagement.port,
        "gateway": GatewaySettings().gateway.port,
    }
