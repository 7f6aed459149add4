"""What each consumed batch does to the profile.

A batch is folded in memory and written with a few batched statements, in this order:
identity (source records, then matching and merges), FX rates, accounts with their daily
balance history and snapshot reconciliation, transactions, interactions. Every customer whose
view changed is then recomputed once and gets exactly one `c360.profile.updated.v1` for the
batch; the sources' freshness is written last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from contracts import (
    AccountBalance,
    AccountClosed,
    AccountOpened,
    AccountSnapshot,
    CustomerMerged,
    CustomerUpserted,
    FxRate,
    InteractionRecorded,
    TransactionPosted,
)
from runtime.consumer import BatchContext, ConsumedEvent
from services.profile.domain import AccountState, apply_account_event, apply_snapshot, snapshot_difference
from services.profile.identity import IdentityProtector, blocked_reason, canonical_id_number
from services.profile.models import Interaction, Transaction
from services.profile.settings import ProfileConfig
from services.profile.store import PERSONAL_FIELDS, MatchCandidate, ProfileStore, SourceRef, new_customer_id
from services.profile.view import ViewBuilder

ACTOR = "profile"
AccountEvent = AccountOpened | AccountBalance | AccountClosed | AccountSnapshot


@dataclass
class Changes:
    """Which customers a batch changed, what changed, and the newest event that did it."""

    what: dict[str, set[str]] = field(default_factory=dict)
    causes: dict[str, ConsumedEvent] = field(default_factory=dict)
    event_times: dict[str, datetime] = field(default_factory=dict)

    def touch(self, customer_id: str, what: str, event: ConsumedEvent) -> None:
        self.what.setdefault(customer_id, set()).add(what)
        self.causes[customer_id] = event
        seen = self.event_times.get(customer_id)
        self.event_times[customer_id] = event.envelope.time if seen is None else max(seen, event.envelope.time)

    def redirect(self, absorbed: str, survivor: str) -> None:
        """Fold what was recorded for a merged-away customer into its survivor."""
        if absorbed in self.what:
            self.what.setdefault(survivor, set()).update(self.what.pop(absorbed))
            self.causes.setdefault(survivor, self.causes.pop(absorbed))
            at = self.event_times.pop(absorbed)
            self.event_times[survivor] = max(self.event_times.get(survivor, at), at)
        self.causes.pop(absorbed, None)


def _newest_upserts(events: Sequence[ConsumedEvent]) -> dict[SourceRef, ConsumedEvent]:
    """The newest customer record of each `(source, customer_ref)` in the batch."""
    newest: dict[SourceRef, ConsumedEvent] = {}
    for event in events:
        if isinstance(event.data, CustomerUpserted):
            ref = (event.envelope.source, event.data.customer_ref)
            if ref not in newest or newest[ref].envelope.time <= event.envelope.time:
                newest[ref] = event
    return newest


def _connected(sets: Sequence[set[str]]) -> list[set[str]]:
    """The connected groups of ids: sets sharing an id end in one group."""
    groups: list[set[str]] = []
    for ids in sets:
        joined = set(ids)
        rest = []
        for group in groups:
            if group & joined:
                joined |= group
            else:
                rest.append(group)
        groups = [*rest, joined]
    return groups


class ProfileHandler:
    """Applies inbound bank events to the customer view."""

    def __init__(self, identity: IdentityProtector, config: ProfileConfig, views: ViewBuilder) -> None:
        self.identity = identity
        self.config = config
        self.views = views

    async def __call__(self, ctx: BatchContext, events: Sequence[ConsumedEvent]) -> None:
        store = ProfileStore(ctx.session)
        changes = Changes()
        naming = {(e.envelope.source, e.data.customer_ref): e for e in events if not isinstance(e.data, FxRate)}  # type: ignore[attr-defined]
        newest = _newest_upserts(events)
        identities = self._identities(newest)
        created: set[str] = set()
        links = await store.hold_links(naming, await self._identify(store, identities), created=created)
        # A customer is published in the batch that creates it, even one an event only names (a
        # balance naming another customer_ref than the account's owner): never later, by the
        # daily roll-forward, as if it had appeared out of nowhere.
        for ref, event in naming.items():
            if links[ref] in created:
                changes.touch(links[ref], "identity", event)
        await self._apply_identity(ctx, store, newest, identities, links, changes)
        await self._apply_rates(store, events, changes)
        await self._apply_accounts(store, events, links, changes)
        await self._apply_activity(store, events, links, changes)
        if changes.what:
            await self.views.recompute(ctx, store, changes.what, causes=changes.causes, event_times=changes.event_times)
        # Last: every batch updates its sources' rows, so the row locks are held from here to the
        # commit, and a batch of another instance with the same source waits until then.
        await store.record_freshness(_freshness(events), ctx.clock.now())

    # -- identity -------------------------------------------------------------------------------

    def _identities(self, newest: dict[SourceRef, ConsumedEvent]) -> dict[SourceRef, tuple[str, str | None]]:
        """Each customer record's identity hash, and why its number may merge nobody (None: it may)."""
        found: dict[SourceRef, tuple[str, str | None]] = {}
        for ref, event in newest.items():
            data = event.data
            assert isinstance(data, CustomerUpserted)
            canonical = canonical_id_number(data.id_type, data.id_number)
            found[ref] = (
                self.identity.hash(data.id_type.value, data.id_number),
                blocked_reason(canonical, self.config.identity_blocklist),
            )
        return found

    async def _identify(
        self, store: ProfileStore, identities: dict[SourceRef, tuple[str, str | None]]
    ) -> dict[SourceRef, str]:
        """Where a record new to us should be linked: to the customer that already carries its
        identity (the oldest, as a merge would choose), or with the batch's other new records of
        the same identity to one new customer, so that a person known to several sources is
        found, not created and merged. Blocked numbers and identities at the record limit are left
        to the merge guards. Takes the identity locks, so that what it reads stays true."""
        matchable: dict[str, list[SourceRef]] = {}
        for ref, (hashed, blocked) in identities.items():
            if blocked is None:
                matchable.setdefault(hashed, []).append(ref)
        # Matching on a hash is serialised across partitions and instances: the lock is taken before
        # the records are read and written, so of two records of one person arriving at once the
        # second sees the first (and a refused merge is recorded by whichever comes second).
        await store.lock_identities(hashed for hashed, _ in identities.values())
        existing = await store.match_candidates_of(matchable)
        prefer: dict[SourceRef, str] = {}
        for hashed, refs in sorted(matchable.items()):
            candidates = existing[hashed]
            if len(candidates) + len(refs) > self.config.max_records_per_identity:
                continue
            target = (
                min(candidates, key=lambda c: (c.created_at, c.customer_id)).customer_id
                if candidates
                else new_customer_id()
            )
            prefer.update(dict.fromkeys(refs, target))
        return prefer

    async def _apply_identity(
        self,
        ctx: BatchContext,
        store: ProfileStore,
        newest: dict[SourceRef, ConsumedEvent],
        identities: dict[SourceRef, tuple[str, str | None]],
        links: dict[SourceRef, str],
        changes: Changes,
    ) -> None:
        if not newest:
            return
        erased = await store.erased_customers(links[ref] for ref in newest)
        rows = {
            ref: self._source_record(ref, links[ref], event, identities[ref][0], links[ref] in erased)
            for ref, event in newest.items()
        }
        matchable: dict[str, ConsumedEvent] = {}
        refused: dict[str, tuple[str, ConsumedEvent]] = {}
        for ref, event in newest.items():
            hashed = rows[ref]["id_number_hash"]
            if not isinstance(hashed, str):
                continue  # erased: the record keeps no identity to match on
            reason = identities[ref][1]
            if reason is None:
                matchable[hashed] = event
            else:
                refused[hashed] = (reason, event)
        await store.upsert_source_records(list(rows.values()))
        for ref, event in newest.items():
            changes.touch(links[ref], "identity", event)
        # Most identities have one record: find the ones that could merge in one query.
        shared = await store.match_candidates_of([*matchable, *refused])
        merging = {h: e for h, e in matchable.items() if len({c.customer_id for c in shared[h]}) > 1}
        await self._merge(ctx, store, merging, shared, links, changes)
        for hashed, (reason, event) in sorted(refused.items()):
            candidates = shared[hashed]
            if len({c.customer_id for c in candidates}) > 1:
                await self._refuse(store, candidates, reason, links[_ref_of(event)], ctx.clock.now())
        await store.refresh_identity(changes.what)

    def _source_record(
        self, ref: SourceRef, customer_id: str, event: ConsumedEvent, hashed: str, erased: bool
    ) -> dict[str, object]:
        data = event.data
        assert isinstance(data, CustomerUpserted)
        row: dict[str, object] = {
            "source": ref[0],
            "customer_ref": ref[1],
            "customer_id": customer_id,
            "provisional": False,
            "full_name": data.full_name,
            "id_type": data.id_type.value,
            "id_number_hash": hashed,
            "id_number_masked": self.identity.mask(data.id_number),
            "birth_date": data.birth_date,
            "gender": data.gender,
            "phone": data.phone,
            "email": data.email,
            "branch_id": data.branch_id,
            "marketing_consent": data.marketing_consent,
            "onboarded_on": data.onboarded_on,
            "record_time": event.envelope.time,
        }
        if erased:
            # The customer asked to be forgotten: the source keeps sending, we keep nothing personal.
            row.update({name: None for name in PERSONAL_FIELDS} | {"marketing_consent": None})
        return row

    async def _merge(
        self,
        ctx: BatchContext,
        store: ProfileStore,
        merging: dict[str, ConsumedEvent],
        shared: dict[str, list[MatchCandidate]],
        links: dict[SourceRef, str],
        changes: Changes,
    ) -> None:
        """Merge the golden customers that carry each identity hash into the oldest of them, for
        every hash of the batch at once. Customers linked through two hashes end in one survivor;
        an identity with more records than the limit is refused instead."""
        now = ctx.clock.now()
        limit = self.config.max_records_per_identity
        plans: list[tuple[ConsumedEvent, list[MatchCandidate]]] = []
        for hashed, event in sorted(merging.items()):
            candidates = shared[hashed]
            if len(candidates) > limit:
                reason = (
                    f"the identity number is shared by {len(candidates)} source records, more than the limit of {limit}"
                )
                await self._refuse(store, candidates, reason, links[_ref_of(event)], now)
            else:
                plans.append((event, candidates))
        if not plans:
            return
        created = {c.customer_id: c.created_at for _, candidates in plans for c in candidates}
        groups = _connected([{c.customer_id for c in candidates} for _, candidates in plans])
        survivor_of = {cid: min(group, key=lambda c: (created[c], c)) for group in groups for cid in group}
        absorbed = {cid: survivor for cid, survivor in survivor_of.items() if cid != survivor}
        await store.merge_many(absorbed, now)
        recorded: set[str] = set()
        history: list[dict[str, object]] = []
        for event, candidates in plans:
            data = event.data
            assert isinstance(data, CustomerUpserted)
            reason = f"same {data.id_type.value} document ({self.identity.mask(data.id_number)})"
            merged = sorted({c.customer_id for c in candidates} & set(absorbed) - recorded)
            recorded.update(merged)
            history.extend(
                {
                    "kind": "merge",
                    "customer_id": absorbed[cid],
                    "other_customer_id": cid,
                    "source_records": [[c.source, c.customer_ref] for c in candidates if c.customer_id == cid],
                    "reason": reason,
                    "actor": ACTOR,
                    "at": now,
                }
                for cid in merged
            )
            for cid in merged:
                survivor = absorbed[cid]
                ctx.publish(
                    CustomerMerged(surviving_customer_id=survivor, merged_customer_id=cid, reason=reason), cause=event
                )
                changes.redirect(cid, survivor)
                for ref, linked in links.items():
                    if linked == cid:
                        links[ref] = survivor
                changes.touch(survivor, "merge", event)
        await store.record_identity_changes(history)

    async def _refuse(
        self, store: ProfileStore, candidates: Sequence[MatchCandidate], reason: str, customer_id: str, at: datetime
    ) -> None:
        """Keep a refused merge with its reason, on the customer whose record would have merged."""
        await store.record_identity_changes(
            [
                {
                    "kind": "refusal",
                    "customer_id": customer_id,
                    "other_customer_id": None,
                    "source_records": [[c.source, c.customer_ref] for c in candidates],
                    "reason": f"not merged: {reason}",
                    "actor": ACTOR,
                    "at": at,
                }
            ]
        )

    # -- money ----------------------------------------------------------------------------------

    async def _apply_rates(self, store: ProfileStore, events: Sequence[ConsumedEvent], changes: Changes) -> None:
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
                changes.touch(customer_id, "fx_rates", last[currency])

    async def _apply_accounts(
        self, store: ProfileStore, events: Sequence[ConsumedEvent], links: dict[SourceRef, str], changes: Changes
    ) -> None:
        account_events = [e for e in events if isinstance(e.data, AccountEvent)]
        if not account_events:
            return
        states = await store.load_accounts((e.envelope.source, e.data.account_ref) for e in account_events)  # type: ignore[attr-defined]
        # An account belongs to the customer it was opened for, even when a later event names
        # another customer_ref: make sure those owners are linked too.
        owners = {(state.source, state.customer_ref) for state in states.values()} - links.keys()
        links.update(await store.hold_links(owners))
        dirty: dict[SourceRef, AccountState] = {}
        days: dict[tuple[str, str, date], tuple[int, Decimal, ConsumedEvent]] = {}
        snapshots: list[tuple[ConsumedEvent, AccountSnapshot]] = []
        for event in account_events:
            data = event.data
            assert isinstance(data, AccountEvent)
            source = event.envelope.source
            key = (source, data.account_ref)
            before = states.get(key)
            if isinstance(data, AccountSnapshot):
                balance_day = self._day(before.balance_as_of) if before and before.balance_as_of else None
                after = apply_snapshot(before, source, data, balance_day)
                snapshots.append((event, data))
            else:
                as_of_day = self._day(data.as_of) if isinstance(data, AccountBalance) else None
                after = apply_account_event(before, source, data, as_of_day)
                if isinstance(data, AccountBalance) and as_of_day is not None:
                    day_key = (source, data.account_ref, as_of_day)
                    if day_key not in days or days[day_key][0] < data.version:
                        days[day_key] = (data.version, data.balance, event)
            if after != before:
                states[key] = dirty[key] = after
                what = "balances" if isinstance(data, AccountBalance | AccountSnapshot) else "accounts"
                changes.touch(links[(source, after.customer_ref)], what, event)
        await store.save_accounts(list(dirty.values()), links)
        history_changed = await store.record_daily_balances(
            [
                {"source": s, "account_ref": a, "business_date": d, "balance": balance, "version": version}
                for (s, a, d), (version, balance, _) in sorted(days.items(), key=lambda item: str(item[0]))
            ]
        )
        for (s, a, _), (_, _, event) in days.items():
            if (s, a) in history_changed:
                changes.touch(links[(s, states[(s, a)].customer_ref)], "balances", event)
        if snapshots:
            await self._reconcile(store, snapshots, states, links, changes)

    async def _reconcile(
        self,
        store: ProfileStore,
        snapshots: Sequence[tuple[ConsumedEvent, AccountSnapshot]],
        states: dict[SourceRef, AccountState],
        links: dict[SourceRef, str],
        changes: Changes,
    ) -> None:
        """Compare each end-of-day snapshot with the running balance of its day, then settle the day."""
        last = {(e.envelope.source, s.account_ref, s.business_date): (e, s) for e, s in snapshots}
        running = await store.running_balances(sorted(last))
        differences = []
        for key, (event, snapshot) in sorted(last.items(), key=lambda item: str(item[0])):
            source, account_ref, day = key
            owner = links[(source, states[(source, account_ref)].customer_ref)]
            if snapshot_difference(running.get(key), snapshot.balance) is not None:
                differences.append(
                    {
                        "source": source,
                        "account_ref": account_ref,
                        "customer_id": owner,
                        "business_date": day,
                        "currency": snapshot.currency,
                        "expected": snapshot.balance,
                        "found": running[key],
                        "detected_at": event.envelope.time,
                    }
                )
                changes.touch(owner, "reconciliation", event)
        await store.record_differences(differences)
        await store.settle_days(
            [
                {
                    "source": s,
                    "account_ref": a,
                    "business_date": d,
                    "balance": snap.balance,
                    "version": 0,
                    "from_snapshot": True,
                }
                for (s, a, d), (_, snap) in sorted(last.items(), key=lambda item: str(item[0]))
            ]
        )

    def _day(self, at: datetime) -> date:
        return self.views.business_day(at)

    # -- activity -------------------------------------------------------------------------------

    async def _apply_activity(
        self,
        store: ProfileStore,
        events: Sequence[ConsumedEvent],
        links: dict[SourceRef, str],
        changes: Changes,
    ) -> None:
        """Keep transactions and interactions (once each) for behaviour windows and the timeline;
        an erased customer's interactions without their notes."""
        transactions: dict[SourceRef, tuple[dict[str, object], ConsumedEvent]] = {}
        interactions: dict[SourceRef, tuple[dict[str, object], ConsumedEvent]] = {}
        for event in events:
            data = event.data
            source = event.envelope.source
            if isinstance(data, TransactionPosted):
                row = data.model_dump(mode="python") | {"source": source}
                row["customer_id"] = links[(source, data.customer_ref)]
                for name in ("direction", "channel", "counterparty"):
                    row[name] = str(row[name])
                transactions[(source, data.transaction_ref)] = (row, event)
            elif isinstance(data, InteractionRecorded):
                row = data.model_dump(mode="python") | {"source": source}
                row["customer_id"] = links[(source, data.customer_ref)]
                row["kind"] = str(row["kind"])
                interactions[(source, data.interaction_ref)] = (row, event)
        if interactions:  # asked only then: a round trip fewer for a batch without any
            erased = await store.erased_customers(str(row["customer_id"]) for row, _ in interactions.values())
            for row, _ in interactions.values():
                if row["customer_id"] in erased:
                    row["note"] = None
        for found, what in ((transactions, "transactions"), (interactions, "interactions")):
            if not found:
                continue
            table = Transaction if what == "transactions" else Interaction
            new = await store.insert_new(table, [row for row, _ in found.values()])
            for key in sorted(new):
                row, event = found[key]
                changes.touch(str(row["customer_id"]), what, event)


def _ref_of(event: ConsumedEvent) -> SourceRef:
    data = event.data
    assert isinstance(data, CustomerUpserted)
    return (event.envelope.source, data.customer_ref)


def _freshness(events: Sequence[ConsumedEvent]) -> dict[str, tuple[datetime, int]]:
    seen: dict[str, tuple[datetime, int]] = {}
    for event in events:
        source, at = event.envelope.source, event.envelope.time
        newest, count = seen.get(source, (at, 0))
        seen[source] = (max(newest, at), count + 1)
    return seen
