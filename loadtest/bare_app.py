"""The ceiling: a bare Granian RSGI endpoint answering a 4-field JSON body, nothing else.

Every figure in loadtest/ is reported next to this one, measured in the same run.
"""

from __future__ import annotations

from typing import Any

import msgspec

_body = msgspec.json.encode({"hold_id": 1, "order_id": 1, "status": "ok", "expires_at": 0})
_headers = [("content-type", "application/json")]


async def app(scope: Any, proto: Any) -> None:
    proto.response_bytes(200, _headers, _body)
