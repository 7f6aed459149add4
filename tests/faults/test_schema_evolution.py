"""Schema evolution: an event from a newer producer, with fields this release does not know, is
accepted and applied; and the contract models stay backward compatible with the JSON Schemas
exported by the previous release (committed under `released_schemas/<version>/`).

Backward compatible means: every event type of the release still exists on the same topic;
no field was removed; no field became required; no field changed its type, format, pattern or
constant; enumerations only grow; length and range limits only widen. Contracts change only by
adding optional fields, and a breaking change is a new `.v2` type.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import BANK_ACCOUNTS, EVENT_TYPES
from contracts.export import event_schema
from runtime.kafka import make_producer
from tests.builders import account_balance, account_opened, unique_ref
from tests.faults.bank import produce
from tests.faults.conftest import FaultPlatform

RELEASED = Path(__file__).parent / "released_schemas"
RELEASES = sorted(p.name for p in RELEASED.iterdir() if p.is_dir())
DESCRIPTIVE = {"description", "title", "examples", "default", "$comment"}
WIDER_IS_FINE = {"maxLength": max, "maximum": max, "minLength": min, "minimum": min, "maxItems": max, "minItems": min}


def released(version: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((RELEASED / version).glob("*.json")):
        if path.name != "cloudevent.json":
            yield path.stem, json.loads(path.read_text(encoding="utf-8"))


def _shape(schema: Any) -> Any:
    """A schema without its prose and without the limits that may widen."""
    if isinstance(schema, dict):
        return {
            k: _shape(v)
            for k, v in schema.items()
            if k not in DESCRIPTIVE and k not in WIDER_IS_FINE and k not in {"enum", "properties", "required"}
        }
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _compare(path: str, old: Any, new: Any, problems: list[str]) -> None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        if old != new:
            problems.append(f"{path}: changed from {old!r} to {new!r}")
        return
    for limit, wider in WIDER_IS_FINE.items():
        if limit in old and (limit not in new or wider(old[limit], new[limit]) != new[limit]):
            problems.append(f"{path}: {limit} narrowed from {old[limit]} to {new.get(limit)}")
        elif limit not in old and limit in new:
            problems.append(f"{path}: {limit} {new[limit]} added")
    if "enum" in old:
        lost = set(map(json.dumps, old["enum"])) - set(map(json.dumps, new.get("enum", [])))
        if lost or "enum" not in new:
            problems.append(f"{path}: enum lost {sorted(lost)}")
    elif "enum" in new:
        problems.append(f"{path}: enum added")
    for name, field in old.get("properties", {}).items():
        if name not in new.get("properties", {}):
            problems.append(f"{path}.{name}: removed")
        else:
            _compare(f"{path}.{name}", field, new["properties"][name], problems)
    added = set(new.get("required", [])) - set(old.get("required", []))
    if added:
        problems.append(f"{path}: newly required {sorted(added)}")
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties", True) is False:
        problems.append(f"{path}: no longer accepts unknown fields")
    for key in sorted(set(old) | set(new)):
        if key in DESCRIPTIVE or key in WIDER_IS_FINE or key in {"enum", "properties", "required", "$defs"}:
            continue
        if key in {"anyOf", "oneOf", "allOf", "items", "prefixItems"} and key in old and key in new:
            olds, news = old[key], new[key]
            if isinstance(olds, list) and isinstance(news, list) and len(olds) == len(news):
                for i, (a, b) in enumerate(zip(olds, news, strict=True)):
                    _compare(f"{path}.{key}[{i}]", a, b, problems)
                continue
            if isinstance(olds, dict) and isinstance(news, dict):
                _compare(f"{path}.{key}", olds, news, problems)
                continue
        if _shape(old.get(key)) != _shape(new.get(key)):
            problems.append(f"{path}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why events valid under `old` might not be under `new`, or lose meaning; empty when none."""
    problems: list[str] = []
    _compare("envelope", old, new, problems)
    for name, definition in old.get("$defs", {}).items():
        if name not in new.get("$defs", {}):
            problems.append(f"$defs.{name}: removed")
        else:
            _compare(name, definition, new["$defs"][name], problems)
    return problems


@pytest.mark.parametrize("version", RELEASES)
def test_the_contract_models_are_backward_compatible_with_every_released_schema(version: str) -> None:
    schemas = dict(released(version))
    assert len(schemas) >= 18, f"release {version} holds too few schemas to compare"
    problems = {}
    for event_type, old in schemas.items():
        if event_type not in EVENT_TYPES:
            problems[event_type] = ["event type removed"]
            continue
        found = incompatibilities(old, event_schema(EVENT_TYPES[event_type]))
        if found:
            problems[event_type] = found
    assert problems == {}, problems


def test_the_compatibility_check_catches_removed_required_retyped_and_narrowed_fields() -> None:
    old = event_schema(EVENT_TYPES["bank.account.balance.v1"])
    fields = old["$defs"]["AccountBalance"]

    def changed(edit: Any) -> list[str]:
        new = copy.deepcopy(old)
        edit(new["$defs"]["AccountBalance"])
        return incompatibilities(old, new)

    assert incompatibilities(old, copy.deepcopy(old)) == []
    assert changed(lambda m: m["properties"].pop("as_of")) == ["AccountBalance.as_of: removed"]
    assert changed(lambda m: m["properties"]["version"].update(type="string"))
    assert changed(lambda m: m["properties"]["account_ref"].update(maxLength=12))
    assert changed(lambda m: m["properties"]["currency"].update(pattern="^[A-Z]{3,4}$"))

    def require_new_field(m: dict[str, Any]) -> None:
        m["properties"]["branch_id"] = {"type": "string"}
        m["required"] = [*fields["required"], "branch_id"]

    assert changed(require_new_field) == ["AccountBalance: newly required ['branch_id']"]

    def add_optional_field(m: dict[str, Any]) -> None:
        m["properties"]["branch_id"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}

    assert changed(add_optional_field) == []


@pytest.mark.timeout(120)
async def test_an_event_from_a_newer_producer_with_fields_this_release_does_not_know_is_applied(
    platform: FaultPlatform,
) -> None:
    ref = unique_ref("NEWER")
    opened = account_opened(ref, f"{ref}-C")
    balance = json.loads(account_balance(ref, f"{ref}-C", "1234.50", version=1).to_bytes())
    balance["data"] |= {"available_balance": "1200.00", "hold": {"amount": "34.50", "reason": "card"}, "tags": ["x"]}
    balance["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    balance["producerversion"] = "2.3.0"
    raw = json.dumps(balance).encode()

    await produce(platform, [(BANK_ACCOUNTS, opened)])
    producer = make_producer(platform.bootstrap, client_id="fault-newer-producer")
    await producer.start()
    try:
        await producer.send_and_wait(BANK_ACCOUNTS, value=raw, key=ref.encode())
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    while True:
        rows = await platform.fetch(
            "SELECT balance FROM profile.accounts WHERE source = 'core-deposits' AND account_ref = $1", f"{ref}-C"
        )
        if rows and rows[0]["balance"] is not None:
            break
        assert time.monotonic() < deadline, "the newer producer's balance was not applied"
        await asyncio.sleep(0.3)
    assert str(rows[0]["balance"]) == "1234.50"
    [seen] = await platform.fetch(
        "SELECT count(*) AS n FROM profile.processed_events WHERE event_id = $1", balance["id"]
    )
    assert seen["n"] == 1
