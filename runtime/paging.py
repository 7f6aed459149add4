"""Opaque cursors for lists ordered by a time and tie-breakers, the same on every service, so a
page of one service's list can be continued through another (the gateway's timeline)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from runtime.errors import Unprocessable


def encode_time_cursor(at: datetime, *keys: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), *keys]).encode()).decode()


def decode_time_cursor(cursor: str, keys: int) -> tuple[datetime, tuple[str, ...]]:
    """The time and `keys` tie-breakers of a cursor; a cursor this API did not give out is a 422."""
    try:
        at, *rest = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if len(rest) != keys:
            raise ValueError("wrong shape")
        return datetime.fromisoformat(at), tuple(str(k) for k in rest)
    except (ValueError, TypeError) as exc:
        raise Unprocessable("the cursor is not one this API returned") from exc
