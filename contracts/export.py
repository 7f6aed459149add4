"""Export the contracts as JSON Schema files and an AsyncAPI 3.0 document in `contracts/schemas/`.

`python -m contracts.export` writes the files; `--check` exits 1 when they are out of date, so a
producer team can read the contract without reading Python, and the files never drift from it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.envelope import CloudEvent
from contracts.registry import (
    ALL_TOPICS,
    DLQ_HEADERS,
    EVENT_TYPES,
    INBOUND_TOPICS,
    EventSpec,
    dlq_topic,
)

SCHEMA_DIR: Final = Path(__file__).parent / "schemas"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_PREFIX: Final = "urn:c360:schema:"
STRUCTURED_CLOUDEVENT: Final = "application/cloudevents+json"
KAFKA_BINDING_VERSION: Final = "0.5.0"
DEAD_LETTER: Final = "dead-letter"


def render_all() -> dict[str, str]:
    """Every exported file, by file name, as it must appear in `contracts/schemas/`."""
    files = {
        "cloudevent.json": _dump(cloudevent_schema()),
        "asyncapi.json": _dump(asyncapi_document()),
    }
    for spec in EVENT_TYPES.values():
        files[f"{spec.type}.json"] = _dump(event_schema(spec))
    return dict(sorted(files.items()))


def cloudevent_schema() -> dict[str, Any]:
    """The JSON Schema of the envelope alone, with `data` left open."""
    schema = CloudEvent.model_json_schema()
    schema.update({"$schema": JSON_SCHEMA_DIALECT, "$id": f"{SCHEMA_ID_PREFIX}cloudevent"})
    return schema


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """A standalone JSON Schema of one event type: the envelope with its `data` model."""
    data = spec.model.model_json_schema()
    defs: dict[str, Any] = data.pop("$defs", {})
    defs[spec.model.__name__] = data
    schema = _envelope(spec, f"#/$defs/{spec.model.__name__}")
    schema.update({"$schema": JSON_SCHEMA_DIALECT, "$id": f"{SCHEMA_ID_PREFIX}{spec.type}", "$defs": defs})
    return schema


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: every topic and its `.dlq` as channels, every event type as a message."""
    models = list(dict.fromkeys(spec.model for spec in EVENT_TYPES.values()))
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = {**top["$defs"], "CloudEvent": CloudEvent.model_json_schema()}
    messages: dict[str, Any] = {DEAD_LETTER: _dead_letter_message()}
    for spec in EVENT_TYPES.values():
        schemas[spec.type] = _envelope(spec, f"#/components/schemas/{spec.model.__name__}")
        messages[spec.type] = _message(spec)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        inbound = topic in INBOUND_TOPICS
        specs = [spec for spec in EVENT_TYPES.values() if spec.topic == topic]
        keys = sorted({spec.key_field for spec in specs})
        channels[topic] = {
            "address": topic,
            "title": topic,
            "description": (
                f"{'Published by the bank' if inbound else 'Published by the platform'}; "
                f"Kafka key: `{'` or `'.join(keys)}` from `data`, so one key's events stay in order. "
                f"Invalid messages go to `{dlq_topic(topic)}`."
            ),
            "messages": {spec.type: {"$ref": f"#/components/messages/{spec.type}"} for spec in specs},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"{topic}.{'receive' if inbound else 'send'}"] = {
            "action": "receive" if inbound else "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "summary": f"The platform {'consumes' if inbound else 'publishes'} {topic}.",
            "messages": [{"$ref": f"#/channels/{topic}/messages/{spec.type}"} for spec in specs],
        }
        dlq = dlq_topic(topic)
        channels[dlq] = {
            "address": dlq,
            "title": dlq,
            "description": f"Messages from `{topic}` that could not be parsed or failed validation, unchanged.",
            "messages": {DEAD_LETTER: {"$ref": f"#/components/messages/{DEAD_LETTER}"}},
            "bindings": {"kafka": {"topic": dlq, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"{dlq}.send"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq}"},
            "summary": f"A consumer of {topic} dead-letters a message it cannot accept.",
            "messages": [{"$ref": f"#/channels/{dlq}/messages/{DEAD_LETTER}"}],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer 360 events",
            "version": "1.0.0",
            "description": (
                "Every event is a CloudEvents 1.0 event in structured JSON mode. Amounts are JSON strings "
                'holding decimals ("1234.50"), never numbers; currencies are ISO 4217 codes; times are '
                "RFC 3339 with offset. Consumers are idempotent on (source, id). Changes only add optional "
                "fields; a breaking change is a new `.v2` type."
            ),
        },
        "defaultContentType": STRUCTURED_CLOUDEVENT,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _envelope(spec: EventSpec, data_ref: str) -> dict[str, Any]:
    schema = CloudEvent.model_json_schema()
    properties = schema["properties"]
    properties["type"] = {"const": spec.type, "description": "The event type.", "type": "string"}
    properties["data"] = {"$ref": data_ref, "description": f"The {spec.type} payload."}
    properties["subject"]["description"] = f"The Kafka key: `data.{spec.key_field}`."
    schema["title"] = spec.type
    schema["description"] = f"{_doc(spec.model)}\n\nTopic: `{spec.topic}`. Kafka key: `data.{spec.key_field}`."
    return schema


def _message(spec: EventSpec) -> dict[str, Any]:
    return {
        "name": spec.type,
        "title": spec.model.__name__,
        "summary": _doc(spec.model).split("\n", 1)[0],
        "description": _doc(spec.model),
        "contentType": STRUCTURED_CLOUDEVENT,
        "payload": {"$ref": f"#/components/schemas/{spec.type}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"`data.{spec.key_field}` of the event."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A message that could not be parsed or failed validation, with the reason in headers.",
        "description": (
            "The original message value and key, byte for byte, with its original headers and the "
            "`c360-dlq-*` headers below. The partition is never blocked and nothing is dropped silently."
        ),
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()},
            "required": list(DLQ_HEADERS),
        },
        "payload": {"description": "The original message value; it may be neither JSON nor UTF-8."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original message key, unchanged."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """What differs between `directory` and `render_all()`: one line per stale, missing or extra file."""
    expected = render_all()
    present = {path.name: path for path in directory.glob("*.json")}
    problems = [f"missing: {name}" for name in expected if name not in present]
    problems += [
        f"stale: {name}"
        for name, content in expected.items()
        if name in present and present[name].read_text(encoding="utf-8") != content
    ]
    problems += [f"extra: {name}" for name in sorted(present) if name not in expected]
    return problems


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Bring `directory` up to date; returns the names of the files written or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = render_all()
    changed = []
    for name, content in expected.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(name)
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            path.unlink()
            changed.append(path.name)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `python -m contracts.export` to update contracts/schemas", file=sys.stderr)
            return 1
        return 0
    for name in write():
        print(f"updated {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
