"""Segments and campaigns through the gateway and the broker: a rule refused with the bad part
named, membership that follows money with one event per change, a campaign that reaches the
members with consent, and members narrowed to the caller's scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, C360_SEGMENTS, SegmentMembership
from services.gateway.auth import Role
from tests.builders import account_balance, account_opened, customer_upserted, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import outbound, poll, produce

pytestmark = pytest.mark.e2e


def entered(events: list[object], segment_id: str) -> list[bool]:
    return [e.entered for e in events if isinstance(e, SegmentMembership) and e.segment_id == segment_id]


async def test_membership_follows_money_and_a_campaign_reaches_members_with_consent(
    platform: Platform, topics: str
) -> None:
    branch, segment_id, campaign_id = unique_ref("BR"), unique_ref("SEG"), unique_ref("CMP")
    analyst = platform.headers(Role.ANALYST)
    rich = {"field": "aum_cny", "op": "gte", "value": "100000"}
    with httpx.Client(base_url=platform.gateway, timeout=10) as gw:
        bad = gw.put(
            f"/v1/segments/{segment_id}",
            headers=analyst,
            json={"name": "Rich", "rule": {"all": [{"field": "branch_id", "op": "eq", "value": branch}, {"aum": 1}]}},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert "rule.all[1]" in bad.text
        rm = platform.headers(Role.RM, rm_id=unique_ref("RM"))
        assert gw.put(f"/v1/segments/{segment_id}", headers=rm, json={"name": "x", "rule": rich}).status_code == 403

        rule = {"all": [{"field": "branch_id", "op": "eq", "value": branch}, rich]}
        saved = gw.put(f"/v1/segments/{segment_id}", headers=analyst, json={"name": "Rich in branch", "rule": rule})
        assert saved.status_code == 200, saved.text
        assert (saved.json()["version"], saved.json()["updated_by"]) == (1, "test-analyst")
        done = poll(
            lambda: gw.get(f"/v1/segments/{segment_id}", headers=analyst),
            lambda r: r.json()["evaluation"]["status"] == "done",
        )
        assert done["size"] == 0

        now = datetime.now(UTC)
        campaign = {
            "name": "Deposit renewals",
            "segment_id": segment_id,
            "action": "campaign_contact",
            "script": "offer the 3-year deposit rate",
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "daily_cap": 10,
        }
        no_script = gw.put(f"/v1/campaigns/{campaign_id}", headers=analyst, json={**campaign, "script": None})
        assert no_script.status_code == 422
        started = gw.put(f"/v1/campaigns/{campaign_id}", headers=analyst, json=campaign)
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "running"

        keen, shy = unique_ref("KEEN"), unique_ref("SHY")
        events = []
        for ref, consent in ((keen, True), (shy, False)):
            events += [
                (BANK_CUSTOMERS, customer_upserted(ref, branch_id=branch, marketing_consent=consent)),
                (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
                (BANK_ACCOUNTS, account_balance(ref, f"{ref}-TD", "150000.00")),
            ]
        await produce(topics, events)
        stats = poll(
            lambda: gw.get(f"/v1/campaigns/{campaign_id}/stats", headers=analyst),
            lambda r: r.status_code == 200 and r.json()["targeted"] == 2 and r.json()["tasks"]["created"] == 1,
        )
        assert (stats["suppressed"], stats["waiting"], stats["conversion"]) == ({"no_consent": 1}, 0, None)

        admin = platform.headers(Role.ADMIN)
        ids = {
            ref: gw.get(f"/v1/customers/by-ref/core-deposits/{ref}", headers=admin).json()["customer_id"]
            for ref in (keen, shy)
        }
        [task] = gw.get("/v1/tasks", headers=admin, params={"branch_id": branch, "action": "campaign_contact"}).json()[
            "items"
        ]
        assert task["customer_id"] == ids[keen]
        assert task["reason"] == "campaign Deposit renewals: offer the 3-year deposit rate"

        # Money leaves: the customer leaves the segment, one event for entering and one for leaving.
        await produce(topics, [(BANK_ACCOUNTS, account_balance(keen, f"{keen}-TD", "50000.00", version=2))])
        assert entered(await outbound(topics, C360_SEGMENTS, ids[keen], expected=2), segment_id) == [True, False]
        members = poll(
            lambda: gw.get(f"/v1/segments/{segment_id}/members", headers=analyst),
            lambda r: [m["customer_id"] for m in r.json()["items"]] == [ids[shy]],
        )
        assert members["items"][0]["branch_id"] == branch

        # Scope: a supervisor sees their branch's members, another branch's supervisor and an RM none.
        own = platform.headers(Role.SUPERVISOR, branch_id=branch)
        other = platform.headers(Role.SUPERVISOR, branch_id=unique_ref("BR"))
        path = f"/v1/segments/{segment_id}/members"
        assert [m["customer_id"] for m in gw.get(path, headers=own).json()["items"]] == [ids[shy]]
        assert gw.get(path, headers=other).json()["items"] == []
        assert gw.get(path, headers=rm).json()["items"] == []
        assert gw.get(f"/v1/campaigns/{campaign_id}/stats", headers=rm).status_code == 403
        assert gw.get("/v1/segments/nope/members", headers=analyst).status_code == 404
