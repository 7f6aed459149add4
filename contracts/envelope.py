"""The CloudEvents 1.0 envelope (structured JSON mode) that wraps every event on every topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Self
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from contracts.types import EventId, NonEmpty, Timestamp


class EventHeader(BaseModel):
    """The attributes of a CloudEvents 1.0 event in structured JSON mode: all but its `data`.

    Extension attributes (such as `correlationid`) are kept as extra top-level attributes. What
    `contracts.parse_event` returns as an event's envelope is one of these: its data is validated
    into the type's model in the same pass, and kept only as that model (`ParsedEvent.data`).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = Field(description="CloudEvents specification version; always `1.0`.")
    id: EventId = Field(description="Unique per event within its source; consumers are idempotent on (source, id).")
    source: NonEmpty = Field(description="The producing system, such as `core-deposits` or `c360-profile`.")
    type: NonEmpty = Field(description="The event type, such as `bank.account.balance.v1`.")
    time: Timestamp = Field(description="When the event happened, RFC 3339 with offset.")
    subject: str | None = Field(
        default=None, description="The Kafka key of the event: the customer_ref or golden customer_id."
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Media type of `data`; always `application/json`."
    )


class CloudEvent(EventHeader):
    """A CloudEvents 1.0 event in structured JSON mode.

    Extension attributes (such as `correlationid`) are kept as extra top-level attributes.
    """

    data: dict[str, Any] = Field(description="The event payload; its schema depends on `type`.")

    @classmethod
    def build(
        cls,
        type_: str,
        source: str,
        data: BaseModel,
        *,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        **extensions: Any,
    ) -> CloudEvent:
        """Wrap `data` (dumped in JSON mode) in an envelope with a fresh id and the current time.

        `data` is a validated model and the rest is the caller's own, so the envelope is built
        without validating it again (this runs for every event a service publishes); what could
        still be wrong is checked here."""
        if not source or not type_:
            raise ValueError("an event needs a source and a type")
        if time is not None and time.utcoffset() is None:
            raise ValueError("an event's time must be timezone-aware")
        return cls.model_construct(
            **extensions,
            specversion="1.0",
            id=id if id is not None else str(uuid4()),
            source=source,
            type=type_,
            time=time if time is not None else datetime.now(UTC),
            subject=subject,
            datacontenttype="application/json",
            data=data.model_dump(mode="json"),
        )

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON, as written to Kafka; an absent subject is left out."""
        exclude = {"subject"} if self.subject is None else None
        return self.model_dump_json(exclude=exclude).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """Parse and validate an envelope; raises pydantic's ValidationError when it is not one."""
        return cls.model_validate_json(raw)
