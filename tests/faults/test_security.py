"""Security faults at the gateway: every defective token is a 401 and every role outside a route a
403, on every `/v1` route, and nothing else; an RM walking customer ids (sequential, random, or
the real ids of other books) finds nothing outside their book (404 for all); masked fields stay
masked on every route that returns them, timelines and tasks included; every refusal is counted
in `c360_access_refused_total`."""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from contracts import BANK_ACCOUNTS, BANK_CUSTOMERS, BANK_TRANSACTIONS, Direction
from runtime.settings import development_secret
from services.gateway.auth import Role
from tests.builders import account_balance, account_opened, customer_upserted, transaction_posted, unique_ref
from tests.faults.bank import produce
from tests.faults.conftest import FaultPlatform

pytestmark = pytest.mark.timeout(240)
ID_NUMBER = "110101198001010011"


@dataclass
class Book:
    """One branch, two RMs, one VIP each; `mine` belongs to `rm_a`."""

    platform: FaultPlatform
    branch: str
    rm_a: str
    rm_b: str
    mine: str
    theirs: str
    mine_ref: str
    name: str
    phone: str
    email: str
    task_id: str

    def call(self, method: str, path: str, headers: dict[str, str], json: Any = None) -> httpx.Response:
        return httpx.request(method, self.platform.url("gateway") + path, headers=headers, json=json, timeout=15)

    def get(self, path: str, role: Role = Role.ADMIN, **claims: str) -> httpx.Response:
        return self.call("GET", path, self.platform.headers(role, **claims))


def _vip(platform: FaultPlatform, branch: str, name: str, phone: str, email: str, id_number: str) -> tuple[str, str]:
    ref = unique_ref("SEC")
    asyncio.run(
        produce(
            platform,
            [
                (
                    BANK_CUSTOMERS,
                    customer_upserted(
                        ref, branch_id=branch, full_name=name, phone=phone, email=email, id_number=id_number
                    ),
                ),
                (BANK_ACCOUNTS, account_opened(ref, f"{ref}-TD")),
                (
                    BANK_ACCOUNTS,
                    account_balance(ref, f"{ref}-TD", "300000.00", as_of=datetime.now(UTC) - timedelta(days=40)),
                ),
                (BANK_TRANSACTIONS, transaction_posted(ref, f"{ref}-TD", "60000.00", direction=Direction.DEBIT)),
            ],
        )
    )
    headers = platform.headers(Role.ADMIN)
    deadline = time.monotonic() + 90
    while True:
        view = httpx.get(
            f"{platform.url('gateway')}/v1/customers/by-ref/core-deposits/{ref}", headers=headers, timeout=10
        )
        if view.status_code == 200 and view.json()["relationship_manager"] and view.json()["open_tasks"]:
            return str(view.json()["customer_id"]), ref
        assert time.monotonic() < deadline, f"the VIP {ref} did not settle: {view.status_code} {view.text[:300]}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def book(fault_platform: FaultPlatform) -> Book:
    fault_platform.repair()
    branch = unique_ref("SECB")
    rm_a, rm_b = f"A-{branch}", f"B-{branch}"
    name = "Sec" + unique_ref("N")[-6:].lower()
    manager = {"name": "RM", "grade": "wealth_manager", "branch_id": branch, "capacity": 10}
    engagement = fault_platform.url("engagement")
    httpx.put(f"{engagement}/internal/managers/{rm_a}", json=manager, timeout=10).raise_for_status()
    phone, email = "13987654321", "wei.secret@example.cn"
    mine, mine_ref = _vip(fault_platform, branch, f"{name} Yi", phone, email, ID_NUMBER)
    httpx.put(f"{engagement}/internal/managers/{rm_b}", json=manager, timeout=10).raise_for_status()
    theirs, _ = _vip(fault_platform, branch, f"{name} Er", "13911112222", "er@example.cn", "110101198002020022")
    admin = fault_platform.headers(Role.ADMIN)
    tasks = httpx.get(f"{fault_platform.url('gateway')}/v1/tasks?rm_id={rm_a}", headers=admin, timeout=10).json()
    task_id = next(t["task_id"] for t in tasks["items"] if t["customer_id"] == mine)
    return Book(fault_platform, branch, rm_a, rm_b, mine, theirs, mine_ref, name, phone, email, task_id)


