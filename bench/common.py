"""What `make bench` and `make soak` share: a fresh embedded platform (PostgreSQL, the broker,
schemas, topics, then the services), the machine's description and percentiles."""

from __future__ import annotations

import os
import platform as host
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from c360.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from c360.platform import SERVICES, ServiceProcesses, create_topics, migrate_all, service_env
from runtime.settings import development_secret
from services.gateway.auth import Role, issue_token

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Platform:
    """An embedded PostgreSQL and broker with every schema and topic in place; `services` adds
    the four services on free ports (started by the caller)."""

    work: Path
    postgres: EmbeddedPostgres
    database_url: str
    bootstrap: str
    processes: ServiceProcesses | None = None

    def services(self, extra_env: Mapping[str, str] | None = None) -> ServiceProcesses:
        ports = {s.name: free_port() for s in SERVICES}
        env = service_env(
            dict(os.environ), database_url=self.database_url, bootstrap_servers=self.bootstrap, ports=ports
        )
        env |= {
            "C360_DATA_DIR": str(self.work),
            "C360_GATEWAY__RATE_LIMIT_PER_MINUTE": "10000000",  # the load is the point
            "C360_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.processes = ServiceProcesses(env, ports, log_dir=self.work / "logs")
        return self.processes

    def admin_headers(self, subject: str) -> dict[str, str]:
        """Authorization for the gateway, signed with the development secret the services use."""
        token = issue_token(
            development_secret(self.work),
            subject=subject,
            role=Role.ADMIN,
            now=datetime.now(UTC),
            ttl=timedelta(hours=6),
        )
        return {"Authorization": f"Bearer {token}"}


KEEP_HELP = "keep the platform's directory (database, broker log, service logs) for inspection"


@contextmanager
def embedded_platform(name: str, *, keep: bool = False) -> Iterator[Platform]:
    """A fresh platform in a new temporary directory, stopped (services first) on the way out,
    and the directory removed unless `keep` (a full-branch run leaves 13 GB in it)."""
    work = Path(tempfile.mkdtemp(prefix=f"c360-{name}-"))
    postgres = EmbeddedPostgres(work / "pgdata", database=name)
    database_url = postgres.start()
    broker = EmbeddedBroker(free_port(), work / "tansu.log")
    try:
        bootstrap = broker.start()
        migrate_all(database_url)
        create_topics(bootstrap, 6)
        platform = Platform(work, postgres, database_url, bootstrap)
        try:
            yield platform
        finally:
            if platform.processes is not None:
                platform.processes.stop()
    finally:
        broker.stop()
        postgres.stop()
        if keep:
            print(f"The platform's directory is kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0"
    )
    return (
        f"{os.cpu_count()} x {cpu}, {int(memory) // 1024 // 1024} GiB RAM, Python {host.python_version()}, "
        f"commit {checkout_commit() or 'unknown'}"
    )


def checkout_commit() -> str:
    """The commit the bench runs from, short; asked of git, which knows a worktree's checkout (a
    `.git` file, not a directory) and packed refs, where reading `.git/HEAD` by hand knew neither.
    Empty without git or outside a checkout."""
    try:
        answer = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=7", "HEAD"],  # noqa: S607 git from PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return answer.stdout.strip()
