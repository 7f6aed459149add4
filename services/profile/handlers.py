"""What each consumed batch does to the profile.

A batch is folded in memory and written with a few batched statements; every customer whose
view changed gets exactly one `c360.profile.updated.v1` for the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from contracts import AccountBalance, AccountClosed, AccountOpened, CustomerUpserted, FxRate, ProfileUpdated
from runtime.consumer import BatchContext, ConsumedEvent
from services.profile.domain import AccountState, apply_account_event, average_daily_aum, customer_totals
from services.profile.identity import IdentityProtector
from services.profile.store import ProfileStore, SourceRef

AVERAGE_DAYS = 30
Links = dict[SourceRef, str]
Touch = Callable[[str, str, ConsumedEvent], None]


class ProfileHandler:
    """Applies inbound bank events to the customer view."""

    def __init__(self, identity: IdentityProtector, business_timezone: str) -> None:
        self.identity = identity
        self.timezone = ZoneInfo(business_timezone)

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        store = ProfileStore(ctx.session)
        now = ctx.clock.now()
        changed: dict[str, set[str]] = {}
        causes: dict[str, ConsumedEvent] = {}
        event_times: dict[str, datetime] = {}

        refs: set[SourceRef] = set()
        for event in events:
            if not isinstance(event.data, FxRate):
                refs.add((event.envelope.source, event.parsed.key))
        links = await store.link_customers(refs)

        def touch(customer_id: str, what: str, event: ConsumedEvent) -> None:
            changed.setdefault(customer_id, set()).add(what)
            causes[customer_id] = event
            seen = event_times.get(customer_id)
            event_times[customer_id] = event.envelope.time if seen is None else max(seen, event.envelope.time)

        await self._apply_identity(store, events, links, touch)
        await self._apply_rates(store, events, touch)
        await self._apply_accounts(store, events, links, touch)
        if changed:
            await self._recompute(ctx, store, changed, causes, event_times, now)

    async def _apply_identity(
        self, store: ProfileStore, events: Sequence[ConsumedEvent], links: Links, touch: Touch
    ) -> None:
        newest: dict[SourceRef, tuple[datetime, dict[str, object], ConsumedEvent]] = {}
        for event in events:
            data = event.data
            if not isinstance(data, CustomerUpserted):
                continue
            ref = (event.envelope.source, data.customer_ref)
            if ref in newest and newest[ref][0] > event.envelope.time:
                continue
            newest[ref] = (event.envelope.time, self._source_record(ref, links[ref], data, event.envelope.time), event)
        if not newest:
            return
        await store.upsert_source_records([row for _, row, _ in newest.values()])
        for ref, (_, _, event) in newest.items():
            touch(links[ref], "identity", event)
        await store.refresh_identity(links[ref] for ref in newest)

    def _source_record(
        self, ref: SourceRef, customer_id: str, data: CustomerUpserted, at: datetime
    ) -> dict[str, object]:
        return {
            "source": ref[0],
            "customer_ref": ref[1],
            "customer_id": customer_id,
            "provisional": False,
            "full_name": data.full_name,
            "id_type": data.id_type.value,
            "id_number_hash": self.identity.hash(data.id_type.value, data.id_number),
            "id_number_masked": self.identity.mask(data.id_number),
            "birth_date": data.birth_date,
            "gender": data.gender,
            "phone": data.phone,
            "email": data.email,
            "branch_id": data.branch_id,
            "marketing_consent": data.marketing_consent,
            "onboarded_on": data.onboarded_on,
            "record_time": at,
        }

    async def _apply_rates(self, store: ProfileStore, events: Sequence[ConsumedEvent], touch: Touch) -> None:
        rates: dict[str, tuple[Decimal, datetime]] = {}
        last: dict[str, ConsumedEvent] = {}
        for event in events:
            data = event.data
            if isinstance(data, FxRate) and (data.currency not in rates or rates[data.currency][1] < data.as_of):
                rates[data.currency] = (data.rate_to_cny, data.as_of)
                last[data.currency] = event
        if not rates:
            return
        await store.upsert_rates(rates)
        for currency in rates:
            for customer_id in await store.customers_holding([currency]):
                touch(customer_id, "fx_rates", last[currency])

    async def _apply_accounts(
        self, store: ProfileStore, events: Sequence[ConsumedEvent], links: Links, touch: Touch
    ) -> None:
        account_events = [e for e in events if isinstance(e.data, AccountOpened | AccountBalance | AccountClosed)]
        if not account_events:
            return
        states = await store.load_accounts(_account_key(e) for e in account_events)
        # An account belongs to the customer it was opened for, even when a later event names
        # another customer_ref: make sure those owners are linked too.
        owners = {(state.source, state.customer_ref) for state in states.values()} - links.keys()
        links.update(await store.link_customers(owners))
        dirty: dict[SourceRef, AccountState] = {}
        for event in account_events:
            data = event.data
            assert isinstance(data, AccountOpened | AccountBalance | AccountClosed)
            key = (event.envelope.source, data.account_ref)
            before = states.get(key)
            after = apply_account_event(before, event.envelope.source, data)
            if after != before:
                states[key] = dirty[key] = after
                what = "balances" if isinstance(data, AccountBalance) else "accounts"
                touch(links[(event.envelope.source, after.customer_ref)], what, event)
        await store.save_accounts(list(dirty.values()), links)

    async def _recompute(
        self,
        ctx: BatchContext,
        store: ProfileStore,
        changed: dict[str, set[str]],
        causes: dict[str, ConsumedEvent],
        event_times: dict[str, datetime],
        now: datetime,
    ) -> None:
        today = now.astimezone(self.timezone).date()
        accounts = await store.accounts_of(changed)
        rates = await store.rates()
        totals = {cid: customer_totals(accounts[cid], rates) for cid in changed}
        await store.record_daily_aum({cid: t.aum_cny for cid, t in totals.items()}, today)
        history = await store.daily_history(changed, today - timedelta(days=AVERAGE_DAYS - 1))
        averages = {cid: average_daily_aum(history[cid], today, AVERAGE_DAYS) for cid in changed}
        await store.save_totals(totals, averages, event_times, now)
        profiles = await store.profiles(changed)
        for customer_id in sorted(changed):
            t = totals[customer_id]
            profile = profiles[customer_id]
            ctx.publish(
                ProfileUpdated(
                    customer_id=customer_id,
                    aum_cny=t.aum_cny,
                    aum_avg_30d_cny=averages[customer_id],
                    liabilities_cny=t.liabilities_cny,
                    product_holdings=dict(t.product_holdings),
                    tags=[],
                    changed=sorted(changed[customer_id]),
                    branch_id=profile.branch_id,
                    birth_date=profile.birth_date,
                    marketing_consent=profile.marketing_consent,
                    unconverted_currencies=sorted(t.unconverted_currencies),
                ),
                cause=causes[customer_id],
            )


def _account_key(event: ConsumedEvent) -> SourceRef:
    data = event.data
    assert isinstance(data, AccountOpened | AccountBalance | AccountClosed)
    return (event.envelope.source, data.account_ref)
