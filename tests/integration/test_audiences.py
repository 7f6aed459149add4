"""Segments and campaigns on the real database, time moved by the test clock: live membership with
one event per change, the backfill after a rule change, campaign caps across days, consent, and a
member who enters while the campaign runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from contracts import SEGMENT_MEMBERSHIP, CloudEvent, ScoreUpdated, SegmentMembership, build_event
from runtime.outbox import OutboxMessage
from services.engagement.audiences import save_campaign, save_segment
from services.engagement.models import Task
from tests.builders import profile_updated, unique_ref
from tests.integration.engagement import Service, created


def memberships(messages: Sequence[OutboxMessage], segment_id: str) -> list[tuple[str, bool]]:
    found = [SegmentMembership.model_validate(m.event.data) for m in messages if m.event.type == SEGMENT_MEMBERSHIP]
    return [(m.customer_id, m.entered) for m in found if m.segment_id == segment_id]


def score(customer_id: str, value: int, service: Service) -> CloudEvent:
    data = ScoreUpdated(customer_id=customer_id, value_score=value, churn_risk=0.1, risk_flags=[], reasons=[])
    return build_event(data, source="scoring", time=service.clock.now())


def in_branches(*branches: str) -> dict[str, Any]:
    return {"field": "branch_id", "op": "in", "value": list(branches)}


async def define(service: Service, segment_id: str, rule: dict[str, Any]) -> None:
    async with service.store() as store:
        await save_segment(
            store, segment_id, name=segment_id, description=None, rule=rule, actor="analyst", now=service.clock.now()
        )


async def backfill(service: Service, segment_id: str) -> list[OutboxMessage]:
    """Run backfill rounds until the segment's evaluation is done; what they published."""
    published: list[OutboxMessage] = []
    for _ in range(2000):
        async with service.context() as (ctx, store):
            await service.audiences.backfill_round(ctx, store)
        published += ctx.outbox
        async with service.store() as store:
            segment = await store.segment(segment_id)
            assert segment is not None
            if segment.backfill_finished_at is not None:
                return published
    raise AssertionError(f"the backfill of {segment_id} did not finish")


async def members(service: Service, segment_id: str) -> set[str]:
    async with service.store() as store:
        rows = await store.members(segment_id, rm_id=None, branch_id=None, after=None, limit=500)
    return {m.customer_id for m, _ in rows}


async def dispatch(service: Service) -> list[OutboxMessage]:
    async with service.context() as (ctx, store):
        await service.audiences.dispatch_round(ctx, store)
    return ctx.outbox


async def test_a_customer_crossing_an_aum_bound_enters_and_leaves_with_one_event_each(service: Service) -> None:
    branch, segment_id, cid = unique_ref("BR"), unique_ref("SEG"), unique_ref("C")
    await define(
        service, segment_id, {"all": [in_branches(branch), {"field": "aum_cny", "op": "gte", "value": 100000}]}
    )
    now = service.clock.now()

    below = await service.consume(profile_updated(cid, "99999.99", at=now, branch_id=branch))
    assert memberships(below, segment_id) == []
    above = await service.consume(profile_updated(cid, "150000.00", at=now + timedelta(minutes=1), branch_id=branch))
    assert memberships(above, segment_id) == [(cid, True)]
    assert await members(service, segment_id) == {cid}
    # The same view again (a redelivery, or another event that changes nothing here): no event.
    again = await service.consume(profile_updated(cid, "150000.00", at=now + timedelta(minutes=2), branch_id=branch))
    assert memberships(again, segment_id) == []
    fell = await service.consume(profile_updated(cid, "90000.00", at=now + timedelta(minutes=3), branch_id=branch))
    assert memberships(fell, segment_id) == [(cid, False)]
    assert await members(service, segment_id) == set()
    async with service.store() as store:
        segment = await store.segment(segment_id)
    assert segment is not None
    assert segment.evaluated_at == now


async def test_a_rule_change_re_evaluates_existing_customers_in_the_background(service: Service) -> None:
    a, b, segment_id = unique_ref("BR"), unique_ref("BR"), unique_ref("SEG")
    now = service.clock.now()
    in_a, in_b = [unique_ref("C") for _ in range(3)], unique_ref("C")
    await service.consume(*(profile_updated(cid, "1000.00", at=now, branch_id=a) for cid in in_a))
    await service.consume(profile_updated(in_b, "1000.00", at=now, branch_id=b))

    await define(service, segment_id, in_branches(a, b))
    first = await backfill(service, segment_id)
    assert sorted(memberships(first, segment_id)) == sorted((cid, True) for cid in [*in_a, in_b])
    assert await members(service, segment_id) == {*in_a, in_b}

    service.clock.advance(timedelta(hours=1))
    await define(service, segment_id, in_branches(a))
    async with service.store() as store:
        segment = await store.segment(segment_id)
    assert segment is not None
    assert (segment.version, segment.backfill_finished_at) == (2, None)
    second = await backfill(service, segment_id)
    assert memberships(second, segment_id) == [(in_b, False)]
    assert await members(service, segment_id) == set(in_a)
    async with service.store() as store:
        segment = await store.segment(segment_id)
    assert segment is not None
    assert segment.backfill_done == segment.backfill_total >= 4


