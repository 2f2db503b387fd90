"""Integration events built and encoded in Python, as a publisher other than the Lua scripts
would: the tests' stand-in for the payments service and for replayed or poison records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec

from nexuscart.events import Envelope, Event

_encoder: Final = msgspec.json.Encoder()


def envelope(data: Event, key: int | str, event_id: uuid.UUID | None = None) -> Envelope:
    return Envelope(
        id=event_id or uuid.uuid4(),
        type=type(data).__name__,
        version=1,
        occurred_at=datetime.now(UTC),
        key=str(key),
        data=data,
    )


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)
