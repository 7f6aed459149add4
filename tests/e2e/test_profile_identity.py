"""Identity resolution through the broker: merges, merge guards, split and erasure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from contracts import (
    BANK_ACCOUNTS,
    BANK_CUSTOMERS,
    BANK_INTERACTIONS,
    C360_PROFILES,
    CustomerMerged,
    InteractionKind,
    Product,
)
from runtime.db import create_engine
from services.profile.identity import resident_check_character
from tests.builders import (
    account_balance,
    account_opened,
    customer_upserted,
    interaction_recorded,
    unique_id_number,
    unique_ref,
)
from tests.e2e.conftest import Platform
from tests.e2e.flows import outbound, poll, produce

pytestmark = pytest.mark.e2e


def profile(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=platform.processes.url("profile"), timeout=5)


def by_ref(client: httpx.Client, source: str, ref: str) -> httpx.Response:
    return client.get(f"/internal/customers/by-ref/{source}/{ref}")


def first_generation(number18: str) -> str:
    """The 15-digit form of an 18-digit resident id (no century, no check character)."""
    return number18[:6] + number18[8:17]


async def test_two_sources_with_one_person_merge_and_the_merged_id_redirects(platform: Platform, topics: str) -> None:
    core, cards = unique_ref("CORE"), unique_ref("CARD")
    number = resident_id()
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(core, id_number=number, marketing_consent=False)),
            (BANK_ACCOUNTS, account_opened(core, f"{core}-TD")),
            (BANK_ACCOUNTS, account_balance(core, f"{core}-TD", "120000.00")),
        ],
    )
    with profile(platform) as client:
        first = poll(
            lambda: by_ref(client, "core-deposits", core),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "120000.00",
        )
        # The card system writes the old 15-digit form with spaces and full-width digits, and knows
        # the person longer: its consent statement is newer and wins.
        # Its account comes first: a customer of its own until the card holder's record names them.
        written = " ".join(first_generation(number)[i : i + 5] for i in range(0, 15, 5)).translate(_FULL_WIDTH)
        await produce(
            topics,
            [
                (BANK_ACCOUNTS, account_opened(cards, f"{cards}-CC", product=Product.CREDIT_CARD, source="cards")),
                (BANK_ACCOUNTS, account_balance(cards, f"{cards}-CC", "3000.00", source="cards")),
            ],
        )
        provisional = poll(
            lambda: by_ref(client, "cards", cards),
            lambda r: r.status_code == 200 and r.json()["liabilities_cny"] == "3000.00",
        )
        assert provisional["customer_id"] != first["customer_id"]
        await produce(
            topics,
            [(BANK_CUSTOMERS, customer_upserted(cards, id_number=written, source="cards", marketing_consent=True))],
        )
        merged = poll(
            lambda: by_ref(client, "cards", cards),
            lambda r: r.status_code == 200 and len(r.json()["source_records"]) == 2,
        )
        assert merged["customer_id"] == first["customer_id"]  # the older customer survives
        assert merged["marketing_consent"] is True
        assert sorted(a["account_ref"] for a in merged["accounts"]) == sorted([f"{core}-TD", f"{cards}-CC"])
        assert (merged["aum_cny"], merged["liabilities_cny"]) == ("120000.00", "3000.00")
        assert merged["merged_ids"] == [provisional["customer_id"]]
        absorbed = provisional["customer_id"]
        redirected = client.get(f"/internal/customers/{absorbed}").json()
        assert redirected["customer_id"] == first["customer_id"]
    events = await outbound(topics, C360_PROFILES, first["customer_id"], expected=3)
    merges = [e for e in events if isinstance(e, CustomerMerged)]
    assert [(m.surviving_customer_id, m.merged_customer_id) for m in merges] == [(first["customer_id"], absorbed)]


async def test_records_of_one_person_from_several_sources_find_one_customer_without_a_merge(
    platform: Platform, topics: str
) -> None:
    number, refs = resident_id(), {"core-deposits": unique_ref("CORE"), "cards": unique_ref("CARD")}
    wealth = unique_ref("WLTH")
    await produce(
        topics,
        [(BANK_CUSTOMERS, customer_upserted(ref, id_number=number, source=source)) for source, ref in refs.items()],
    )
    with profile(platform) as client:
        found = poll(
            lambda: by_ref(client, "cards", refs["cards"]),
            lambda r: r.status_code == 200 and len(r.json()["source_records"]) == 2,
        )
        # A third source later, in lower case: it joins the customer that carries the identity.
        await produce(
            topics,
            [
                (BANK_CUSTOMERS, customer_upserted(wealth, id_number=number.lower(), source="wealth")),
                (BANK_ACCOUNTS, account_opened(wealth, f"{wealth}-F", product=Product.FUND, source="wealth")),
                (BANK_ACCOUNTS, account_balance(wealth, f"{wealth}-F", "80000.00", source="wealth")),
            ],
        )
        joined = poll(
            lambda: by_ref(client, "wealth", wealth),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "80000.00",
        )
        assert joined["customer_id"] == found["customer_id"]
        assert len(joined["source_records"]) == 3
        assert joined["merged_ids"] == []
    events = await outbound(topics, C360_PROFILES, found["customer_id"], expected=2)
    assert [e for e in events if isinstance(e, CustomerMerged)] == []


async def test_a_blocklisted_identity_number_merges_nobody_and_the_refusal_is_recorded(
    platform: Platform, topics: str
) -> None:
    first, second = unique_ref("JUNK"), unique_ref("JUNK")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(first, id_number="000000000000000000", full_name="Li Na")),
            (
                BANK_CUSTOMERS,
                customer_upserted(second, id_number="0000 0000 0000 0000 00", full_name="Zhao Lei", source="cards"),
            ),
        ],
    )
    with profile(platform) as client:
        one = poll(lambda: by_ref(client, "core-deposits", first), lambda r: r.status_code == 200)
        two = poll(lambda: by_ref(client, "cards", second), lambda r: r.status_code == 200)
        assert one["customer_id"] != two["customer_id"]
        assert (one["full_name"], two["full_name"]) == ("Li Na", "Zhao Lei")

        def refusals() -> list[dict[str, str]]:
            # Recorded on the customer whose record arrived second: either, when they come at once.
            items = [
                item
                for cid in (one["customer_id"], two["customer_id"])
                for item in client.get(f"/internal/customers/{cid}/timeline").json()["items"]
            ]
            return [item for item in items if item["kind"] == "refusal"]

        for _ in range(150):  # up to 30 s
            if found := refusals():
                break
            await asyncio.sleep(0.2)
    assert found, "no refused merge recorded on either customer"
    assert all("repeats one character" in item["detail"] for item in found)


async def test_a_split_restores_two_customers_with_their_accounts_and_does_not_re_merge(
    platform: Platform, topics: str
) -> None:
    mine, theirs = unique_ref("MINE"), unique_ref("THEIRS")
    number = unique_id_number()  # a data-entry error gave two people one number
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(mine, id_number=number, full_name="Chen Jie")),
            (BANK_ACCOUNTS, account_opened(mine, f"{mine}-A")),
            (BANK_ACCOUNTS, account_balance(mine, f"{mine}-A", "500.00")),
        ],
    )
    with profile(platform) as client:
        poll(
            lambda: by_ref(client, "core-deposits", mine),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "500.00",
        )
        await produce(
            topics,
            [
                (BANK_CUSTOMERS, customer_upserted(theirs, id_number=number, full_name="Chen Jia", source="wealth")),
                (BANK_ACCOUNTS, account_opened(theirs, f"{theirs}-W", source="wealth")),
                (BANK_ACCOUNTS, account_balance(theirs, f"{theirs}-W", "80000.00", source="wealth")),
            ],
        )
        merged = poll(
            lambda: by_ref(client, "wealth", theirs),
            lambda r: r.status_code == 200 and r.json()["aum_cny"] == "80500.00",
        )
        cid = merged["customer_id"]
        response = client.post(
            f"/internal/customers/{cid}/split",
            json={
                "source_records": [{"source": "wealth", "customer_ref": theirs}],
                "reason": "two people share a mistyped identity number",
                "actor": "admin-1",
            },
        )
        assert response.status_code == 201, response.text
        new_id = response.json()["new_customer_id"]
        kept = client.get(f"/internal/customers/{cid}").json()
        split = client.get(f"/internal/customers/{new_id}").json()
        assert [a["account_ref"] for a in kept["accounts"]] == [f"{mine}-A"]
        assert [a["account_ref"] for a in split["accounts"]] == [f"{theirs}-W"]
        assert (kept["aum_cny"], split["aum_cny"]) == ("500.00", "80000.00")
        assert (kept["full_name"], split["full_name"]) == ("Chen Jie", "Chen Jia")
        assert split["source_records"][0]["split_guarded"] is True

        # The next records of both, with the same number, leave them apart.
        await produce(
            topics,
            [
                (BANK_CUSTOMERS, customer_upserted(theirs, id_number=number, full_name="Chen Jia", source="wealth")),
                (BANK_CUSTOMERS, customer_upserted(mine, id_number=number, full_name="Chen Jie")),
                (BANK_ACCOUNTS, account_balance(theirs, f"{theirs}-W", "81000.00", version=2, source="wealth")),
            ],
        )
        poll(lambda: by_ref(client, "wealth", theirs), lambda r: r.json()["aum_cny"] == "81000.00")
        assert by_ref(client, "core-deposits", mine).json()["customer_id"] == cid
        assert by_ref(client, "wealth", theirs).json()["customer_id"] == new_id

        # Splitting off every record, or records of someone else, is refused.
        everything = client.post(
            f"/internal/customers/{new_id}/split",
            json={"source_records": [{"source": "wealth", "customer_ref": theirs}], "reason": "x", "actor": "a"},
        )
        assert everything.status_code == 422
        foreign = client.post(
            f"/internal/customers/{cid}/split",
            json={"source_records": [{"source": "wealth", "customer_ref": theirs}], "reason": "x", "actor": "a"},
        )
        assert foreign.status_code == 422
        assert foreign.headers["content-type"].startswith("application/problem+json")


async def test_an_erased_customer_has_no_personal_data_left_in_the_profile_schema(
    platform: Platform, topics: str
) -> None:
    ref = unique_ref("ERASE")
    number = unique_id_number()
    born = datetime(1980, 5, 17, tzinfo=UTC).date()
    await produce(
        topics,
        [
            (
                BANK_CUSTOMERS,
                customer_upserted(ref, id_number=number, full_name="Sun Li", email="sun@example.cn", birth_date=born),
            ),
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-E")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-E", "4200.00")),
            (BANK_INTERACTIONS, interaction_recorded(ref, InteractionKind.COMPLAINT, note="Sun Li called about fees")),
        ],
    )
    with profile(platform) as client:
        view = poll(
            lambda: by_ref(client, "core-deposits", ref),
            lambda r: (
                r.status_code == 200
                and r.json()["aum_cny"] == "4200.00"
                and (r.json()["interactions"] or {}).get("open_complaints") == 1
            ),
        )
        cid = view["customer_id"]
        erased = client.delete(f"/internal/customers/{cid}", params={"actor": "dpo"})
        assert erased.status_code == 200, erased.text
        # The sources keep sending; nothing personal is stored again, an interaction's note neither.
        later = datetime.now(UTC) + timedelta(seconds=1)
        await produce(
            topics,
            [
                (BANK_CUSTOMERS, customer_upserted(ref, id_number=number, full_name="Sun Li", at=later)),
                (
                    BANK_INTERACTIONS,
                    interaction_recorded(ref, InteractionKind.COMPLAINT, note="Sun Li again", occurred_at=later),
                ),
            ],
        )
        after = poll(
            lambda: by_ref(client, "core-deposits", ref),
            lambda r: (
                r.json()["source_records"][0]["record_time"] is not None
                and datetime.fromisoformat(r.json()["source_records"][0]["record_time"]) >= later
                and (r.json()["interactions"] or {}).get("open_complaints") == 2
            ),
        )
    assert after["aum_cny"] == "4200.00"  # anonymous figures stay
    assert after["erased_at"] is not None
    engine = create_engine(platform.database_url)
    try:
        async with engine.connect() as conn:
            customer = (
                await conn.execute(
                    text(
                        "SELECT full_name, birth_date, marketing_consent FROM profile.customers WHERE customer_id = :c"
                    ),
                    {"c": cid},
                )
            ).one()
            records = (
                await conn.execute(
                    text(
                        "SELECT full_name, id_number_hash, id_number_masked, birth_date, gender, phone, email "
                        "FROM profile.source_records WHERE customer_id = :c"
                    ),
                    {"c": cid},
                )
            ).all()
            notes = (
                await conn.execute(text("SELECT note FROM profile.interactions WHERE customer_id = :c"), {"c": cid})
            ).all()
            # Nothing anywhere in the schema still spells the name or the e-mail.
            leaks = await conn.scalar(
                text(
                    "SELECT count(*) FROM profile.source_records s JOIN profile.customers c USING (customer_id) "
                    "WHERE c.customer_id = :c AND (s::text ILIKE '%Sun Li%' OR s::text ILIKE '%sun@example%' "
                    "OR c::text ILIKE '%Sun Li%')"
                ),
                {"c": cid},
            )
    finally:
        await engine.dispose()
    assert tuple(customer) == (None, None, None)
    assert records
    assert all(value is None for row in records for value in row)
    assert len(notes) == 2
    assert all(row.note is None for row in notes)
    assert leaks == 0


_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")  # noqa: RUF001 full-width digits are the point


def resident_id() -> str:
    """A valid 18-digit resident id of someone born in the 1900s, unique to the test."""
    first17 = "4401" + unique_id_number()[4:6] + "19" + unique_id_number()[8:17]
    return first17 + resident_check_character(first17)
