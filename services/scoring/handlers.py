"""What each consumed batch of `c360.profiles.v1` does: assess each changed customer once, with
the newest profile of the batch; follow merges; erase what erasure names."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import CustomerErased, CustomerMerged, ProfileUpdated
from runtime.consumer import BatchContext, ConsumedEvent
from services.scoring.assessor import Assessor, Subject
from services.scoring.store import ScoringStore


class ScoringHandler:
    def __init__(self, assessor: Assessor) -> None:
        self.assessor = assessor

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        store = ScoringStore(ctx.session)
        now = ctx.clock.now()
        latest: dict[str, Subject] = {}
        merges: list[tuple[str, str]] = []
        for event in events:
            data = event.data
            if isinstance(data, ProfileUpdated):
                at = event.envelope.time
                seen = latest.get(data.customer_id)
                if seen is None or seen.profile_at <= at:
                    latest[data.customer_id] = Subject(data, at, event)
            elif isinstance(data, CustomerMerged):
                latest.pop(data.merged_customer_id, None)
                merges.append((data.merged_customer_id, data.surviving_customer_id))
            elif isinstance(data, CustomerErased):
                # The profile of this batch may still carry personal data: assess first, then erase.
                await store.merge(merges, now)
                merges = []
                await self._assess(ctx, store, latest)
                latest = {}
                await store.erase(data.customer_id)
        await store.merge(merges, now)
        await self._assess(ctx, store, latest)

    async def _assess(self, ctx: BatchContext, store: ScoringStore, latest: dict[str, Subject]) -> None:
        if not latest:
            return
        merged = await store.merged_ids(latest)
        # A late event for a merged customer changes nothing (nor, the assessor sees to it, one
        # older than the profile kept).
        await self.assessor.assess(ctx, store, [s for cid, s in latest.items() if cid not in merged])
