"""Tiers and scores through the broker: bank events, profile, `c360.profile.updated.v1`, scoring,
`c360.tier.changed.v1` and `c360.score.updated.v1`, and the tier-distribution report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from contracts import (
    BANK_ACCOUNTS,
    BANK_INTERACTIONS,
    C360_SCORES,
    C360_TIERS,
    InteractionKind,
    ScoreUpdated,
    TierChanged,
)
from tests.builders import account_balance, account_opened, interaction_recorded, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import outbound, poll, produce, when_quiet

pytestmark = pytest.mark.e2e
LONG_AGO = timedelta(days=40)  # balances held this long count in full in the 30-day average


def scoring(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=platform.processes.url("scoring"), timeout=5)


def profile(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=platform.processes.url("profile"), timeout=5)


def customer_id_of(platform: Platform, ref: str) -> str:
    with profile(platform) as client:
        view = poll(
            lambda: client.get(f"/internal/customers/by-ref/core-deposits/{ref}"), lambda r: r.status_code == 200
        )
    return str(view["customer_id"])


def figures(report: dict[str, Any]) -> dict[str, tuple[int, Decimal]]:
    lines = [*report["tiers"], *report["bands"]]
    return {line["name"]: (line["customers"], Decimal(line["aum_cny"])) for line in lines}


async def test_balances_become_tiers_scores_and_an_exact_distribution(platform: Platform, topics: str) -> None:
    with scoring(platform) as client:
        # Wait out what earlier tests still have in flight: the report is over every customer.
        before = await when_quiet(topics, lambda: figures(client.get("/internal/reports/tier-distribution").json()))
    then = datetime.now(UTC) - LONG_AGO
    held = {"WEALTH": "1500000.00", "VIP": "200000.00", "AFFLUENT": "50000.00", "MASS": "49999.99"}
    refs = {name: unique_ref(name) for name in held}
    events = []
    for name, amount in held.items():
        ref = refs[name]
        events += [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-TD", amount, as_of=then)),
        ]
    # Money parked for one day does not buy a tier: its 30-day average is a thirtieth of it.
    parked = unique_ref("PARKED")
    events += [
        (BANK_ACCOUNTS, account_opened(parked, f"{parked}-C")),
        (BANK_ACCOUNTS, account_balance(parked, f"{parked}-C", "600000.00")),
    ]
    await produce(topics, events)

    ids = {name: customer_id_of(platform, ref) for name, ref in refs.items()}
    expected = {"WEALTH": "wealth", "VIP": "vip", "AFFLUENT": "affluent", "MASS": "mass"}
    for name, tier in expected.items():
        changes = await outbound(topics, C360_TIERS, ids[name], 1)
        assert [c.to_tier for c in changes if isinstance(c, TierChanged)][-1] == tier

    parked_id = customer_id_of(platform, parked)
    with scoring(platform) as client:
        view = poll(
            lambda: client.get(f"/internal/customers/{parked_id}/tier"),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "600000.00",
        )
        assert view["tier"] == "mass"
        assert Decimal(view["measure_cny"]) < 50000

        wealth = client.get(f"/internal/customers/{ids['WEALTH']}/tier").json()
        assert (wealth["tier"], wealth["rm_grade"], wealth["watch"]) == ("wealth", "senior_wealth_manager", None)
        assert wealth["history"][0]["reason"].startswith(("upgrade", "first assessment"))

        # The report moved by exactly these customers, band by band, to the yuan.
        def moved(r: httpx.Response) -> bool:
            now = figures(r.json())
            return all(now[k][0] - before.get(k, (0, 0))[0] == v for k, v in {"wealth": 1, "vip": 1}.items())

        after = figures(poll(lambda: client.get("/internal/reports/tier-distribution"), moved))

    def delta(key: str) -> tuple[int, Decimal]:
        count, aum = before.get(key, (0, Decimal(0)))
        return after[key][0] - count, after[key][1] - aum

    assert delta("wealth") == (1, Decimal("1500000.00"))
    assert delta("vip") == (1, Decimal("200000.00"))
    assert delta("affluent") == (1, Decimal("50000.00"))
    assert delta("mass") == (2, Decimal("649999.99"))
    assert delta("0 to 50,000") == (1, Decimal("49999.99"))
    assert delta("50,000 to 200,000") == (1, Decimal("50000.00"))
    assert delta("200,000 and above") == (3, Decimal("2300000.00"))


async def test_a_complaint_raises_churn_risk_with_a_reason_an_rm_can_read(platform: Platform, topics: str) -> None:
    ref = unique_ref("UNHAPPY")
    await produce(
        topics,
        [
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-TD", "80000.00", as_of=datetime.now(UTC) - LONG_AGO)),
        ],
    )
    cid = customer_id_of(platform, ref)
    with scoring(platform) as client:
        calm = poll(lambda: client.get(f"/internal/customers/{cid}/scores"), lambda r: r.status_code == 200)
        assert calm["churn_risk"] == 0
        await produce(
            topics,
            [
                (BANK_INTERACTIONS, interaction_recorded(ref, kind=InteractionKind.COMPLAINT)),
                (BANK_INTERACTIONS, interaction_recorded(ref, kind=InteractionKind.COMPLAINT)),
            ],
        )
        upset = poll(lambda: client.get(f"/internal/customers/{cid}/scores"), lambda r: r.json()["churn_risk"] == 0.2)
        standing = client.get(f"/internal/customers/{cid}/standing").json()
        tier = client.get(f"/internal/customers/{cid}/tier").json()
    assert standing["scores"] == upset
    assert standing["tier"] == {k: v for k, v in tier.items() if k != "history"}
    assert upset["churn_risk"] == 0.2
    assert {"score": "churn", "factor": "complaints", "contribution": 0.2, "text": "2 open complaints"} in upset[
        "reasons"
    ]
    # Published when it moved by more than the step, once; the balance may have come in two batches.
    published = [s.churn_risk for s in await outbound(topics, C360_SCORES, cid, 2) if isinstance(s, ScoreUpdated)]
    assert published[-1] == 0.2
    assert published.count(0.2) == 1
