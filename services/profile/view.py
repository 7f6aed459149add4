"""Recomputing a customer's view: money, daily history, behaviour, interactions and tags.

One place computes the figures, whoever asks: the batch handler after events, the daily
roll-forward job when only time has passed, and the split operation for both customers. Each
stores the figures and publishes one `c360.profile.updated.v1` per customer that changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts import (
    AccountSummary,
    Behaviour,
    Channel,
    Counterparty,
    Direction,
    InteractionKind,
    Interactions,
    Product,
    ProfileUpdated,
)
from runtime.consumer import BatchContext, ConsumedEvent
from services.profile.activity import (
    InteractionFact,
    TagInputs,
    TransactionFact,
    behaviour,
    derive_tags,
    interactions_summary,
)
from services.profile.domain import CENT, AccountState, average_daily_aum_cny, customer_totals, to_cny
from services.profile.models import Customer
from services.profile.settings import ProfileConfig
from services.profile.store import ProfileStore, StoredView

BEHAVIOUR_DAYS = 90


class ViewBuilder:
    def __init__(self, config: ProfileConfig) -> None:
        self.timezone = ZoneInfo(config.business_timezone)
        self.average_days = config.average_days

    def business_day(self, at: datetime) -> date:
        """The bank's business day of an instant (the configured zone, Asia/Shanghai by default)."""
        return at.astimezone(self.timezone).date()

    async def recompute(
        self,
        ctx: BatchContext,
        store: ProfileStore,
        changed: Mapping[str, set[str]],
        *,
        causes: Mapping[str, ConsumedEvent] | None = None,
        event_times: Mapping[str, datetime] | None = None,
        only_if_changed: bool = False,
    ) -> list[str]:
        """Recompute, store and publish the view of each customer in `changed` (what caused it).

        Merged-away customers are skipped: their survivor carries the view. With
        `only_if_changed`, a customer is published only when a figure differs from the stored
        one (the roll-forward), and `changed` then names the figures that moved.
        """
        now = ctx.clock.now()
        today = self.business_day(now)
        customers = {cid: c for cid, c in (await store.profiles(changed, lock=True)).items() if c.merged_into is None}
        ids = sorted(customers)
        if not ids:
            return []
        # Activity (behaviour windows, contacts, tags) is derived again when activity or accounts
        # changed, and at least once each business day; a change of balances alone moves money.
        derive = [cid for cid in ids if only_if_changed or not _money_only(customers[cid], changed[cid], today)]
        accounts = await store.accounts_of(ids)
        rates = await store.rates()
        keys = [(a.source, a.account_ref) for cid in ids for a in accounts[cid]]
        history = await store.balance_history(keys, today - timedelta(days=self.average_days - 1), today)
        activity = await self._activity(store, derive, accounts, rates, now)

        rows: list[dict[str, Any]] = []
        published: list[str] = []
        for cid in ids:
            customer = customers[cid]
            totals = customer_totals(accounts[cid], rates)
            average = average_daily_aum_cny(accounts[cid], history, rates, today, self.average_days)
            found = activity.get(cid) or _kept_activity(customer)
            row = {
                "customer_id": cid,
                "aum_cny": totals.aum_cny,
                "aum_avg_30d_cny": average,
                "liabilities_cny": totals.liabilities_cny,
                "unconverted_currencies": sorted(totals.unconverted_currencies),
                "tags": sorted(found.tags),
                "tag_reasons": found.tags,
                "behaviour": found.behaviour.model_dump(mode="json") if cid in activity else customer.behaviour,
                "interactions": found.contacts.model_dump(mode="json") if cid in activity else customer.interactions,
                "customer_since": found.since,
                "last_transaction_at": found.behaviour.last_transaction_at,
                "average_on": today,
                "event_at": (event_times or {}).get(cid),
            }
            rows.append(row)
            moved = _moved(stored_view(customer), row)
            what = sorted(changed[cid]) if not only_if_changed else moved
            if only_if_changed and not moved:
                continue
            ctx.publish(
                ProfileUpdated(
                    customer_id=cid,
                    aum_cny=totals.aum_cny,
                    aum_avg_30d_cny=average,
                    liabilities_cny=totals.liabilities_cny,
                    product_holdings=dict(totals.product_holdings),
                    tags=sorted(found.tags),
                    tag_reasons=found.tags,
                    changed=what,
                    branch_id=customer.branch_id,
                    birth_date=customer.birth_date,
                    marketing_consent=customer.marketing_consent,
                    unconverted_currencies=sorted(totals.unconverted_currencies),
                    accounts=[_summary(a, rates) for a in accounts[cid] if a.product is not None],
                    behaviour=found.behaviour,
                    interactions=found.contacts,
                    customer_since=found.since,
                ),
                cause=(causes or {}).get(cid),
            )
            published.append(cid)
        await store.save_views(rows)
        return published

    async def _activity(
        self,
        store: ProfileStore,
        ids: Sequence[str],
        accounts: Mapping[str, Sequence[AccountState]],
        rates: Mapping[str, Decimal],
        now: datetime,
    ) -> dict[str, Activity]:
        """Behaviour windows, contacts, tags and tenure of `ids`, from their stored activity."""
        if not ids:
            return {}
        transactions = await store.transactions_since(ids, now - timedelta(days=BEHAVIOUR_DAYS))
        last_transaction = await store.last_transactions(ids)
        interactions = await store.interactions_of(ids)
        since = await store.customer_since(ids)
        found: dict[str, Activity] = {}
        for cid in ids:
            facts = [
                TransactionFact(
                    posted_at=t.posted_at,
                    direction=Direction(t.direction),
                    channel=Channel(t.channel),
                    counterparty=Counterparty(t.counterparty),
                    amount_cny=to_cny(t.amount, t.currency, rates),
                )
                for t in transactions[cid]
            ]
            seen = behaviour(facts, now).model_copy(update={"last_transaction_at": last_transaction.get(cid)})
            contacts = interactions_summary(
                InteractionFact(InteractionKind(i.kind), i.occurred_at, i.satisfaction) for i in interactions[cid]
            )
            tags = derive_tags(TagInputs(now, accounts[cid], facts, seen, since.get(cid)))
            found[cid] = Activity(seen, contacts, tags, since.get(cid))
        return found


