"""The demo for `c360 up --demo`: the synthetic bank at a small size, a roster of RMs, and two
segments with a campaign on one of them.

The bank is `c360.simulate.SyntheticBank` scaled to the number of customers asked for, so the
demo has the branch's AUM mix, several source systems, history and activity; its core-deposits
refs are `SIM-<seed>-0000001` onwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from c360.ops import produce_all
from c360.simulate import BRANCH_BANDS, BRANCHES, SyntheticBank

BRANCH_CUSTOMERS = sum(count for _, count, _ in BRANCH_BANDS)


def demo_bank(customers: int, seed: int = 7) -> SyntheticBank:
    """The synthetic bank with about `customers` customers (the branch's band shares)."""
    return SyntheticBank(seed=seed, scale=customers / BRANCH_CUSTOMERS)


async def stream_demo_bank(bootstrap_servers: str, customers: int, seed: int = 7) -> int:
    """Produce the demo bank to Kafka; returns the number of events."""
    return await produce_all(bootstrap_servers, demo_bank(customers, seed).events(), client_id="c360-demo")


# Per branch: the RM grades the premium tiers need, and how many customers each RM serves.
DEMO_GRADES = (
    ("W1", "wealth_manager", 150),
    ("W2", "wealth_manager", 150),
    ("S1", "senior_wealth_manager", 80),
    ("P1", "private_banker", 40),
)


def demo_roster() -> list[tuple[str, dict[str, object]]]:
    """(rm_id, manager) for every demo branch, such as `RM-BR01-W1`."""
    return [
        (
            f"RM-{branch}-{code}",
            {"name": f"{code} of {branch}", "grade": grade, "branch_id": branch, "capacity": capacity},
        )
        for branch in BRANCHES
        for code, grade, capacity in DEMO_GRADES
    ]


def seed_demo_roster(engagement_url: str) -> int:
    """Put the demo roster through the engagement service's API; returns the number of RMs."""
    roster = demo_roster()
    with httpx.Client(base_url=engagement_url, timeout=10) as client:
        for rm_id, manager in roster:
            client.put(f"/internal/managers/{rm_id}", json=manager).raise_for_status()
    return len(roster)


DEMO_SEGMENTS: dict[str, dict[str, Any]] = {
    "close-to-vip": {
        "name": "Close to VIP",
        "description": "30-day average AUM within 25% below the VIP floor, consenting to marketing.",
        "rule": {
            "all": [
                {"field": "aum_avg_30d_cny", "op": "between", "value": ["150000", "199999.99"]},
                {"field": "marketing_consent", "op": "eq", "value": True},
            ]
        },
    },
    "premium-not-seen": {
        "name": "Premium customers not seen for a quarter",
        "description": "VIP and above with no contact in the last 90 days (or never).",
        "rule": {
            "all": [
                {"field": "tier", "op": "in", "value": ["vip", "wealth", "private"]},
                {"not": {"field": "days_since_last_contact", "op": "lt", "value": 90}},
            ]
        },
    },
}


def demo_campaign(now: datetime) -> dict[str, Any]:
    return {
        "name": "Close to VIP: time-deposit offer",
        "segment_id": "close-to-vip",
        "action": "campaign_contact",
        "script": "Offer the 1-year time deposit at the VIP rate; explain the VIP benefits.",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        "priority": 55,
        "daily_cap": 50,
        "branch_daily_cap": 10,
    }


def seed_demo_audiences(engagement_url: str) -> int:
    """Define the demo segments and the campaign through the engagement service's API; returns the
    number of segments."""
    with httpx.Client(base_url=engagement_url, timeout=10) as client:
        for segment_id, segment in DEMO_SEGMENTS.items():
            client.put(f"/internal/segments/{segment_id}", params={"actor": "demo"}, json=segment).raise_for_status()
        client.put(
            "/internal/campaigns/close-to-vip-deposits", params={"actor": "demo"}, json=demo_campaign(datetime.now(UTC))
        ).raise_for_status()
    return len(DEMO_SEGMENTS)
