"""Money, history and behaviour through the broker: late balances, snapshots, FX, activity, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from contracts import (
    BANK_ACCOUNTS,
    BANK_CUSTOMERS,
    BANK_FX_RATES,
    BANK_INTERACTIONS,
    BANK_TRANSACTIONS,
    Channel,
    Counterparty,
    Direction,
    InteractionKind,
    Product,
)
from tests.builders import (
    account_balance,
    account_opened,
    account_snapshot,
    customer_upserted,
    fx_rate,
    interaction_recorded,
    transaction_posted,
    unique_ref,
)
from tests.e2e.conftest import Platform
from tests.e2e.flows import poll, produce

pytestmark = pytest.mark.e2e
SHANGHAI = ZoneInfo("Asia/Shanghai")


def profile(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=platform.processes.url("profile"), timeout=5)


def by_ref(client: httpx.Client, ref: str, source: str = "core-deposits") -> httpx.Response:
    return client.get(f"/internal/customers/by-ref/{source}/{ref}")


async def test_out_of_order_balances_end_in_the_right_balance_and_daily_history(
    platform: Platform, topics: str
) -> None:
    ref = unique_ref("LATE")
    account = f"{ref}-D"
    now = datetime.now(UTC)
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, account)),
            (BANK_ACCOUNTS, account_balance(ref, account, "300.00", version=3, as_of=now)),
            (BANK_ACCOUNTS, account_balance(ref, account, "100.00", version=1, as_of=now - timedelta(days=2))),
            (BANK_ACCOUNTS, account_balance(ref, account, "200.00", version=2, as_of=now - timedelta(days=1))),
            (BANK_ACCOUNTS, account_balance(ref, account, "200.00", version=2, as_of=now - timedelta(days=1))),
        ],
    )
    with profile(platform) as client:
        view = poll(
            lambda: by_ref(client, ref),
            lambda r: r.status_code == 200 and r.json()["aum_avg_30d_cny"] == "20.00",
        )
        history = client.get(f"/internal/customers/{view['customer_id']}/daily-aum", params={"days": 4}).json()
    assert view["aum_cny"] == "300.00"
    assert view["accounts"][0]["balance_version"] == 3
    assert [day["aum_cny"] for day in history] == ["0.00", "100.00", "200.00", "300.00"]
    assert history[-1]["business_date"] == now.astimezone(SHANGHAI).date().isoformat()


async def test_a_snapshot_difference_is_corrected_and_reported(platform: Platform, topics: str) -> None:
    ref = unique_ref("SNAP")
    account = f"{ref}-C"
    yesterday = datetime.now(UTC) - timedelta(days=1)
    business_date = yesterday.astimezone(SHANGHAI).date()
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, account, product=Product.CURRENT)),
            (BANK_ACCOUNTS, account_balance(ref, account, "1000.00", version=7, as_of=yesterday)),
            (BANK_ACCOUNTS, account_snapshot(ref, account, "990.00", business_date)),
        ],
    )
    with profile(platform) as client:
        view = poll(lambda: by_ref(client, ref), lambda r: r.status_code == 200 and r.json()["aum_cny"] == "990.00")
        assert view["accounts"][0]["snapshot_on"] == business_date.isoformat()
        differences = client.get("/internal/reconciliation-differences").json()["items"]
        quality = client.get("/internal/data-quality").json()
    [found] = [d for d in differences if d["account_ref"] == account]
    assert (Decimal(found["expected"]), Decimal(found["found"])) == (Decimal("990.00"), Decimal("1000.00"))
    assert found["business_date"] == business_date.isoformat()
    assert found["customer_id"] == view["customer_id"]
    core = next(s for s in quality["sources"] if s["source"] == "core-deposits")
    assert core["events_total"] >= 3
    assert core["last_lag_seconds"] >= 0
    assert any(r["source"] == "core-deposits" and r["differences"] >= 1 for r in quality["reconciliation"])


async def test_a_foreign_currency_account_counts_once_its_rate_arrives(platform: Platform, topics: str) -> None:
    ref = unique_ref("FX")
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-CHF", product=Product.FUND, currency="CHF")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-CHF", "100.00", currency="CHF")),
        ],
    )
    with profile(platform) as client:
        held = poll(
            lambda: by_ref(client, ref),
            lambda r: r.status_code == 200 and any(a["balance"] is not None for a in r.json()["accounts"]),
        )
        assert (held["aum_cny"], held["unconverted_currencies"]) == ("0.00", ["CHF"])
        await produce(topics, [(BANK_FX_RATES, fx_rate("CHF", "7.9012"))])
        counted = poll(lambda: by_ref(client, ref), lambda r: r.json()["aum_cny"] != "0.00")
    assert (counted["aum_cny"], counted["unconverted_currencies"]) == ("790.12", [])


async def test_events_before_the_customer_record_join_it_and_activity_builds_behaviour_and_tags(
    platform: Platform, topics: str
) -> None:
    ref = unique_ref("EARLY")
    name = f"Qian {ref}"
    now = datetime.now(UTC)
    card = f"{ref}-CC"
    counter = [
        (
            BANK_TRANSACTIONS,
            transaction_posted(ref, f"{ref}-CUR", "100.00", channel=Channel.BRANCH, posted_at=now - timedelta(days=d)),
        )
        for d in range(1, 7)
    ]
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-CUR", product=Product.CURRENT)),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-CUR", "5000.00")),
            (BANK_ACCOUNTS, account_opened(ref, card, product=Product.CREDIT_CARD)),
            *counter,
            (
                BANK_TRANSACTIONS,
                transaction_posted(
                    ref, f"{ref}-CUR", "2000.00", counterparty=Counterparty.EXTERNAL, posted_at=now - timedelta(days=40)
                ),
            ),
            (
                BANK_INTERACTIONS,
                interaction_recorded(ref, InteractionKind.COMPLAINT, occurred_at=now - timedelta(days=3)),
            ),
            (
                BANK_INTERACTIONS,
                interaction_recorded(ref, InteractionKind.VISIT, satisfaction=4, occurred_at=now - timedelta(days=2)),
            ),
        ],
    )
    with profile(platform) as client:
        provisional = poll(
            lambda: by_ref(client, ref), lambda r: r.status_code == 200 and r.json()["aum_cny"] == "5000.00"
        )
        assert provisional["full_name"] is None
        await produce(topics, [(BANK_CUSTOMERS, customer_upserted(ref, full_name=name, branch_id="BR77"))])
        view = poll(lambda: by_ref(client, ref), lambda r: r.json()["full_name"] == name)
        assert view["customer_id"] == provisional["customer_id"]
        assert {"counter_heavy", "credit_customer", "e_banking_user"} <= set(view["tags"])
        assert all(view["tag_reasons"][tag] for tag in view["tags"])
        windows = view["behaviour"]
        assert (windows["last_30d"]["count"], windows["last_90d"]["count"]) == (6, 7)
        assert Decimal(windows["last_90d"]["external_outflow_cny"]) == Decimal("2000.00")
        assert Decimal(windows["last_30d"]["external_outflow_cny"]) == 0
        assert view["interactions"]["open_complaints"] == 1
        assert view["interactions"]["last_satisfaction"] == 4

        # The timeline pages newest first without gaps or repeats.
        seen: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            page = client.get(
                f"/internal/customers/{view['customer_id']}/timeline",
                params={"limit": 3} | ({"cursor": cursor} if cursor else {}),
            ).json()
            seen.extend((i["at"], i["ref"]) for i in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 6 + 1 + 2 + 2  # transactions, interactions, two openings
        assert [at for at, _ in seen] == sorted((at for at, _ in seen), reverse=True)

        found = client.get(
            "/internal/customers", params={"q": name.lower()[:12], "branch_id": "BR77", "tag": "counter_heavy"}
        )
        assert [c["customer_id"] for c in found.json()["items"]] == [view["customer_id"]]
        assert client.get("/internal/customers", params={"q": name, "tag": "payroll"}).json()["items"] == []
        bad = client.get(f"/internal/customers/{view['customer_id']}/timeline", params={"cursor": "not-ours"})
        assert bad.status_code == 422


async def test_credits_and_debits_are_counted_and_summed_apart(platform: Platform, topics: str) -> None:
    ref = unique_ref("DIR")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(ref)),
            (BANK_TRANSACTIONS, transaction_posted(ref, f"{ref}-A", "10.00", direction=Direction.CREDIT)),
            (BANK_TRANSACTIONS, transaction_posted(ref, f"{ref}-A", "4.00", direction=Direction.DEBIT)),
        ],
    )
    with profile(platform) as client:
        view = poll(
            lambda: by_ref(client, ref),
            lambda r: r.status_code == 200 and (r.json()["behaviour"] or {}).get("last_30d", {}).get("count") == 2,
        )
    window = view["behaviour"]["last_30d"]
    assert (window["credit_count"], window["debit_count"]) == (1, 1)
    assert (Decimal(window["credit_cny"]), Decimal(window["debit_cny"])) == (Decimal("10.00"), Decimal("4.00"))
