"""The committed JSON Schema and AsyncAPI files in contracts/schemas are exactly what the contracts export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts import EVENT_TYPES, INBOUND_TOPICS, OUTBOUND_TOPICS, AccountBalance, build_event, dlq_topic
from contracts.export import SCHEMA_DIR, check, main, render_all, write

COMMITTED = sorted(SCHEMA_DIR.glob("*.json"))


def load(name: str) -> Any:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def test_committed_schema_files_are_up_to_date() -> None:
    problems = check()

    assert problems == [], f"{problems}: run `python -m contracts.export`"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: path.name)
def test_schema_file_is_valid_json_ending_in_a_newline(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    assert isinstance(json.loads(text), dict)
    assert text.endswith("}\n")


def test_every_event_type_has_a_schema_file_with_its_type_as_const() -> None:
    for event_type in EVENT_TYPES:
        schema = load(f"{event_type}.json")
        assert schema["properties"]["type"]["const"] == event_type
        assert schema["$id"].endswith(event_type)


def test_render_is_deterministic() -> None:
    assert render_all() == render_all()


def test_asyncapi_lists_every_topic_and_its_dlq_as_channels() -> None:
    document = load("asyncapi.json")

    topics = [*INBOUND_TOPICS, *OUTBOUND_TOPICS]
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == {*topics, *(dlq_topic(topic) for topic in topics)}
    for spec in EVENT_TYPES.values():
        assert spec.type in document["channels"][spec.topic]["messages"]
        assert (
            spec.key_field in document["components"]["messages"][spec.type]["bindings"]["kafka"]["key"]["description"]
        )


def test_dead_letters_carry_the_reason_and_origin_headers() -> None:
    headers = load("asyncapi.json")["components"]["messages"]["dead-letter"]["headers"]["properties"]

    assert set(headers) == {
        "c360-dlq-reason",
        "c360-dlq-topic",
        "c360-dlq-partition",
        "c360-dlq-offset",
        "c360-dlq-group",
        "c360-dlq-at",
    }


def test_check_reports_missing_stale_and_extra_files(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "asyncapi.json").unlink()
    (tmp_path / "cloudevent.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "bank.account.balance.v0.json").write_text("{}\n", encoding="utf-8")

    assert check(tmp_path) == [
        "missing: asyncapi.json",
        "stale: cloudevent.json",
        "extra: bank.account.balance.v0.json",
    ]


def test_write_brings_a_directory_up_to_date(tmp_path: Path) -> None:
    (tmp_path / "obsolete.json").write_text("{}\n", encoding="utf-8")

    write(tmp_path)

    assert check(tmp_path) == []


def test_check_flag_exits_zero_when_the_files_are_current() -> None:
    assert main(["--check"]) == 0


def test_exported_schemas_are_valid_and_agree_with_the_models() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not a dev dependency yet")
    for path in COMMITTED:
        if path.name != "asyncapi.json":
            jsonschema.Draft202012Validator.check_schema(load(path.name))
    balance = AccountBalance(
        account_ref="ACC-1",
        customer_ref="CUST-1",
        balance=Decimal("-12.50"),
        currency="CNY",
        as_of=datetime(2026, 11, 22, tzinfo=UTC),
        version=1,
    )
    event = json.loads(build_event(balance, source="core-deposits").to_bytes())
    schema = load("bank.account.balance.v1.json")

    jsonschema.validate(event, schema)
    event["data"]["balance"] = -12.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)
