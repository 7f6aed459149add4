"""Profile and gateway behaviours seen from the outside: ownership, freshness, precision, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS
from runtime.db import create_engine
from services.gateway.auth import Role
from tests.builders import account_balance, account_opened, customer_upserted, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import poll, produce

pytestmark = pytest.mark.e2e


async def test_an_account_stays_with_the_customer_it_was_opened_for(platform: Platform, topics: str) -> None:
    owner, other = unique_ref("OWN"), unique_ref("OTHER")
    account = f"{owner}-CUR"
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(owner, account)),
            (BANK_ACCOUNTS, account_balance(owner, account, "100.00", version=1)),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{owner}"),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "100.00",
        )
        # A later balance that names another customer_ref still updates the owner's account.
        await produce(topics, [(BANK_ACCOUNTS, account_balance(other, account, "250.00", version=2))])
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{owner}"),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "250.00",
        )
    assert [a["account_ref"] for a in view["accounts"]] == [account]


async def test_balances_keep_their_scale_and_freshness_is_the_newest_event_time(
    platform: Platform, topics: str
) -> None:
    ref = unique_ref("FRESH")
    event_time = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-F1", at=event_time - timedelta(hours=1))),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-F1", "1234.56789012", version=2, at=event_time)),
            # Older, and late: neither its balance nor its time may win.
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-F1", "1.00", version=1, at=event_time - timedelta(days=1))),
            # A marker behind them in the same partition: once it shows, all three were applied.
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-F2", at=event_time - timedelta(hours=1))),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=5) as client:
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
            lambda r: r.status_code == 200 and r.json()["tier"] is not None and len(r.json()["accounts"]) == 2,
        )
    balances = {a["account_ref"]: a["balance"] for a in view["accounts"]}
    assert balances[f"{ref}-F1"] == "1234.56789012"
    assert view["aum_cny"] == "1234.57"
    assert datetime.fromisoformat(view["freshness"]["last_event_at"]) == event_time


async def test_every_read_of_a_customer_is_audited_with_its_outcome(platform: Platform) -> None:
    missing_id = "C" + unique_ref("AUDIT").replace("-", "")
    missing_ref = unique_ref("NOREF")
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ANALYST), timeout=5) as client:
        assert client.get(f"/v1/customers/{missing_id}").status_code == 404
        assert client.get(f"/v1/customers/by-ref/core-deposits/{missing_ref}").status_code == 404

    engine = create_engine(platform.database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT subject, role, customer_id, route, status FROM gateway.audit_log "
                        "WHERE subject = 'test-analyst' AND at > now() - interval '1 minute' ORDER BY id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    audited = [tuple(r) for r in rows]
    assert ("test-analyst", "analyst", missing_id, "/v1/customers/{customer_id}", 404) in audited
    assert ("test-analyst", "analyst", None, "/v1/customers/by-ref/{source}/{customer_ref}", 404) in audited


async def test_roles_see_their_scope_and_phones_masked_but_for_admin(platform: Platform, topics: str) -> None:
    ref = unique_ref("SCOPE")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(ref, branch_id="BR11", phone="13912345678")),
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-S1")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-S1", "10.00")),
        ],
    )
    path = f"/v1/customers/by-ref/core-deposits/{ref}"

    def phone(role: Role, **claims: str) -> tuple[int, str | None]:
        response = httpx.get(platform.gateway + path, headers=platform.headers(role, **claims), timeout=5)
        body = response.json()
        return response.status_code, body["source_records"][0]["phone"] if response.status_code == 200 else None

    poll(
        lambda: httpx.get(platform.gateway + path, headers=platform.headers(Role.ADMIN), timeout=5),
        lambda r: r.status_code == 200 and bool(r.json()["source_records"][0]["full_name"]),
    )
    assert phone(Role.ADMIN) == (200, "13912345678")
    assert phone(Role.ANALYST) == (200, "139******78")
    assert phone(Role.SUPERVISOR, branch_id="BR11") == (200, "139******78")
    assert phone(Role.SUPERVISOR, branch_id="BR12") == (404, None)
    assert phone(Role.RM, rm_id="RM-1") == (404, None)
