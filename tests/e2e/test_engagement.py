"""Engagement through the broker and its internal API: assignment, worklists, the task lifecycle,
suppressions and a roster change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, BANK_INTERACTIONS, InteractionKind
from tests.builders import account_balance, account_opened, customer_upserted, interaction_recorded, unique_ref
from tests.e2e.conftest import Platform
from tests.e2e.flows import poll, produce

pytestmark = pytest.mark.e2e


async def test_an_rm_works_a_vip_customers_tasks_and_leaving_sends_them_to_the_branch_queue(
    platform: Platform, topics: str
) -> None:
    branch, rm, ref = unique_ref("BR"), unique_ref("RM"), unique_ref("VIP")
    with httpx.Client(base_url=platform.processes.url("engagement"), timeout=5) as api:
        manager = {"name": "Lin Fang", "grade": "wealth_manager", "branch_id": branch, "capacity": 100}
        assert api.put(f"/internal/managers/{rm}", json=manager).status_code == 200
        await produce(
            topics,
            [
                (BANK_CUSTOMERS, customer_upserted(ref, branch_id=branch)),
                (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
                (
                    BANK_ACCOUNTS,
                    account_balance(ref, f"{ref}-TD", "420000.00", as_of=datetime.now(UTC) - timedelta(days=40)),
                ),
                (BANK_INTERACTIONS, interaction_recorded(ref, InteractionKind.COMPLAINT, note="fees")),
            ],
        )
        worklist = poll(
            lambda: api.get("/internal/tasks", params={"rm_id": rm}),
            lambda r: {"welcome", "service_recovery"} <= {t["action"] for t in r.json()["items"]},
        )
        tasks = {t["action"]: t for t in worklist["items"]}
        recovery, welcome = tasks["service_recovery"], tasks["welcome"]
        assert [t["action"] for t in worklist["items"]][:2] == ["service_recovery", "welcome"]  # soonest due first
        assert (recovery["priority"], recovery["status"], recovery["overdue"]) == (95, "open", False)
        cid = recovery["customer_id"]
        assert api.get(f"/internal/managers/{rm}").json()["load"] == 1

        # The lifecycle: in progress, then done with an outcome; nothing after done.
        path = f"/internal/tasks/{recovery['task_id']}"
        assert api.patch(path, json={"status": "in_progress"}).json()["status"] == "in_progress"
        missing = api.patch(path, json={"status": "done"})
        assert missing.status_code == 422
        assert missing.headers["content-type"].startswith("application/problem+json")
        done = api.patch(path, json={"status": "done", "outcome": "reached"}).json()
        assert (done["status"], done["outcome"]) == ("done", "reached")
        assert done["closed_at"] is not None
        again = api.patch(path, json={"status": "in_progress"})
        assert again.status_code == 409
        customer = api.get(f"/internal/customers/{cid}").json()
        assert customer["rm_id"] == rm
        assert customer["last_contact_at"] is not None
        assert [t["action"] for t in customer["open_tasks"]].count("welcome") == 1

        # Why not more? Every decision not to create a task is on record.
        suppressions = api.get(f"/internal/customers/{cid}/suppressions").json()
        assert all(
            s["reason"] and s["code"] in {"open_task", "cooldown", "no_consent", "weekly_cap"} for s in suppressions
        )

        # The RM leaves: nobody else of the grade in the branch, so the customer waits in the queue.
        gone = api.put(f"/internal/managers/{rm}", json={**manager, "active": False})
        assert (gone.status_code, gone.json()["load"]) == (200, 0)
        queue = api.get("/internal/tasks", params={"branch_id": branch, "queue": "true", "status": "open"}).json()
        waiting = api.get(f"/internal/customers/{cid}").json()
        assert waiting["rm_id"] is None
        assert {t["task_id"] for t in queue["items"]} == {t["task_id"] for t in waiting["open_tasks"]}
        assert welcome["task_id"] in {t["task_id"] for t in queue["items"]}

        # A new RM with room takes the customer from the queue.
        other = unique_ref("RM")
        taken = api.put(f"/internal/managers/{other}", json={**manager, "name": "Gao Yu"})
        assert taken.json()["load"] == 1
        assert api.get(f"/internal/tasks/{welcome['task_id']}").json()["rm_id"] == other
