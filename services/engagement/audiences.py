"""Live segments and the campaigns that reach them, in one place for every path that moves them:
a consumed batch, the backfill after a rule changes, and the campaign dispatcher.

`refresh` evaluates every segment for customers the caller holds locked, publishes each entering
and leaving once (`c360.segment.membership.v1`), makes entrants targets of the campaigns running on
the segment and dispatches them. Locks are always taken in one order (customers, then campaign
rows, then segment rows) so that consumers, the backfill and the dispatcher never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import SEGMENT_MEMBERSHIP, SegmentMembership
from runtime.consumer import BatchContext
from runtime.jobs import PeriodicJob
from services.engagement.campaigns import (
    Allowance,
    CampaignAction,
    business_day_start,
    campaign_proposal,
    campaign_settings,
)
from services.engagement.engine import Engagement, facts_of, profile_of
from services.engagement.models import Campaign, CustomerState, Segment
from services.engagement.policy import Suppressed, arbitrate
from services.engagement.segments import Rule, Subject, parse_rule, subject_of
from services.engagement.store import EngagementStore


@dataclass(frozen=True)
class Parsed:
    version: int
    rule: Rule


def subject(row: CustomerState) -> Subject:
    return subject_of(facts_of(row, {}), profile_of(row), row.value_score)


def action_of(campaign: Campaign) -> CampaignAction:
    return CampaignAction(
        campaign.campaign_id, campaign.name, campaign.action, campaign.script, campaign.priority, campaign.due_days
    )


class Audiences:
    def __init__(self, engagement: Engagement, *, zone: str, batch: int) -> None:
        self.engagement = engagement
        self.zone = zone
        self.batch = batch
        self._rules: dict[str, Parsed] = {}

    def rule(self, segment: Segment) -> Rule:
        cached = self._rules.get(segment.segment_id)
        if cached is None or cached.version != segment.version:
            cached = Parsed(segment.version, parse_rule(segment.rule))
            self._rules[segment.segment_id] = cached
        return cached.rule

    # -- membership ------------------------------------------------------------------------------

    async def refresh(self, ctx: BatchContext, store: EngagementStore, rows: Mapping[str, CustomerState]) -> None:
        """Evaluate every segment for `rows` (locked by the caller); merged customers leave all."""
        if not rows:
            return
        segments = await store.segments()
        if not segments:
            return
        now = ctx.clock.now()
        today = now.date()
        subjects = {cid: subject(row) for cid, row in rows.items() if row.merged_into is None}
        held = await store.memberships(rows)
        entered: dict[str, list[str]] = {}
        for segment in segments:
            rule = self.rule(segment)
            inside = {cid for cid, s in subjects.items() if rule(s, today)}
            was = {cid for cid, ids in held.items() if segment.segment_id in ids}
            entering, leaving = sorted(inside - was), sorted(was - inside)
            if entering:
                await store.enter(segment.segment_id, entering, now)
                entered[segment.segment_id] = entering
            if leaving:
                await store.leave(segment.segment_id, leaving)
            for cid, flag in [(c, True) for c in entering] + [(c, False) for c in leaving]:
                ctx.publish(
                    SegmentMembership(segment_id=segment.segment_id, customer_id=cid, entered=flag, at=now),
                    type_=SEGMENT_MEMBERSHIP,
                )
        if entered:
            for campaign in await store.running_campaigns(now, entered):
                targets = await store.target(campaign.campaign_id, entered[campaign.segment_id], now)
                if targets:
                    await self.dispatch(ctx, store, campaign, customer_ids=targets)
        await store.touch_segments((s.segment_id for s in segments), now)

    async def backfill_round(self, ctx: BatchContext, store: EngagementStore) -> bool:
        """One batch of the oldest unfinished backfill; True when more is due now. A segment whose
        rule reads the calendar (age, days since contact) is re-evaluated in full once a day."""
        now = ctx.clock.now()
        day = business_day_start(now, self.zone)
        segments = await store.segments()
        stale = [
            s
            for s in segments
            if s.backfill_finished_at is not None and s.backfill_finished_at < day and self.rule(s).reads_calendar
        ]
        for segment in stale:
            await restart_backfill(store, segment, now)
        if stale:
            return True  # committed before any customer is locked: segment rows come after customers
        pending = [s for s in segments if s.backfill_finished_at is None]
        if not pending:
            return False
        segment = min(pending, key=lambda s: (s.backfill_started_at or now, s.segment_id))
        version, cursor = segment.version, segment.backfill_cursor
        rows = await store.customers_after(cursor, self.batch)
        await self.refresh(ctx, store, rows)
        # The rule may have changed while this batch ran: then its own backfill starts over.
        await store.session.refresh(segment, with_for_update=True)
        if segment.version == version and segment.backfill_cursor == cursor:
            segment.backfill_done += len(rows)
            if rows:
                segment.backfill_cursor = max(rows)
            if len(rows) < self.batch:
                segment.backfill_finished_at = now
                segment.backfill_total = segment.backfill_done
        return True

    # -- campaigns -------------------------------------------------------------------------------

    async def allowance(self, store: EngagementStore, campaign: Campaign, now: datetime) -> Allowance:
        used = await store.created_since(campaign.campaign_id, business_day_start(now, self.zone))
        allowance = Allowance(campaign.daily_cap, campaign.branch_daily_cap)
        for branch, n in used.items():
            allowance.used += n
            allowance.used_by_branch[branch] += n
        return allowance

    async def dispatch(
        self,
        ctx: BatchContext,
        store: EngagementStore,
        campaign: Campaign,
        *,
        customer_ids: Sequence[str] | None = None,
    ) -> int:
        """Turn waiting targets into tasks, highest value first, within today's caps and through the
        contact policy; a suppressed target is recorded with its reason. The campaign row must be
        locked. Returns the targets decided."""
        now = ctx.clock.now()
        allowance = await self.allowance(store, campaign, now)
        catalogue = self.engagement.catalogue
        act = action_of(campaign)
        settings = campaign_settings(act, catalogue.actions)
        actions = {**catalogue.actions, act.action: settings}
        full: set[str | None] = set()
        decided = 0
        while not allowance.exhausted():
            rows = await store.waiting_targets(
                campaign.campaign_id, limit=self.batch, customer_ids=customer_ids, skip_branches=sorted(full, key=str)
            )
            if not rows:
                break
            history = await store.history(rows, now)
            for row in rows.values():
                if not allowance.allows(row.branch_id):
                    if allowance.exhausted():
                        break
                    full.add(row.branch_id)  # this branch waits for tomorrow; others may go on
                    continue
                decided += 1
                proposal = campaign_proposal(act, row.customer_id, settings, now)
                decision = arbitrate(
                    [proposal],
                    history[row.customer_id].policy,
                    actions,
                    consent=row.marketing_consent,
                    weekly_cap=catalogue.weekly_cap,
                    now=now,
                )
                why = decision.suppressed[0] if decision.suppressed else None
                if why is None:
                    task = await store.create_task(
                        proposal, rm_id=row.rm_id, branch_id=row.branch_id, now=now, campaign_id=campaign.campaign_id
                    )
                    if task is not None:
                        allowance.take(row.branch_id)
                        await store.decide(
                            campaign.campaign_id,
                            row.customer_id,
                            status="created",
                            now=now,
                            branch_id=row.branch_id,
                            task_id=task.task_id,
                        )
                        self.engagement.publish(ctx, task, created=True)
                        continue
                    why = Suppressed(proposal, "open_task", f"an open {proposal.action} task already exists")
                await store.decide(
                    campaign.campaign_id,
                    row.customer_id,
                    status="suppressed",
                    now=now,
                    code=why.code,
                    reason=why.reason,
                )
                await store.record_suppressions([(row.customer_id, why)], now)
            if len(rows) < self.batch:
                break
        return decided

    async def dispatch_round(self, ctx: BatchContext, store: EngagementStore) -> bool:
        """Start campaigns whose window opened (their members become targets), give each running
        campaign's waiting targets today's room, and close the waiting list of ended ones."""
        now = ctx.clock.now()
        more = False
        for campaign in await store.running_campaigns(now):
            if campaign.members_targeted_at is None:
                await store.target_members(campaign.campaign_id, campaign.segment_id, now)
                campaign.members_targeted_at = now
            more |= await self.dispatch(ctx, store, campaign) >= self.batch
        for campaign_id in await store.ended_with_waiting(now):
            await store.expire_waiting(campaign_id, now)
        return more


async def save_segment(
    store: EngagementStore,
    segment_id: str,
    *,
    name: str,
    description: str | None,
    rule: dict[str, Any],
    actor: str | None,
    now: datetime,
) -> Segment:
    """Create or change a segment; a new or changed rule starts a backfill over every customer."""
    parse_rule(rule)
    segment = await store.segment(segment_id, lock=True)
    if segment is None:
        segment = Segment(segment_id=segment_id, rule=rule, version=1, created_at=now)
        store.session.add(segment)
        await restart_backfill(store, segment, now)
    elif segment.rule != rule:
        segment.rule = rule
        segment.version += 1
        await restart_backfill(store, segment, now)
    segment.name, segment.description = name, description
    segment.updated_at, segment.updated_by = now, actor
    await store.session.flush()
    return segment


async def save_campaign(
    store: EngagementStore, campaign_id: str, values: Mapping[str, Any], *, actor: str | None, now: datetime
) -> Campaign:
    """Create or change a campaign; moved to another segment, that segment's members are targeted
    (each customer at most once per campaign)."""
    campaign = await store.campaign(campaign_id, lock=True)
    if campaign is None:
        campaign = Campaign(campaign_id=campaign_id, created_at=now)
        store.session.add(campaign)
    elif campaign.segment_id != values["segment_id"]:
        campaign.members_targeted_at = None
    for name, value in values.items():
        setattr(campaign, name, value)
    campaign.updated_at, campaign.updated_by = now, actor
    await store.session.flush()
    return campaign


async def restart_backfill(store: EngagementStore, segment: Segment, now: datetime) -> None:
    """Evaluate every customer again for the segment, from the first, in the background."""
    segment.backfill_cursor = None
    segment.backfill_done = 0
    segment.backfill_total = await store.count_customers()
    segment.backfill_started_at = now
    segment.backfill_finished_at = None


def audience_jobs(audiences: Audiences, interval_s: float) -> list[PeriodicJob]:
    async def backfill(ctx: BatchContext) -> bool:
        return await audiences.backfill_round(ctx, EngagementStore(ctx.session))

    async def dispatch(ctx: BatchContext) -> bool:
        return await audiences.dispatch_round(ctx, EngagementStore(ctx.session))

    return [
        PeriodicJob(name="segment-backfill", interval_s=interval_s, run=backfill),
        PeriodicJob(name="campaign-dispatch", interval_s=interval_s, run=dispatch),
    ]
