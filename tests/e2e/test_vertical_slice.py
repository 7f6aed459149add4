"""One customer's money flows through profile, scoring and engagement to the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contracts import (
    BANK_ACCOUNTS,
    BANK_CUSTOMERS,
    C360_TASKS,
    C360_TIERS,
    TaskEvent,
    TaskStatus,
    TierChanged,
)
from services.gateway.auth import Role
from tests.builders import account_balance, account_opened, customer_upserted, unique_id_number, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import outbound, poll, produce

pytestmark = pytest.mark.e2e


async def test_an_asset_account_flows_to_a_vip_tier_and_a_welcome_task_for_the_assigned_rm(
    platform: Platform, topics: str
) -> None:
    ref = unique_ref("VIP")
    number = unique_id_number()
    branch, rm = unique_ref("BR"), unique_ref("RM")
    manager = {"name": "Zhou Min", "grade": "wealth_manager", "branch_id": branch, "capacity": 150}
    with httpx.Client(base_url=platform.processes.url("engagement"), timeout=5) as engagement:
        assert engagement.put(f"/internal/managers/{rm}", json=manager).status_code == 200
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(ref, id_number=number, branch_id=branch, phone="13912345678")),
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD1")),
            # Held for 40 days, so the 30-day average daily AUM the tier is decided on is all of it.
            (
                BANK_ACCOUNTS,
                account_balance(ref, f"{ref}-TD1", "350000.00", as_of=datetime.now(UTC) - timedelta(days=40)),
            ),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
            lambda r: (
                r.status_code == 200
                and any(t["action"] == "welcome" and t["rm_id"] == rm for t in r.json()["open_tasks"])
            ),
        )
        assert view["aum_cny"] == "350000.00"
        assert view["tier"]["tier"] == "vip"
        assert view["relationship_manager"] == rm
        assert [t["action"] for t in view["open_tasks"]].count("welcome") == 1
        assert view["accounts"][0]["product"] == "time_deposit"
        assert view["branch_id"] == branch
        assert view["source_records"][0]["id_number"] == "*" * 14 + number[-4:]

        by_id = client.get(f"/v1/customers/{view['customer_id']}")
        assert by_id.status_code == 200
        assert by_id.json()["customer_id"] == view["customer_id"]

        # The RM now sees the customer they were assigned; another RM does not.
        path = f"/v1/customers/{view['customer_id']}"
        assert client.get(path, headers=platform.headers(Role.RM, rm_id=rm)).status_code == 200
        assert client.get(path, headers=platform.headers(Role.RM, rm_id="RM-other")).status_code == 404

    # The customer record and the account may land in one profile batch or two, so the tier may
    # first be assessed as mass; either way the changes end at vip and none is published twice.
    tier_changes = await outbound(topics, C360_TIERS, view["customer_id"], 1)
    moves = [(c.from_tier, c.to_tier) for c in tier_changes if isinstance(c, TierChanged)]
    assert len(moves) == len(tier_changes)
    assert moves in ([(None, "vip")], [(None, "mass"), ("mass", "vip")])
    tasks = await outbound(topics, C360_TASKS, view["customer_id"], 1)
    welcomes = [t for t in tasks if isinstance(t, TaskEvent) and t.action == "welcome"]
    assert welcomes[0].status == TaskStatus.OPEN
    assert welcomes[-1].rm_id == rm
    assert len({t.task_id for t in welcomes}) == 1


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
            # The account and its balance may be applied in two batches: wait for both.
            lambda r: r.status_code == 200 and r.json()["tier"] is not None and r.json()["aum_cny"] == "1200.50",
        )
    assert view["tier"]["tier"] == "mass"
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
        scraped = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'c360_http_requests_total{method="GET",route="/healthz",status="200"}' in scraped
    assert httpx.get(f"{platform.gateway}/docs", timeout=5).status_code == 200
