"""All profile SQL: batched reads and upserts, never a commit (the caller owns the transaction)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Product
from services.profile.domain import AccountState, Totals
from services.profile.models import Account, Customer, DailyAum, FxRate, SourceRecord

SourceRef = tuple[str, str]
T = TypeVar("T")
CUSTOMERS = Customer.metadata.tables[f"{Customer.metadata.schema}.customers"]


def new_customer_id() -> str:
    """A golden customer id: `C` and 16 hex digits, random so batches need no sequence."""
    return "C" + secrets.token_hex(8).upper()


class ProfileStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link_customers(self, refs: Iterable[SourceRef]) -> dict[SourceRef, str]:
        """The golden customer of each `(source, customer_ref)`; unknown refs get a provisional one."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        links: dict[SourceRef, str] = {}
        for chunk in _chunks(wanted, 5000):
            rows = await self.session.execute(
                select(SourceRecord.source, SourceRecord.customer_ref, SourceRecord.customer_id).where(
                    tuple_(SourceRecord.source, SourceRecord.customer_ref).in_(chunk)
                )
            )
            links.update({(r.source, r.customer_ref): r.customer_id for r in rows})
        missing = [ref for ref in wanted if ref not in links]
        if missing:
            created = {ref: new_customer_id() for ref in missing}
            inserted = await self.session.execute(
                insert(SourceRecord)
                .values([{"source": s, "customer_ref": r, "customer_id": created[(s, r)]} for s, r in missing])
                .on_conflict_do_nothing()
                .returning(SourceRecord.source, SourceRecord.customer_ref)
            )
            won = {(r.source, r.customer_ref) for r in inserted}
            if won:
                # Only the refs this transaction linked get a golden customer: no orphans.
                await self.session.execute(insert(Customer), [{"customer_id": created[ref]} for ref in sorted(won)])
            links.update({ref: created[ref] for ref in won})
            lost = [ref for ref in missing if ref not in won]
            if lost:
                # Another consumer instance linked these refs first: use its customers.
                links.update(await self.link_customers(lost))
        return links

    async def upsert_source_records(self, records: Sequence[Mapping[str, object]]) -> None:
        """Write identity fields of source records; an older record than the stored one is ignored."""
        if not records:
            return
        stmt = insert(SourceRecord).values(list(records))
        fields = [k for k in records[0] if k not in ("source", "customer_ref", "customer_id")]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SourceRecord.source, SourceRecord.customer_ref],
                set_={name: stmt.excluded[name] for name in fields},
                where=or_(SourceRecord.record_time.is_(None), SourceRecord.record_time <= stmt.excluded.record_time),
            )
        )

    async def refresh_identity(self, customer_ids: Iterable[str]) -> None:
        """Copy the displayed identity fields from the newest source record onto the customer."""
        ids = sorted(set(customer_ids))
        if not ids:
            return
        rows = await self.session.execute(
            select(SourceRecord)
            .where(SourceRecord.customer_id.in_(ids), SourceRecord.provisional.is_(False))
            .order_by(SourceRecord.customer_id, SourceRecord.record_time)
        )
        newest: dict[str, SourceRecord] = {}
        for record in rows.scalars():
            newest[record.customer_id] = record
        if not newest:
            return
        await self.session.execute(
            update(CUSTOMERS)
            .where(CUSTOMERS.c.customer_id == bindparam("b_customer_id"))
            .values(
                full_name=bindparam("b_full_name"),
                branch_id=bindparam("b_branch_id"),
                birth_date=bindparam("b_birth_date"),
                marketing_consent=bindparam("b_marketing_consent"),
                updated_at=func.now(),
            ),
            [
                {
                    "b_customer_id": customer_id,
                    "b_full_name": record.full_name,
                    "b_branch_id": record.branch_id,
                    "b_birth_date": record.birth_date,
                    "b_marketing_consent": record.marketing_consent,
                }
                for customer_id, record in newest.items()
            ],
        )

    async def load_accounts(self, keys: Iterable[SourceRef]) -> dict[SourceRef, AccountState]:
        wanted = sorted(set(keys))
        found: dict[SourceRef, AccountState] = {}
        for chunk in _chunks(wanted, 5000):
            rows = await self.session.execute(
                select(Account).where(tuple_(Account.source, Account.account_ref).in_(chunk))
            )
            for account in rows.scalars():
                found[(account.source, account.account_ref)] = _account_state(account)
        return found

    async def save_accounts(self, accounts: Sequence[AccountState], customer_of: Mapping[SourceRef, str]) -> None:
        """Upsert folded account states in one statement per chunk."""
        if not accounts:
            return
        rows = []
        for state in accounts:
            row = asdict(state)
            row["product"] = state.product.value if state.product else None
            row["customer_id"] = customer_of[(state.source, state.customer_ref)]
            rows.append(row)
        for chunk in _chunks(rows, 1000):
            stmt = insert(Account).values(chunk)
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[Account.source, Account.account_ref],
                    set_={name: stmt.excluded[name] for name in chunk[0] if name not in ("source", "account_ref")}
                    | {"updated_at": func.now()},
                )
            )

    async def accounts_of(self, customer_ids: Iterable[str]) -> dict[str, list[AccountState]]:
        ids = sorted(set(customer_ids))
        by_customer: dict[str, list[AccountState]] = {cid: [] for cid in ids}
        for chunk in _chunks(ids, 5000):
            rows = await self.session.execute(select(Account).where(Account.customer_id.in_(chunk)))
            for account in rows.scalars():
                by_customer[account.customer_id].append(_account_state(account))
        return by_customer

    async def upsert_rates(self, rates: Mapping[str, tuple[Decimal, datetime]]) -> None:
        """Keep the newest rate per currency; an older `as_of` never replaces a newer one."""
        if not rates:
            return
        stmt = insert(FxRate).values(
            [{"currency": c, "rate_to_cny": r, "as_of": at} for c, (r, at) in sorted(rates.items())]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[FxRate.currency],
                set_={"rate_to_cny": stmt.excluded.rate_to_cny, "as_of": stmt.excluded.as_of},
                where=FxRate.as_of < stmt.excluded.as_of,
            )
        )

    async def rates(self) -> dict[str, Decimal]:
        rows = await self.session.execute(select(FxRate.currency, FxRate.rate_to_cny))
        return {r.currency: r.rate_to_cny for r in rows}

    async def customers_holding(self, currencies: Iterable[str]) -> set[str]:
        rows = await self.session.execute(
            select(Account.customer_id).where(Account.currency.in_(sorted(set(currencies)))).distinct()
        )
        return set(rows.scalars())

    async def save_totals(
        self,
        totals: Mapping[str, Totals],
        averages: Mapping[str, Decimal],
        event_times: Mapping[str, datetime],
        at: datetime,
    ) -> None:
        """Store each customer's money figures in one executemany.

        `last_event_at` is the newest event time seen for the customer; a late event never
        moves it back.
        """
        if not totals:
            return
        await self.session.execute(
            update(CUSTOMERS)
            .where(CUSTOMERS.c.customer_id == bindparam("b_customer_id"))
            .values(
                aum_cny=bindparam("b_aum"),
                liabilities_cny=bindparam("b_liabilities"),
                aum_avg_30d_cny=bindparam("b_average"),
                unconverted_currencies=bindparam("b_unconverted"),
                updated_at=at,
                last_event_at=func.greatest(CUSTOMERS.c.last_event_at, bindparam("b_event_at")),
            ),
            [
                {
                    "b_customer_id": customer_id,
                    "b_aum": t.aum_cny,
                    "b_liabilities": t.liabilities_cny,
                    "b_average": averages[customer_id],
                    "b_unconverted": sorted(t.unconverted_currencies),
                    "b_event_at": event_times[customer_id],
                }
                for customer_id, t in sorted(totals.items())
            ],
        )

    async def record_daily_aum(self, values: Mapping[str, Decimal], day: date) -> None:
        if not values:
            return
        stmt = insert(DailyAum).values(
            [{"customer_id": cid, "business_date": day, "aum_cny": v} for cid, v in sorted(values.items())]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[DailyAum.customer_id, DailyAum.business_date], set_={"aum_cny": stmt.excluded.aum_cny}
            )
        )

    async def daily_history(self, customer_ids: Iterable[str], since: date) -> dict[str, list[tuple[date, Decimal]]]:
        """Each customer's daily AUM from `since`, plus the last value before it (to carry forward)."""
        ids = sorted(set(customer_ids))
        history: dict[str, list[tuple[date, Decimal]]] = {cid: [] for cid in ids}
        if not ids:
            return history
        recent = select(DailyAum).where(DailyAum.customer_id.in_(ids), DailyAum.business_date >= since)
        before = (
            select(DailyAum)
            .where(DailyAum.customer_id.in_(ids), DailyAum.business_date < since)
            .distinct(DailyAum.customer_id)
            .order_by(DailyAum.customer_id, DailyAum.business_date.desc())
        )
        for stmt in (before, recent):
            for row in (await self.session.execute(stmt)).scalars():
                history[row.customer_id].append((row.business_date, row.aum_cny))
        return history

    async def profiles(self, customer_ids: Iterable[str]) -> dict[str, CustomerFacts]:
        ids = sorted(set(customer_ids))
        facts: dict[str, CustomerFacts] = {}
        for chunk in _chunks(ids, 5000):
            rows = await self.session.execute(
                select(Customer.customer_id, Customer.branch_id, Customer.birth_date, Customer.marketing_consent).where(
                    Customer.customer_id.in_(chunk)
                )
            )
            for r in rows:
                facts[r.customer_id] = CustomerFacts(r.branch_id, r.birth_date, r.marketing_consent)
        return facts

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, following merge redirects to the survivor."""
        seen: set[str] = set()
        current = await self.session.get(Customer, customer_id)
        while current is not None and current.merged_into and current.merged_into not in seen:
            seen.add(current.customer_id)
            current = await self.session.get(Customer, current.merged_into)
        return current

    async def customer_by_ref(self, source: str, customer_ref: str) -> Customer | None:
        record = await self.session.get(SourceRecord, (source, customer_ref))
        return None if record is None else await self.customer(record.customer_id)

    async def source_records(self, customer_id: str) -> Sequence[SourceRecord]:
        rows = await self.session.execute(
            select(SourceRecord).where(SourceRecord.customer_id == customer_id).order_by(SourceRecord.source)
        )
        return rows.scalars().all()

    async def accounts(self, customer_id: str) -> Sequence[Account]:
        rows = await self.session.execute(
            select(Account).where(Account.customer_id == customer_id).order_by(Account.source, Account.account_ref)
        )
        return rows.scalars().all()


def _account_state(account: Account) -> AccountState:
    return AccountState(
        source=account.source,
        account_ref=account.account_ref,
        customer_ref=account.customer_ref,
        product=Product(account.product) if account.product else None,
        currency=account.currency,
        status=account.status,
        opened_on=account.opened_on,
        closed_on=account.closed_on,
        maturity_date=account.maturity_date,
        interest_rate=account.interest_rate,
        balance=account.balance,
        balance_version=account.balance_version,
        balance_as_of=account.balance_as_of,
    )


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CustomerFacts:
    """The identity facts a profile event carries, read in one query for a batch."""

    def __init__(self, branch_id: str | None, birth_date: date | None, marketing_consent: bool | None) -> None:
        self.branch_id = branch_id
        self.birth_date = birth_date
        self.marketing_consent = marketing_consent
