"""What every use case raises: ``Refused`` (the rules say no; nothing changed) and
``Unavailable`` (a dependency failed or timed out), and the context managers that turn the
drivers' failures into ``Unavailable``. The edge maps both to problem responses (edge/http.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from redis.exceptions import RedisError

__all__ = ["Refused", "Unavailable", "pg_errors", "redis_errors"]


class Refused(Exception):
    """The rules refuse the request; nothing changed."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        retry_after_s: int | None = None,
    ):
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """A dependency (``redis``, ``postgres``) failed or timed out."""

    def __init__(self, dependency: str):
        super().__init__(f"{dependency} unavailable")
        self.dependency = dependency


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable("redis") from exc


@contextlib.contextmanager
def pg_errors() -> Iterator[None]:
    """PostgreSQL unreachable, failing over or too slow."""
    try:
        yield
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.InterfaceError,
    ) as exc:
        raise Unavailable("postgres") from exc
