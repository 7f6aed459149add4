"""One customer's money flows through profile, scoring and engagement to the gateway."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, C360_TASKS, C360_TIERS, CloudEvent, parse_event
from runtime.kafka import make_producer
from services.gateway.auth import Role
from tests.builders import account_balance, account_opened, customer_upserted, unique_ref
from tests.e2e.conftest import Platform

pytestmark = pytest.mark.e2e


async def produce(bootstrap: str, events: list[tuple[str, CloudEvent]]) -> None:
    producer = make_producer(bootstrap, client_id="e2e-test")
    await producer.start()
    try:
        for topic, event in events:
            await producer.send_and_wait(topic, value=event.to_bytes(), key=(event.subject or "").encode())
    finally:
        await producer.stop()


def poll(fetch: Callable[[], httpx.Response], ready: Callable[[httpx.Response], bool], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        response = fetch()
        if ready(response):
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready in {timeout_s}s: {response.status_code} {response.text[:500]}")
        time.sleep(0.2)


async def outbound(bootstrap: str, topic: str, customer_id: str, expected: int) -> list[str]:
    """Types of the events published for `customer_id` on `topic`."""
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await reader.start()
    types: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while len(types) < expected and time.monotonic() < deadline:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == customer_id.encode():
                        types.append(parse_event(record.value, topic=topic).envelope.type)
    finally:
        await reader.stop()
    return types


async def test_an_asset_account_flows_to_a_vip_tier_and_a_welcome_task(platform: Platform, topics: str) -> None:
    ref = unique_ref("VIP")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(ref, branch_id="BR07", phone="13912345678")),
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD1")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-TD1", "350000.00")),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
            lambda r: r.status_code == 200 and bool(r.json()["open_tasks"]),
        )
        assert view["aum_cny"] == "350000.00"
        assert view["tier"]["tier"] == "vip"
        assert [t["action"] for t in view["open_tasks"]] == ["welcome"]
        assert view["accounts"][0]["product"] == "time_deposit"
        assert view["branch_id"] == "BR07"
        assert view["source_records"][0]["id_number"].endswith("1234")
        assert "110101" not in view["source_records"][0]["id_number"]

        by_id = client.get(f"/v1/customers/{view['customer_id']}")
        assert by_id.status_code == 200
        assert by_id.json()["customer_id"] == view["customer_id"]
        assert by_id.json()["open_tasks"] == view["open_tasks"]

    assert await outbound(topics, C360_TIERS, view["customer_id"], 1) == ["c360.tier.changed.v1"]
    assert await outbound(topics, C360_TASKS, view["customer_id"], 1) == ["c360.task.created.v1"]


async def test_a_mass_customer_gets_a_tier_but_no_welcome_task(platform: Platform, topics: str) -> None:
    ref = unique_ref("MASS")
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-C1")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-C1", "1200.50")),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
            lambda r: r.status_code == 200 and r.json()["tier"] is not None,
        )
    assert view["tier"]["tier"] == "mass"
    assert view["aum_cny"] == "1200.50"
    assert view["open_tasks"] == []


def test_customer_routes_need_a_valid_bearer_token(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway, timeout=5) as client:
        missing = client.get("/v1/customers/C0000")
        forged = client.get("/v1/customers/C0000", headers={"Authorization": "Bearer not.a.jwt"})
        service = client.get("/v1/customers/C0000", headers=platform.headers(Role.SERVICE))
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["type"].endswith("/unauthorized")
    assert forged.status_code == 401
    assert service.status_code == 403


def test_an_unknown_customer_is_a_404_problem(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        response = client.get("/v1/customers/C0000000000000000")
    assert response.status_code == 404
    assert response.json()["type"].endswith("/not-found")


def test_every_service_answers_health_readiness_and_metrics(platform: Platform) -> None:
    for name in ("profile", "scoring", "engagement", "gateway"):
        base = platform.processes.url(name)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        assert "c360_http_requests_total" in httpx.get(f"{base}/metrics", timeout=5).text
    assert httpx.get(f"{platform.gateway}/docs", timeout=5).status_code == 200
