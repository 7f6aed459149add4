"""Profile repository behaviour that needs real PostgreSQL concurrency."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from runtime.db import create_engine, session_factory
from services.profile.store import ProfileStore
from tests.builders import unique_ref

# A merged customer keeps no source records of its own: it is a redirect, not an orphan.
ORPHANS = (
    "SELECT count(*) FROM profile.customers c WHERE c.merged_into IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM profile.source_records s WHERE s.customer_id = c.customer_id)"
)


async def test_two_instances_linking_the_same_ref_agree_and_leave_no_orphan_customer(migrated_database: str) -> None:
    engine = create_engine(migrated_database)
    sessions = session_factory(engine)
    ref = ("core-deposits", unique_ref("RACE"))
    try:
        async with sessions() as first, sessions() as second:
            await first.begin()
            await second.begin()
            first_links = await ProfileStore(first).link_customers([ref])
            # The second instance blocks on the first one's uncommitted source record.
            racing = asyncio.create_task(ProfileStore(second).link_customers([ref]))
            await asyncio.sleep(0.5)
            assert not racing.done()
            await first.commit()
            second_links = await asyncio.wait_for(racing, 10)
            await second.commit()
        assert second_links == first_links
        async with engine.connect() as conn:
            assert await conn.scalar(text(ORPHANS)) == 0
    finally:
        await engine.dispose()
