"""Engagement against the real database with time moved by the test clock: assignment, the contact
policy, suppressions and the scheduled sweep with two schedulers at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from runtime.consumer import BatchContext
from runtime.db import create_engine, runtime_table, session_factory
from runtime.jobs import JobRunner
from services.engagement.app import sweep_job
from services.engagement.engine import profile_of
from services.engagement.models import Base
from services.engagement.rules import Proposal
from tests.builders import profile_updated, unique_ref
from tests.integration.engagement import START, Service, created, tier_changed


async def test_entering_vip_makes_one_welcome_assigned_to_the_least_loaded_rm_of_the_grade(service: Service) -> None:
    branch = unique_ref("BR")
    async with service.store() as store:
        for rm_id, grade, capacity in (
            ("busy", "wealth_manager", 2),
            ("free", "wealth_manager", 50),
            ("top", "private_banker", 50),
        ):
            await store.save_manager(
                {
                    "rm_id": f"{branch}-{rm_id}",
                    "name": rm_id,
                    "grade": grade,
                    "branch_id": branch,
                    "capacity": capacity,
                    "active": True,
                    "updated_at": START,
                }
            )
        # `busy` already serves one customer: half full, where `free` is empty.
        other = unique_ref("C")
        (await store.lock_customers([other], START))[other].rm_id = f"{branch}-busy"
    cid = unique_ref("C")
    now = service.clock.now()
    first = await service.consume(
        profile_updated(cid, "350000.00", at=now, branch_id=branch), tier_changed(cid, None, "vip", now)
    )
    [welcome] = created(first)
    assert (welcome.action, welcome.rm_id, welcome.branch_id) == ("welcome", f"{branch}-free", branch)
    # The same trigger again (a redelivery under a new id, or a second path) makes no second task.
    again = await service.consume(tier_changed(cid, None, "vip", now))
    assert created(again) == []
    async with service.store() as store:
        [why] = await store.suppressions(cid)
    assert (why.action, why.code) == ("welcome", "open_task")

    # The RM leaves: the customer and the open task move to the other RM of the grade.
    async with service.store() as store:
        customer = (await store.lock_customers([cid], now))[cid]
        free = await store.manager(f"{branch}-free", lock=True)
        assert free is not None
        free.active = False
        await service.engagement.assign(
            BatchContext(store.session, service.clock, "engagement"), store, customer, now, None
        )
        assert customer.rm_id == f"{branch}-busy"
    [task] = await service.tasks(cid)
    assert task.rm_id == f"{branch}-busy"

    # Up to private: the grade changes, so does the RM.
    later = now + timedelta(days=1)
    await service.consume(tier_changed(cid, "vip", "private", later))
    async with service.store() as store:
        customer = (await store.lock_customers([cid], later))[cid]
    assert customer.rm_id == f"{branch}-top"


async def test_one_batch_fills_the_rms_least_loaded_first_and_queues_the_rest_reading_the_roster_once(
    service: Service,
) -> None:
    branch = unique_ref("BR")
    async with service.store() as store:
        for rm_id, capacity in (("a", 2), ("b", 1)):
            manager = {"rm_id": f"{branch}-{rm_id}", "name": rm_id, "grade": "wealth_manager", "branch_id": branch}
            await store.save_manager(manager | {"capacity": capacity, "active": True, "updated_at": START})
    prefix = unique_ref("C")
    ids = [f"{prefix}-{n}" for n in range(5)]  # in id order, as the batch assigns them
    now = service.clock.now()
    batch = [
        e
        for cid in ids
        for e in (profile_updated(cid, "350000.00", at=now, branch_id=branch), tier_changed(cid, None, "vip", now))
    ]
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = service.sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await service.consume(*batch)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    async with service.store() as store:
        rows = await store.lock_customers(ids, now)
    # a: 0 of 2, b: 0 of 1 -> a; then b (empty) -> b; then a (1 of 2) -> a; then nobody has room.
    assert [rows[cid].rm_id for cid in ids] == [f"{branch}-a", f"{branch}-b", f"{branch}-a", None, None]
    assert len([s for s in statements if "FROM engagement.managers" in s and "FOR UPDATE" in s]) == 1


async def test_an_rm_freed_in_a_batch_takes_the_next_customer_of_that_batch_from_the_roster_it_read(
    service: Service,
) -> None:
    branch = unique_ref("BR")
    async with service.store() as store:
        for rm_id, grade in (("a", "wealth_manager"), ("s", "senior_wealth_manager")):
            manager = {"rm_id": f"{branch}-{rm_id}", "name": rm_id, "grade": grade, "branch_id": branch}
            await store.save_manager(manager | {"capacity": 1, "active": True, "updated_at": START})
    prefix = unique_ref("C")
    waiting, moving, later = (f"{prefix}-{n}" for n in range(3))  # the order the batch assigns them in
    now = service.clock.now()
    await service.consume(
        profile_updated(moving, "350000.00", at=now, branch_id=branch), tier_changed(moving, None, "vip", now)
    )
    # `waiting` finds a's roster full, then `moving` goes up to s and frees a for `later`.
    await service.consume(
        profile_updated(waiting, "350000.00", at=now, branch_id=branch),
        tier_changed(waiting, None, "vip", now),
        tier_changed(moving, "vip", "wealth", now),
        profile_updated(later, "350000.00", at=now, branch_id=branch),
        tier_changed(later, None, "vip", now),
    )
    async with service.store() as store:
        rows = await store.lock_customers([waiting, moving, later], now)
    assert [rows[cid].rm_id for cid in (waiting, moving, later)] == [None, f"{branch}-s", f"{branch}-a"]


async def test_a_customer_without_consent_gets_service_tasks_but_no_marketing(service: Service) -> None:
    cid = unique_ref("C")
    now = service.clock.now()
    soon = (now + timedelta(days=3)).date()
    events = [
        profile_updated(
            cid,
            "190000.00",
            at=now,
            consent=False,
            birth_date=date(1975, soon.month, soon.day),
            interactions={"open_complaints": 1, "last_complaint_at": now.isoformat()},
        ),
        tier_changed(cid, None, "vip", now),
    ]
    tasks = created(await service.consume(*events))
    assert sorted(t.action for t in tasks) == ["service_recovery", "welcome"]
    async with service.store() as store:
        why = {(s.action, s.code) for s in await store.suppressions(cid)}
    assert ("birthday_greeting", "no_consent") in why

    # The complaint resolved: its task closes by itself.
    later = now + timedelta(hours=5)
    resolved = profile_updated(cid, "190000.00", at=later, consent=False, interactions={"open_complaints": 0})
    updates = [m for m in await service.consume(resolved) if m.event.type == "c360.task.updated.v1"]
    assert [(u.event.data["action"], u.event.data["status"]) for u in updates] == [("service_recovery", "done")]


async def test_a_retention_trigger_inside_the_cooldown_makes_no_task(service: Service) -> None:
    cid = unique_ref("C")
    now = service.clock.now()
    await service.consume(profile_updated(cid, "300000.00", at=now), tier_changed(cid, None, "vip", now))
    fell = now + timedelta(days=1)
    [retention] = [t for t in created(await service.consume(tier_changed(cid, "vip", "vip", fell, watch_since=fell)))]
    assert retention.action == "retention_call"
    async with service.store() as store:
        task = await store.task(retention.task_id, lock=True)
        assert task is not None
        task.status, task.closed_at, task.outcome = "done", fell, "reached"
    # Back above, then below again ten days later: inside the 30-day cooldown.
    back = fell + timedelta(days=5)
    await service.consume(tier_changed(cid, "vip", "vip", back))
    again = back + timedelta(days=5)
    assert created(await service.consume(tier_changed(cid, "vip", "vip", again, watch_since=again))) == []
    async with service.store() as store:
        codes = {(s.action, s.code) for s in await store.suppressions(cid)}
    assert ("retention_call", "cooldown") in codes


async def test_the_birthday_greeting_comes_once_when_the_clock_reaches_the_window_even_with_two_schedulers(
    service: Service, migrated_database: str
) -> None:
    cid = unique_ref("C")
    now = service.clock.now()
    birthday = now.date() + timedelta(days=30)
    await service.consume(
        profile_updated(cid, "500000.00", at=now, birth_date=date(1970, birthday.month, birthday.day)),
        tier_changed(cid, None, "vip", now),
    )
    assert [t.action for t in await service.tasks(cid)] == ["welcome"]

    engine = create_engine(migrated_database)
    outbox = runtime_table(Base.metadata, "outbox")

    def scheduler() -> JobRunner:
        return JobRunner(
            service="engagement-it",  # its own lock name: the running platform's sweep is not in the way
            job=sweep_job(service.engagement, batch=500, interval_s=60),
            sessions=session_factory(engine),
            outbox_table=outbox,
            clock=service.clock,
        )

    try:
        service.clock.at = datetime.combine(birthday - timedelta(days=8), datetime.min.time(), UTC)
        await asyncio.gather(scheduler().run_once(), scheduler().run_once())
        assert [t.action for t in await service.tasks(cid)] == ["welcome"]
        service.clock.at = datetime.combine(birthday - timedelta(days=7), datetime.min.time(), UTC)
        for _ in range(3):
            await asyncio.gather(scheduler().run_once(), scheduler().run_once())
        service.clock.advance(timedelta(days=2))
        await asyncio.gather(scheduler().run_once(), scheduler().run_once())
    finally:
        await engine.dispose()
    greetings = [t for t in await service.tasks(cid) if t.action == "birthday_greeting"]
    assert len(greetings) == 1
    assert greetings[0].due_at == datetime.combine(birthday, datetime.min.time(), UTC).replace(hour=9)


async def test_the_one_open_task_rule_holds_on_a_connection_past_postgres_generic_plan_switch(
    service: Service,
) -> None:
    """PostgreSQL plans a prepared statement generically from its sixth run on; the open-task
    insert must still find its partial unique index then (a bound predicate would not)."""
    ids = [unique_ref("C") for _ in range(8)]
    now = service.clock.now()
    async with service.store() as store:
        await store.lock_customers(ids, now)
        for cid in ids * 2:
            proposal = Proposal(cid, "risk_follow_up", "test", 85, now, marketing=False)
            await store.create_task(proposal, rm_id=None, branch_id=None, now=now)
    for cid in ids:
        assert [t.action for t in await service.tasks(cid)] == ["risk_follow_up"]


async def test_a_batch_with_an_older_profile_and_a_tier_change_acts_on_the_profile_kept(service: Service) -> None:
    cid = unique_ref("C")
    now = service.clock.now()
    sent = profile_updated(cid, "350000.00", at=now)
    await service.consume(sent)
    async with service.store() as store:
        assert (await store.lock_customers([cid], now))[cid].profile == sent.data  # kept as it was sent
    # The batch reads no kept profile up front: this one's profile is older, so the kept one is
    # read for the rules and stays.
    late = await service.consume(
        profile_updated(cid, "1000.00", at=now - timedelta(hours=1)), tier_changed(cid, None, "vip", now)
    )
    assert [t.action for t in created(late)] == ["welcome"]
    async with service.store() as store:
        row = (await store.lock_customers([cid], now))[cid]
        kept = profile_of(row)
    assert kept is not None
    assert kept.aum_avg_30d_cny == Decimal("350000.00")


async def test_saved_customers_are_written_from_arrays_and_left_clean_for_the_flush(service: Service) -> None:
    ids = [unique_ref("C") for _ in range(3)]
    now = service.clock.now()
    async with service.store() as store:
        rows = await store.lock_customers(ids, now, without_profile=True)
        rows[ids[0]].tier, rows[ids[0]].risk_flags = "vip", ["dormant", "large_outflow"]
        rows[ids[1]].tier, rows[ids[1]].flag_reasons = "mass", {"dormant": "no activity for 90 days"}
        rows[ids[2]].churn_risk = 0.25  # a third set of changed columns; the profile stays unread
        await store.save_customers(rows.values())
        assert not any(row in store.session for row in rows.values())
        statements: list[str] = []

        def record(*args: Any) -> None:
            statements.append(args[2])

        engine = store.session.bind.sync_engine  # type: ignore[union-attr]
        event.listen(engine, "before_cursor_execute", record)
        try:
            await store.session.flush()
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert statements == []  # the commit's flush writes nothing more
    async with service.store() as store:
        kept = await store.lock_customers(ids, now)
    assert [(kept[i].tier, kept[i].risk_flags, kept[i].flag_reasons, kept[i].churn_risk) for i in ids] == [
        ("vip", ["dormant", "large_outflow"], {}, None),
        ("mass", [], {"dormant": "no activity for 90 days"}, None),
        (None, [], {}, 0.25),
    ]
    assert all(kept[i].profile is None for i in ids)