def refused(platform: FaultPlatform) -> dict[str, float]:
    text = httpx.get(platform.url("gateway") + "/metrics", timeout=10).text
    found = {"unauthenticated": 0.0, "forbidden": 0.0, "out_of_scope": 0.0}
    for reason, value in re.findall(r'^c360_access_refused_total\{reason="(\w+)"\} (\S+)$', text, re.MULTILINE):
        found[reason] = float(value)
    return found


def routes(book: Book) -> list[tuple[str, str]]:
    """(method, path) for every `/v1` route the gateway's OpenAPI document lists, with real ids."""
    document = httpx.get(book.platform.url("gateway") + "/openapi.json", timeout=10).json()
    values = {
        "customer_id": book.mine,
        "task_id": book.task_id,
        "source": "core-deposits",
        "customer_ref": book.mine_ref,
        "rm_id": book.rm_a,
    }
    found = []
    for path, operations in document["paths"].items():
        if not path.startswith("/v1"):
            continue
        filled = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "X1"), path)
        found += [
            (method.upper(), filled) for method in operations if method in {"get", "post", "put", "patch", "delete"}
        ]
    return found


def bad_tokens(platform: FaultPlatform) -> dict[str, dict[str, str]]:
    secret = development_secret(platform.work)
    now = datetime.now(UTC)

    def signed(claims: dict[str, Any], key: str = secret, algorithm: str = "HS256") -> dict[str, str]:
        return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}

    good = {"sub": "mallory", "role": "admin", "iat": now, "nbf": now, "exp": now + timedelta(minutes=10)}
    valid = jwt.encode(good, secret, algorithm="HS256")
    header, _, signature = valid.split(".")
    forged = jwt.encode({**good, "role": "admin", "sub": "root"}, "x" * 32, algorithm="HS256").split(".")[1]
    unsigned = jwt.encode(good, None, algorithm="none")  # type: ignore[arg-type]
    return {
        "expired": signed({**good, "exp": now - timedelta(minutes=10), "nbf": now - timedelta(minutes=40)}),
        "not yet valid": signed({**good, "nbf": now + timedelta(minutes=10), "exp": now + timedelta(minutes=40)}),
        "wrong signature": signed(good, key="not-the-secret-" + "x" * 32),
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "alg none without signature dot": {"Authorization": f"Bearer {unsigned.rstrip('.')}"},
        "payload swapped under a valid signature": {"Authorization": f"Bearer {header}.{forged}.{signature}"},
        "missing sub": signed({k: v for k, v in good.items() if k != "sub"}),
        "missing role": signed({k: v for k, v in good.items() if k != "role"}),
        "missing exp": signed({k: v for k, v in good.items() if k != "exp"}),
        "unknown role": signed({**good, "role": "superuser"}),
        "rm without rm_id": signed({**good, "role": "rm"}),
        "supervisor without branch_id": signed({**good, "role": "supervisor"}),
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "bearer without a token": {"Authorization": "Bearer"},
        "basic scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "no header": {},
    }


def test_every_defective_token_is_401_and_every_role_outside_a_route_is_403_on_every_route(book: Book) -> None:
    platform = book.platform
    before = refused(platform)
    all_routes = routes(book)
    assert len(all_routes) >= 12, all_routes
    tokens = bad_tokens(platform)
    statuses: dict[tuple[str, str, str], int] = {}
    for kind, headers in tokens.items():
        for method, path in all_routes:
            response = book.call(method, path, headers, json={} if method in {"POST", "PUT", "PATCH"} else None)
            statuses[(kind, method, path)] = response.status_code
            assert response.status_code == 401, (kind, method, path, response.status_code, response.text[:200])
            assert response.headers["content-type"] == "application/problem+json"
            assert book.name.lower() not in response.text.lower()

    # Valid tokens, roles a route does not admit: 403 and nothing else.
    not_allowed = {
        Role.SERVICE: [r for r in all_routes if r != ("POST", "/v1/events")],
        Role.RM: [
            ("DELETE", f"/v1/customers/{book.mine}"),
            ("POST", f"/v1/customers/{book.mine}/split"),
            ("GET", "/v1/audit"),
            ("PUT", f"/v1/managers/{book.rm_a}"),
            ("GET", "/v1/reports/tier-distribution"),
            ("POST", "/v1/events"),
            ("PUT", "/v1/segments/X1"),
            ("PUT", "/v1/campaigns/X1"),
            ("GET", "/v1/campaigns"),
            ("GET", "/v1/campaigns/X1/stats"),
        ],
        Role.ANALYST: [
            ("DELETE", f"/v1/customers/{book.mine}"),
            ("POST", f"/v1/customers/{book.mine}/split"),
            ("PATCH", f"/v1/tasks/{book.task_id}"),
            ("PUT", f"/v1/managers/{book.rm_a}"),
            ("POST", "/v1/events"),
        ],
    }
    forbidden = 0
    for role, pairs in not_allowed.items():
        claims = {"rm_id": book.rm_a} if role is Role.RM else {}
        for method, path in pairs:
            response = book.call(method, path, platform.headers(role, **claims), json={} if method != "GET" else None)
            assert response.status_code == 403, (role, method, path, response.status_code, response.text[:200])
            assert response.headers["content-type"] == "application/problem+json"
            forbidden += 1

    # Nothing the barrage asked for happened: the customer is whole and still theirs.
    view = book.get(f"/v1/customers/{book.mine}")
    assert view.status_code == 200
    assert (view.json()["relationship_manager"], view.json()["source_records"][0]["phone"]) == (book.rm_a, book.phone)
    after = refused(platform)
    assert after["unauthenticated"] - before["unauthenticated"] == len(statuses)
    assert after["forbidden"] - before["forbidden"] == forbidden


