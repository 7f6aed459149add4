"""A small synthetic bank through the whole platform ends exactly where its ground truth says:
each customer's AUM to the fen, 30-day average and tier, across merged source systems."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from c360.simulate import SyntheticBank
from tests.e2e.conftest import Platform
from tests.e2e.flows import produce

pytestmark = pytest.mark.e2e


def settled(platform: Platform, keys: list[str]) -> dict[str, tuple[Decimal, Decimal, str | None]]:
    """Per core-deposits ref: AUM and 30-day average from profile, tier from scoring."""
    found: dict[str, tuple[Decimal, Decimal, str | None]] = {}
    with (
        httpx.Client(base_url=platform.processes.url("profile"), timeout=5) as profile,
        httpx.Client(base_url=platform.processes.url("scoring"), timeout=5) as scoring,
    ):
        for key in keys:
            view = profile.get(f"/internal/customers/by-ref/core-deposits/{key}")
            if view.status_code != 200:
                continue
            body = view.json()
            tier = scoring.get(f"/internal/customers/{body['customer_id']}/tier")
            found[key] = (
                Decimal(body["aum_cny"]),
                Decimal(body["aum_avg_30d_cny"]),
                tier.json()["tier"] if tier.status_code == 200 else None,
            )
    return found


async def test_a_small_synthetic_bank_settles_exactly_on_its_ground_truth(platform: Platform, topics: str) -> None:
    bank = SyntheticBank(seed=2026, scale=0.0003)
    truth = {t.customer_key: (t.aum_cny, t.aum_avg_30d_cny, t.tier) for t in bank.truth().customers}
    assert {tier for _, _, tier in truth.values()} >= {"mass", "affluent", "vip"}
    await produce(topics, list(bank.events()))
    keys = sorted(truth)
    current: dict[str, tuple[Decimal, Decimal, str | None]] = {}
    for _ in range(60):
        current = settled(platform, keys)
        if current == truth:
            break
        await asyncio.sleep(1)
    wrong = {k: (current.get(k), truth[k]) for k in keys if current.get(k) != truth[k]}
    assert wrong == {}, f"{len(wrong)} of {len(keys)} customers differ (found, expected): {list(wrong.items())[:5]}"
    # And no one else: every record of every source system joined its customer.
    with httpx.Client(base_url=platform.processes.url("profile"), timeout=5) as profile:
        views = [profile.get(f"/internal/customers/by-ref/core-deposits/{k}").json() for k in keys]
    for customer in bank.customers():
        view = next(v for v in views if any(r["customer_ref"] == customer.key for r in v["source_records"]))
        assert {(r["source"], r["customer_ref"]) for r in view["source_records"]} == set(customer.refs.items())
