"""Turning what engagement knows into tasks, in one place for every path that does it: a
consumed batch, the scheduled sweep, a task closed with the customer reached, a roster change.

For each customer: keep the RM assignment right for the tier, close service-recovery tasks whose
complaints are resolved, let every rule of the catalogue propose, arbitrate under the contact
policy, create the tasks (publishing `c360.task.created.v1`), record every suppression with its
reason, and note when a time-based rule may next fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from contracts import TASK_CREATED, TASK_UPDATED, JsonText, ProfileUpdated, TaskEvent, TaskStatus
from runtime.consumer import BatchContext, ConsumedEvent
from services.engagement.models import CustomerState, Task
from services.engagement.policy import Manager as RosterEntry
from services.engagement.policy import Suppressed, arbitrate, choose_manager, keeps
from services.engagement.rules import Catalogue, Facts, Signals
from services.engagement.store import EngagementStore, entry

RESOLVED = "complaint resolved"


def task_event(task: Task) -> TaskEvent:
    return TaskEvent(
        task_id=task.task_id,
        customer_id=task.customer_id,
        action=task.action,
        reason=task.reason,
        priority=task.priority,
        due_at=task.due_at,
        rm_id=task.rm_id,
        status=TaskStatus(task.status),
        outcome=task.outcome,
        branch_id=task.branch_id,
    )


def profile_of(row: CustomerState) -> ProfileUpdated | None:
    """The stored profile, parsed once per stored value (rules, segments and the resolution check
    all read it in one batch)."""
    if not row.profile:
        return None
    cached: tuple[object, ProfileUpdated] | None = getattr(row, "_parsed_profile", None)
    if cached is not None and cached[0] is row.profile:
        return cached[1]
    parsed = ProfileUpdated.from_stored(row.profile)
    row._parsed_profile = (row.profile, parsed)  # type: ignore[attr-defined]
    return parsed


def keep_profile(row: CustomerState, profile: ProfileUpdated, as_received: JsonText) -> None:
    """Store a profile from an event as it arrived (its `data` as JSON text, so the model just
    parsed from it is not serialised again), keeping the parsed model so `profile_of` need not
    parse it. Read through `profile_of`: the kept value is that text until the row is read again."""
    row.profile = as_received
    row._parsed_profile = (row.profile, profile)  # type: ignore[attr-defined]


def facts_of(row: CustomerState, last_created: Mapping[str, datetime]) -> Facts:
    profile = profile_of(row)
    known: dict[str, Any] = {}
    if profile is not None:
        known = {
            "aum_cny": profile.aum_cny,
            "aum_avg_30d_cny": profile.aum_avg_30d_cny,
            "accounts": tuple(profile.accounts or ()),
            "behaviour": profile.behaviour,
            "interactions": profile.interactions,
            "tags": frozenset(profile.tags),
        }
    return Facts(
        customer_id=row.customer_id,
        tier=row.tier,
        tier_since=row.tier_since,
        watch_since=row.watch_since,
        branch_id=row.branch_id,
        marketing_consent=row.marketing_consent,
        birth_date=row.birth_date,
        churn_risk=row.churn_risk,
        risk_flags=frozenset(row.risk_flags or ()),
        flag_reasons=dict(row.flag_reasons or {}),
        last_contact_at=row.last_contact_at,
        last_created=last_created,
        **known,
    )


class Rosters:
    """The rosters a transaction has read (and locked), by branch and grade, with the loads kept
    current as it assigns customers: a batch reads each roster once, where every customer waiting
    for an RM read its roster (and the RMs' loads) again, two statements each, although no RM
    could take them (without RMs, as in the benchmarks, py-spy put it at 5% of engagement's CPU at
    1,000 events/s).
    The locks keep the loads true until the commit: another instance assigning from a roster
    waits for them."""

    def __init__(self, store: EngagementStore) -> None:
        self.store = store
        self._read: dict[tuple[str | None, str], list[RosterEntry]] = {}

    async def of(self, branch_id: str | None, grade: str) -> list[RosterEntry]:
        key = (branch_id, grade)
        if key not in self._read:
            self._read[key] = await self.store.roster(branch_id, grade)
        return self._read[key]

    def moved(self, from_rm: str | None, to_rm: str | None) -> None:
        """A customer moved from one RM to another (either may be None): the loads follow."""
        for roster in self._read.values():
            for i, manager in enumerate(roster):
                if manager.rm_id in (from_rm, to_rm):
                    roster[i] = replace(manager, load=manager.load + (1 if manager.rm_id == to_rm else -1))


class Engagement:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.rules = catalogue.rules()

    def publish(self, ctx: BatchContext, task: Task, *, created: bool, cause: ConsumedEvent | None = None) -> None:
        ctx.publish(task_event(task), type_=TASK_CREATED if created else TASK_UPDATED, cause=cause)

    async def evaluate(
        self,
        ctx: BatchContext,
        store: EngagementStore,
        customers: Mapping[str, CustomerState],
        signals: Mapping[str, Signals] | None = None,
        causes: Mapping[str, ConsumedEvent] | None = None,
    ) -> None:
        """Apply the catalogue to `customers` (locked rows of this transaction)."""
        live = {cid: row for cid, row in customers.items() if row.merged_into is None}
        if not live:
            return
        now = ctx.clock.now()
        history = await store.history(live, now)
        rosters = Rosters(store)
        suppressions: list[tuple[str, Suppressed]] = []
        for cid in sorted(live):
            row = live[cid]
            cause = (causes or {}).get(cid)
            await self.assign(ctx, store, row, now, cause, rosters)
            if "service_recovery" in history[cid].policy.open_actions:
                await self._close_resolved(ctx, store, row, now, cause)
            facts = facts_of(row, history[cid].last_created)
            said = (signals or {}).get(cid, Signals())
            proposals = [p for rule in self.rules if (p := rule.propose(facts, said, now)) is not None]
            decision = arbitrate(
                proposals,
                history[cid].policy,
                self.catalogue.actions,
                consent=row.marketing_consent,
                weekly_cap=self.catalogue.weekly_cap,
                now=now,
            )
            suppressed = list(decision.suppressed)
            for proposal in decision.create:
                task = await store.create_task(proposal, rm_id=row.rm_id, branch_id=row.branch_id, now=now)
                if task is None:  # another instance created it a moment ago
                    suppressed.append(
                        Suppressed(proposal, "open_task", f"an open {proposal.action} task already exists")
                    )
                else:
                    self.publish(ctx, task, created=True, cause=cause)
            suppressions.extend((cid, s) for s in suppressed)
            checks = [at for rule in self.rules if rule.settings.enabled and (at := rule.next_check(facts, now))]
            row.next_check_at = min(checks, default=None)
            row.updated_at = now
        await store.record_suppressions(suppressions, now)

    async def assign(
        self,
        ctx: BatchContext,
        store: EngagementStore,
        row: CustomerState,
        now: datetime,
        cause: ConsumedEvent | None,
        rosters: Rosters | None = None,
    ) -> None:
        """Give the customer the RM the tier needs (sticky while it fits); open tasks follow.
        `rosters` are the ones already read in this transaction (by default, read afresh)."""
        grade = self.catalogue.tier_grades.get(row.tier or "")
        current = await store.manager(row.rm_id) if row.rm_id else None
        current_entry = entry(current) if current is not None else None
        if (grade is None and row.rm_id is None) or keeps(current_entry, grade):
            return  # nothing to change: the roster is left unlocked
        rosters = rosters or Rosters(store)
        roster = [] if grade is None else await rosters.of(row.branch_id, grade)
        chosen = choose_manager(current_entry, grade, row.branch_id, roster)
        rm_id = chosen.rm_id if chosen is not None else None
        if rm_id == row.rm_id:
            return
        rosters.moved(row.rm_id, rm_id)
        row.rm_id = rm_id
        row.updated_at = now
        await store.session.flush()  # the next customer's choice sees this one's load
        for task in await store.open_tasks(row.customer_id, lock=True):
            task.rm_id = rm_id
            task.branch_id = row.branch_id
            task.updated_at = now
            self.publish(ctx, task, created=False, cause=cause)

    async def _close_resolved(
        self, ctx: BatchContext, store: EngagementStore, row: CustomerState, now: datetime, cause: ConsumedEvent | None
    ) -> None:
        profile = profile_of(row)
        if profile is None or profile.interactions is None or profile.interactions.open_complaints:
            return
        for task in await store.open_tasks(row.customer_id, action="service_recovery", lock=True):
            task.status = TaskStatus.DONE.value
            task.outcome = RESOLVED
            task.closed_at = task.updated_at = now
            self.publish(ctx, task, created=False, cause=cause)
