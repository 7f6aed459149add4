"""The demo for `c360 up --demo`: the synthetic bank at a small size, and a roster of RMs.

The bank is `c360.simulate.SyntheticBank` scaled to the number of customers asked for, so the
demo has the branch's AUM mix, several source systems, history and activity; its core-deposits
refs are `SIM-<seed>-0000001` onwards.
"""

from __future__ import annotations

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