@dataclass(frozen=True)
class Activity:
    """What a customer's transactions, interactions and accounts say beyond money."""

    behaviour: Behaviour
    contacts: Interactions
    tags: dict[str, str]
    since: date | None


#: Changes that move a customer's money figures and nothing else: behaviour windows, contacts,
#: tags and tenure come from transactions, interactions, accounts opened or closed and FX rates.
MONEY_ONLY = frozenset({"balances", "reconciliation"})


def _money_only(customer: Customer, changed: set[str], today: date) -> bool:
    """Whether the customer's stored activity still holds: only money changed, and the activity
    was derived today (so windows move at least once a business day, as the roll-forward does)."""
    return (
        changed <= MONEY_ONLY
        and customer.average_on == today
        and customer.behaviour is not None
        and customer.interactions is not None
    )


def _kept_activity(customer: Customer) -> Activity:
    """The activity derived and stored by an earlier recompute of this business day."""
    return Activity(
        Behaviour.from_stored(customer.behaviour),
        Interactions.from_stored(customer.interactions),
        dict(customer.tag_reasons),
        customer.customer_since,
    )


def stored_view(customer: Customer) -> StoredView:
    """The figures last written for a customer, to tell which a recomputation moved."""
    return StoredView(
        aum_cny=customer.aum_cny,
        aum_avg_30d_cny=customer.aum_avg_30d_cny,
        liabilities_cny=customer.liabilities_cny,
        unconverted_currencies=tuple(customer.unconverted_currencies),
        tags=tuple(customer.tags),
        behaviour=customer.behaviour,
        interactions=customer.interactions,
        erased=customer.erased_at is not None,
    )


def _moved(before: StoredView | None, row: Mapping[str, Any]) -> list[str]:
    """Which published figures differ from what was stored."""
    if before is None:
        return ["aum"]
    moved = []
    if before.aum_cny != row["aum_cny"] or before.liabilities_cny != row["liabilities_cny"]:
        moved.append("aum")
    if before.aum_avg_30d_cny != row["aum_avg_30d_cny"]:
        moved.append("aum_avg_30d")
    if list(before.unconverted_currencies) != row["unconverted_currencies"]:
        moved.append("fx_rates")
    if list(before.tags) != row["tags"]:
        moved.append("tags")
    if before.behaviour != row["behaviour"]:
        moved.append("behaviour")
    if before.interactions != row["interactions"]:
        moved.append("interactions")
    return moved


def _summary(account: AccountState, rates: Mapping[str, Any]) -> AccountSummary:
    open_ = account.status == "open"
    balance_cny = None
    if account.balance is not None and account.currency is not None:
        converted = to_cny(account.balance, account.currency, rates)
        balance_cny = None if converted is None else converted.quantize(CENT)
    assert account.product is not None
    return AccountSummary(
        source=account.source,
        account_ref=account.account_ref,
        product=Product(account.product),
        status="open" if open_ else "closed",
        currency=account.currency,
        balance=account.balance,
        balance_cny=balance_cny,
        opened_on=account.opened_on,
        closed_on=account.closed_on,
        maturity_date=account.maturity_date,
    )
