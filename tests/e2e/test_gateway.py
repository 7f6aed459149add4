"""The public API through the running platform: every route, each role's scope, masking, audit,
event intake and the admin's split and erasure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts import (
    BANK_ACCOUNTS,
    BANK_CUSTOMERS,
    BANK_TRANSACTIONS,
    C360_AUDIT,
    AuditRecorded,
    Direction,
)
from services.gateway.auth import Role
from tests.builders import (
    account_balance,
    account_opened,
    customer_upserted,
    transaction_posted,
    unique_id_number,
    unique_ref,
)
from tests.e2e.conftest import Platform
from tests.e2e.flows import outbound, poll, produce

pytestmark = pytest.mark.e2e
LONG_AGO = timedelta(days=40)


@dataclass
class Bank:
    """One branch with two RMs, each with one VIP customer, seen through the gateway."""

    platform: Platform
    branch: str
    rm_a: str
    rm_b: str
    mine: str  # rm_a's customer
    theirs: str  # rm_b's customer
    name: str

    def get(self, path: str, role: Role = Role.ADMIN, **claims: str) -> httpx.Response:
        return httpx.get(self.platform.gateway + path, headers=self.platform.headers(role, **claims), timeout=10)

    def send(self, method: str, path: str, role: Role = Role.ADMIN, json: Any = None, **claims: str) -> httpx.Response:
        return httpx.request(
            method, self.platform.gateway + path, headers=self.platform.headers(role, **claims), json=json, timeout=10
        )


async def _vip(platform: Platform, topics: str, branch: str, name: str) -> str:
    ref = unique_ref("GW")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(ref, branch_id=branch, full_name=name, phone="13912345678")),
            (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
            (BANK_ACCOUNTS, account_balance(ref, f"{ref}-TD", "300000.00", as_of=datetime.now(UTC) - LONG_AGO)),
            (BANK_TRANSACTIONS, transaction_posted(ref, f"{ref}-TD", "60000.00", direction=Direction.DEBIT)),
            (BANK_TRANSACTIONS, transaction_posted(ref, f"{ref}-TD", "12.50", direction=Direction.DEBIT)),
        ],
    )
    with httpx.Client(base_url=platform.gateway, headers=platform.headers(Role.ADMIN), timeout=10) as client:
        view = poll(
            lambda: client.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
            lambda r: r.status_code == 200 and r.json()["relationship_manager"] is not None and r.json()["open_tasks"],
        )
    return str(view["customer_id"])


@pytest.fixture(scope="module")
def bank(platform: Platform, topics: str) -> Bank:
    import asyncio

    branch = unique_ref("GWB")
    rm_a, rm_b = f"A-{branch}", f"B-{branch}"
    name = "Qian" + unique_ref("N")[-6:].lower()
    manager = {"name": "RM", "grade": "wealth_manager", "branch_id": branch, "capacity": 10}
    with httpx.Client(base_url=platform.processes.url("engagement"), timeout=5) as api:
        api.put(f"/internal/managers/{rm_a}", json=manager).raise_for_status()
        mine = asyncio.run(_vip(platform, topics, branch, name + " Yi"))
        api.put(f"/internal/managers/{rm_b}", json=manager).raise_for_status()  # emptier: takes the next one
        theirs = asyncio.run(_vip(platform, topics, branch, name + " Er"))
    return Bank(platform, branch, rm_a, rm_b, mine, theirs, name)


def test_each_role_sees_its_scope_and_only_admin_sees_phones(bank: Bank) -> None:
    path = f"/v1/customers/{bank.mine}"
    assert bank.get(path, Role.RM, rm_id=bank.rm_a).status_code == 200
    assert bank.get(f"/v1/customers/{bank.theirs}", Role.RM, rm_id=bank.rm_a).status_code == 404
    assert bank.get(path, Role.RM, rm_id=bank.rm_b).status_code == 404
    assert bank.get(path, Role.SUPERVISOR, branch_id=bank.branch).status_code == 200
    assert bank.get(path, Role.SUPERVISOR, branch_id="BR-elsewhere").status_code == 404
    missing = bank.get("/v1/customers/C0000000000000000", Role.SUPERVISOR, branch_id="BR-elsewhere")
    assert missing.json()["detail"] == bank.get(path, Role.SUPERVISOR, branch_id="BR-elsewhere").json()["detail"]
    analyst = bank.get(path, Role.ANALYST).json()
    admin = bank.get(path).json()
    assert analyst["source_records"][0]["phone"] == "139******78"
    assert admin["source_records"][0]["phone"] == "13912345678"
    assert admin["tier"]["tier"] == "vip"
    assert admin["tier"]["rm_grade"] == "wealth_manager"
    assert admin["scores"]["value_score"] > 0
    assert admin["relationship_manager"] == bank.rm_a
    forbidden = bank.get(path, Role.SERVICE)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"


def test_search_and_list_are_narrowed_to_the_callers_scope(bank: Bank) -> None:
    found = bank.get(f"/v1/customers?q={bank.name}").json()
    assert sorted(i["customer_id"] for i in found["items"]) == sorted([bank.mine, bank.theirs])
    own = bank.get(f"/v1/customers?branch_id={bank.branch}", Role.RM, rm_id=bank.rm_a).json()
    assert [i["customer_id"] for i in own["items"]] == [bank.mine]
    assert own["items"][0]["tier"] == "vip"
    assert bank.get(f"/v1/customers?rm_id={bank.rm_b}", Role.RM, rm_id=bank.rm_a).json()["items"] == []
    vips = bank.get("/v1/customers?tier=vip", Role.SUPERVISOR, branch_id=bank.branch).json()
    assert {bank.mine, bank.theirs} <= {i["customer_id"] for i in vips["items"]}
    first = bank.get(f"/v1/customers?q={bank.name}&limit=1").json()
    second = bank.get(f"/v1/customers?q={bank.name}&limit=1&cursor={first['next_cursor']}").json()
    assert {first["items"][0]["customer_id"], second["items"][0]["customer_id"]} == {bank.mine, bank.theirs}


def test_the_timeline_has_large_transactions_tier_changes_and_tasks_newest_first(bank: Bank) -> None:
    page = bank.get(f"/v1/customers/{bank.mine}/timeline?limit=200", Role.RM, rm_id=bank.rm_a).json()
    kinds = [i["kind"] for i in page["items"]]
    assert {"account_opened", "transaction", "tier_change", "task"} <= set(kinds)
    transactions = [i for i in page["items"] if i["kind"] == "transaction"]
    assert len(transactions) == 1  # 60,000.00; the 12.50 is not large
    stamps = [i["at"] for i in page["items"]]
    assert stamps == sorted(stamps, reverse=True)
    short = bank.get(f"/v1/customers/{bank.mine}/timeline?limit=2").json()
    rest = bank.get(f"/v1/customers/{bank.mine}/timeline?limit=200&cursor={short['next_cursor']}").json()
    assert [i["ref"] for i in short["items"] + rest["items"]] == [i["ref"] for i in page["items"]]
    assert bank.get(f"/v1/customers/{bank.mine}/timeline", Role.RM, rm_id=bank.rm_b).status_code == 404


def test_rms_work_their_own_tasks_only(bank: Bank) -> None:
    mine = bank.get("/v1/tasks", Role.RM, rm_id=bank.rm_a).json()["items"]
    assert mine
    assert {t["customer_id"] for t in mine} == {bank.mine}
    theirs = bank.get(f"/v1/tasks?rm_id={bank.rm_b}").json()["items"]
    other = bank.send("PATCH", f"/v1/tasks/{theirs[0]['task_id']}", Role.RM, {"status": "in_progress"}, rm_id=bank.rm_a)
    assert other.status_code == 404
    moved = bank.send("PATCH", f"/v1/tasks/{mine[0]['task_id']}", Role.RM, {"status": "in_progress"}, rm_id=bank.rm_a)
    assert (moved.status_code, moved.json()["status"]) == (200, "in_progress")
    incomplete = bank.send("PATCH", f"/v1/tasks/{mine[0]['task_id']}", Role.RM, {"status": "done"}, rm_id=bank.rm_a)
    assert incomplete.status_code == 422
    assert bank.send("PATCH", f"/v1/tasks/{mine[0]['task_id']}", Role.ANALYST, {"status": "done"}).status_code == 403
    branch = bank.get("/v1/tasks", Role.SUPERVISOR, branch_id=bank.branch).json()["items"]
    assert {t["customer_id"] for t in branch} == {bank.mine, bank.theirs}


def test_the_roster_is_managed_by_admins_and_branch_supervisors(bank: Bank) -> None:
    roster = bank.get("/v1/managers", Role.SUPERVISOR, branch_id=bank.branch).json()["items"]
    assert {m["rm_id"]: m["load"] for m in roster} == {bank.rm_a: 1, bank.rm_b: 1}
    new = {"name": "Sun Li", "grade": "wealth_manager", "branch_id": bank.branch, "capacity": 5}
    added = bank.send("PUT", f"/v1/managers/C-{bank.branch}", Role.SUPERVISOR, new, branch_id=bank.branch)
    assert (added.status_code, added.json()["load"]) == (200, 0)
    elsewhere = {**new, "branch_id": "BR-elsewhere"}
    assert bank.send("PUT", "/v1/managers/X-1", Role.SUPERVISOR, elsewhere, branch_id=bank.branch).status_code == 404
    assert bank.send("PUT", "/v1/managers/X-1", Role.RM, new, rm_id=bank.rm_a).status_code == 403
    assert bank.get("/v1/managers", Role.RM, rm_id=bank.rm_a).status_code == 403


def test_reports_are_for_analysts_supervisors_and_admins(bank: Bank) -> None:
    report = bank.get("/v1/reports/tier-distribution", Role.ANALYST)
    assert report.status_code == 200
    assert [b["name"] for b in report.json()["bands"]] == ["0 to 50,000", "50,000 to 200,000", "200,000 and above"]
    assert bank.get("/v1/reports/data-quality", Role.SUPERVISOR, branch_id=bank.branch).status_code == 200
    assert bank.get("/v1/reports/tier-distribution", Role.RM, rm_id=bank.rm_a).status_code == 403


def test_events_posted_over_http_are_validated_one_by_one_and_reach_the_platform(bank: Bank) -> None:
    ref = unique_ref("HTTP")
    good = [
        customer_upserted(ref, id_number=unique_id_number(), full_name="Zheng Hao").model_dump(mode="json"),
        account_opened(ref, f"{ref}-C").model_dump(mode="json"),
    ]
    bad = {**good[1], "id": "broken-1", "data": {**good[1]["data"], "currency": "yuan"}}
    platform_event = {**good[0], "id": "sneaky-1", "type": "c360.tier.changed.v1"}
    answer = bank.send("POST", "/v1/events", Role.SERVICE, [good[0], bad, good[1], platform_event])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["refused"]) == (2, 2)
    assert [r["accepted"] for r in body["results"]] == [True, False, True, False]
    assert "currency" in body["results"][1]["error"]
    assert body["results"][0]["topic"] == "bank.customers.v1"
    poll(
        lambda: bank.get(f"/v1/customers/by-ref/core-deposits/{ref}"),
        lambda r: r.status_code == 200 and r.json()["full_name"] == "Zheng Hao" and r.json()["accounts"],
    )
    nothing = bank.send("POST", "/v1/events", Role.SERVICE, [bad])
    assert nothing.status_code == 422
    assert nothing.json()["results"][0]["accepted"] is False
    assert bank.send("POST", "/v1/events", Role.SERVICE, [good[0]] * 501).status_code == 422
    assert bank.send("POST", "/v1/events", Role.RM, [good[0]], rm_id=bank.rm_a).status_code == 403


def test_what_postgres_cannot_store_is_refused_before_it_reaches_a_service(bank: Bank) -> None:
    nul = {"name": "Zhou\u0000Min", "grade": "wealth_manager", "branch_id": bank.branch, "capacity": 1}
    refused = bank.send("PUT", "/v1/managers/NUL-1", Role.ADMIN, nul)
    assert (refused.status_code, refused.headers["content-type"]) == (422, "application/problem+json")
    assert bank.get("/v1/customers?q=a%00b").status_code == 422
    assert bank.get("/v1/customers/C%07X").status_code == 422  # not an id: refused, not looked up


async def test_admins_split_and_erase_and_every_read_is_audited(bank: Bank, topics: str) -> None:
    number = unique_id_number()
    one, two = unique_ref("SPLIT"), unique_ref("SPLIT")
    await produce(
        topics,
        [
            (BANK_CUSTOMERS, customer_upserted(one, id_number=number, full_name="Feng Yu", branch_id=bank.branch)),
            (BANK_CUSTOMERS, customer_upserted(two, id_number=number, full_name="Feng Yun", source="cards")),
        ],
    )
    merged = poll(
        lambda: bank.get(f"/v1/customers/by-ref/cards/{two}"),
        lambda r: r.status_code == 200 and len(r.json()["source_records"]) == 2,
    )
    cid = merged["customer_id"]
    request = {"source_records": [{"source": "cards", "customer_ref": two}], "reason": "different people"}
    assert (
        bank.send("POST", f"/v1/customers/{cid}/split", Role.SUPERVISOR, request, branch_id=bank.branch).status_code
        == 403
    )
    split = bank.send("POST", f"/v1/customers/{cid}/split", Role.ADMIN, request)
    assert split.status_code == 201, split.text
    new_id = split.json()["new_customer_id"]
    assert bank.get(f"/v1/customers/by-ref/cards/{two}").json()["customer_id"] == new_id
    bad = bank.send("POST", f"/v1/customers/{cid}/split", Role.ADMIN, request)
    assert (bad.status_code, bad.headers["content-type"]) == (422, "application/problem+json")

    assert bank.send("DELETE", f"/v1/customers/{new_id}", Role.ANALYST).status_code == 403
    assert bank.send("DELETE", f"/v1/customers/{new_id}", Role.ADMIN).status_code == 204
    erased = bank.get(f"/v1/customers/{new_id}").json()
    assert erased["full_name"] is None
    assert erased["source_records"][0]["phone"] is None
    assert bank.send("DELETE", "/v1/customers/C0000000000000000", Role.ADMIN).status_code == 404

    bank.get(f"/v1/customers/{bank.mine}", Role.RM, rm_id=bank.rm_a)
    log = bank.get(f"/v1/audit?customer_id={bank.mine}").json()["items"]
    assert any(e["subject"] == "test-rm" and e["route"] == "/v1/customers/{customer_id}" for e in log)
    actions = bank.get(f"/v1/audit?customer_id={new_id}").json()["items"]
    assert {(e["method"], e["status"]) for e in actions} >= {("POST", 200), ("DELETE", 200)}
    assert bank.get("/v1/audit", Role.ANALYST).status_code == 403
    published = await outbound(topics, C360_AUDIT, "test-rm", 1)
    assert any(isinstance(e, AuditRecorded) and e.customer_id == bank.mine for e in published)
