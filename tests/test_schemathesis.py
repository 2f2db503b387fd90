"""Property-based API test of the real edge from its own /openapi.json (schemathesis): for
generated requests, valid and invalid, no 5xx, and every response matches the document.

Bounded: max_examples per operation and generation mode, derandomized (the same cases every
run). One pytest test per mode, walking the operations itself: schemathesis' own pytest
parametrization (from_fixture) does not run under pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from tests.conftest import EdgeServer
from tests.test_flash_sale_http import ADMIN, token

BUYER = {"authorization": f"Bearer {token(424_242)}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25


def _credentials(operation: Any) -> dict[str, str]:
    """The credential an operation's security asks for (anonymous calls are covered by
    test_flash_sale_http's test of every secured route)."""
    security = operation.definition.raw.get("security") or []
    schemes = {name for requirement in security for name in requirement}
    if "accessToken" not in schemes:
        return {}
    role = operation.definition.raw.get("x-required-role")
    return dict(ADMIN) if role in ("admin", "seller") else dict(BUYER)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_edge_keeps_its_openapi_promises(edge: EdgeServer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{edge.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is invalid
        operations.append(result.ok())
    assert len(operations) >= 10
    for operation in operations:
        raw = operation.definition.raw
        if mode == GenerationMode.NEGATIVE and not (
            raw.get("parameters") or raw.get("requestBody")
        ):
            continue  # nothing to make invalid
        _fuzz(operation, mode)


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    credentials = _credentials(operation)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        headers = {**(case.headers or {}), **credentials}
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

    check()