async def test_a_campaign_reaches_members_within_its_caps_highest_value_first_and_a_later_entrant(
    service: Service,
) -> None:
    a, b, c = (unique_ref("BR") for _ in range(3))
    segment_id, campaign_id = unique_ref("SEG"), unique_ref("CMP")
    now = service.clock.now()
    values = {"a0": 95, "a1": 90, "b1": 85, "a2": 80, "a3": 70, "b2": 60, "c1": 50}
    ids = {name: unique_ref(f"C{name}") for name in values}
    branch = {"a": a, "b": b, "c": c}
    await service.consume(
        *(profile_updated(ids[n], "5000.00", at=now, branch_id=branch[n[0]], consent=n != "a0") for n in values),
        *(score(ids[n], v, service) for n, v in values.items()),
    )
    await define(service, segment_id, in_branches(a, b, c))
    await backfill(service, segment_id)
    assert await members(service, segment_id) == set(ids.values())

    async with service.store() as store:
        await save_campaign(
            store,
            campaign_id,
            {
                "name": "Deposit renewals",
                "segment_id": segment_id,
                "action": "campaign_contact",
                "script": "offer the 3-year deposit rate",
                "starts_at": now - timedelta(hours=1),
                "ends_at": now + timedelta(days=10),
                "priority": 60,
                "due_days": 5,
                "daily_cap": 3,
                "branch_daily_cap": 1,
            },
            actor="analyst",
            now=now,
        )

    def names(messages: Sequence[OutboxMessage]) -> list[str]:
        by_id = {v: k for k, v in ids.items()}
        return [by_id.get(t.customer_id, t.customer_id) for t in created(messages)]

    # Day 1: a0 has no marketing consent; then by value, one per branch, three in all.
    day1 = await dispatch(service)
    assert names(day1) == ["a1", "b1", "c1"]
    task = created(day1)[0]
    assert (task.action, task.priority, task.reason) == (
        "campaign_contact",
        60,
        "campaign Deposit renewals: offer the 3-year deposit rate",
    )
    async with service.store() as store:
        [why] = await store.suppressions(ids["a0"])
    assert (why.action, why.code) == ("campaign_contact", "no_consent")
    assert names(await dispatch(service)) == []  # nothing more today

    service.clock.advance(timedelta(days=1))
    assert names(await dispatch(service)) == ["a2", "b2"]  # a3 waits: branch a had its one today
    service.clock.advance(timedelta(days=1))
    assert names(await dispatch(service)) == ["a3"]

    # A customer entering the segment while the campaign runs is targeted then.
    late = unique_ref("Clate")
    entered = await service.consume(profile_updated(late, "5000.00", at=service.clock.now(), branch_id=c))
    assert memberships(entered, segment_id) == [(late, True)]
    assert [t.customer_id for t in created(entered)] == [late]
    assert names(await dispatch(service)) == []

    # Outcomes: one sold, one declined.
    async with service.store() as store:
        tasks = {t.customer_id: t for t in await store.tasks_of_campaign(campaign_id)}
        for name, outcome in (("a1", "product_sold"), ("b1", "declined")):
            done: Task = tasks[ids[name]]
            done.status, done.outcome, done.closed_at = "done", outcome, service.clock.now()
    async with service.store() as store:
        targets, by_task = await store.campaign_stats(campaign_id)
    assert targets == {("created", None): 7, ("suppressed", "no_consent"): 1}
    assert by_task == {("open", None): 5, ("done", "product_sold"): 1, ("done", "declined"): 1}


async def test_targets_still_waiting_when_the_campaign_ends_expire(service: Service) -> None:
    a, segment_id, campaign_id = unique_ref("BR"), unique_ref("SEG"), unique_ref("CMP")
    now = service.clock.now()
    ids = [unique_ref("C") for _ in range(3)]
    await service.consume(*(profile_updated(cid, "5000.00", at=now, branch_id=a) for cid in ids))
    await define(service, segment_id, in_branches(a))
    await backfill(service, segment_id)
    async with service.store() as store:
        await save_campaign(
            store,
            campaign_id,
            {
                "name": "One a day",
                "segment_id": segment_id,
                "action": "reactivation",
                "script": None,
                "starts_at": now,
                "ends_at": now + timedelta(hours=12),
                "priority": 40,
                "due_days": 7,
                "daily_cap": 1,
                "branch_daily_cap": None,
            },
            actor="analyst",
            now=now,
        )
    assert len(created(await dispatch(service))) == 1
    service.clock.advance(timedelta(days=1))
    assert created(await dispatch(service)) == []
    async with service.store() as store:
        targets, _ = await store.campaign_stats(campaign_id)
    assert targets == {("created", None): 1, ("expired", None): 2}