async def _all_customer_ids(platform: FaultPlatform) -> list[str]:
    return [r["customer_id"] for r in await platform.fetch("SELECT customer_id FROM profile.customers")]


def test_an_rm_walking_customer_ids_finds_nothing_outside_their_book(book: Book) -> None:
    platform = book.platform
    rng = random.Random(7)
    existing = [c for c in asyncio.run(_all_customer_ids(platform)) if c != book.mine]
    assert book.theirs in existing
    real = [book.theirs, *rng.sample(existing, min(40, len(existing)))]
    sequential = [f"C{n:016X}" for n in range(20)]
    guessed = [f"C{rng.getrandbits(64):016X}" for _ in range(20)]
    before = refused(platform)
    rm = platform.headers(Role.RM, rm_id=book.rm_a)
    answers: dict[str, int] = {}
    for customer_id in dict.fromkeys(real + sequential + guessed):
        for path in (f"/v1/customers/{customer_id}", f"/v1/customers/{customer_id}/timeline"):
            answers[path] = book.call("GET", path, rm).status_code
    refs = [f"SIM-{seed}-{n:07d}" for seed in (101, 201, 301) for n in range(1, 11)]
    for ref in refs:
        answers[f"by-ref {ref}"] = book.call("GET", f"/v1/customers/by-ref/core-deposits/{ref}", rm).status_code
    assert set(answers.values()) == {404}, {k: v for k, v in answers.items() if v != 404}
    assert book.call("GET", f"/v1/customers/{book.mine}", rm).status_code == 200
    assert book.call("GET", f"/v1/customers/by-ref/core-deposits/{book.mine_ref}", rm).status_code == 200

    # Each request for a customer that exists in another book was a refusal, and counted as one.
    existing_set = set(existing)
    in_other_books = 2 * len({c for c in real if c in existing_set})
    known_refs = asyncio.run(
        platform.fetch("SELECT customer_ref FROM profile.source_records WHERE customer_ref = ANY($1)", refs)
    )
    after = refused(platform)
    assert after["out_of_scope"] - before["out_of_scope"] == in_other_books + len(known_refs)


def test_masked_fields_stay_masked_on_every_route_that_returns_them(book: Book) -> None:
    paths = [
        f"/v1/customers/{book.mine}",
        f"/v1/customers/by-ref/core-deposits/{book.mine_ref}",
        f"/v1/customers?q={book.name}",
        f"/v1/customers/{book.mine}/timeline?limit=200",
        f"/v1/tasks?rm_id={book.rm_a}",
    ]
    secrets = [book.phone, book.email, ID_NUMBER, ID_NUMBER[:-4]]
    seen_masked = False
    for role, claims in (
        (Role.RM, {"rm_id": book.rm_a}),
        (Role.SUPERVISOR, {"branch_id": book.branch}),
        (Role.ANALYST, {}),
    ):
        for path in paths:
            response = book.get(path, role, **claims)
            assert response.status_code == 200, (role, path, response.text[:200])
            leaked = [s for s in secrets if s in response.text]
            assert leaked == [], (role, path, leaked)
            seen_masked |= "139******21" in response.text
    assert seen_masked, "the masked phone appeared nowhere: the check above proved nothing"
    admin = book.get(f"/v1/customers/{book.mine}").text
    assert book.phone in admin
    assert ID_NUMBER not in admin
    assert ID_NUMBER[:-4] not in admin
