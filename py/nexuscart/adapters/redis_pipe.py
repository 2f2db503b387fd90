"""A lean, pipelined Redis connection for the purchase hot path.

redis-py's pipeline object costs tens of microseconds of Python per command; this writes
commands packed by hiredis (C) straight to one asyncio transport and matches replies to a
FIFO of futures, so any number of batches can be in flight on one connection (Redis answers
in order). It does one thing: send commands, return replies. Errors come back as exceptions
on the affected futures; a lost connection fails every waiter (the caller answers 503) and the
next call reconnects. Each batch has a deadline: a Redis that stops answering is a failure
within ``timeout_s``, never a hang. ``Commands`` is what the stores call: this pipe when they
have one (every caller's commands of one loop tick in one write), the pooled client otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
from redis.connection import parse_url

from nexuscart.adapters.redis_conn import Script

T = TypeVar("T")
R = TypeVar("R")


class RedisPipeError(ConnectionError):
    """The connection failed or timed out; the command may or may not have run."""


class ReplyError(Exception):
    """Redis answered with an error (e.g. NOSCRIPT)."""


class _Protocol(asyncio.Protocol):
    def __init__(
        self,
        on_push: Callable[[list[Any]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.closed = False
        self.on_push = on_push  # RESP3 pushes (client tracking's invalidations)
        self.on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if isinstance(reply, hiredis.PushNotification):
                if self.on_push is not None:
                    self.on_push(reply)
                continue  # not a reply: no waiter's
            fut = waiters.popleft()
            if fut.done():
                continue
            if isinstance(reply, ReplyError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_lost is not None:
            self.on_lost()
        err = RedisPipeError(f"redis connection lost: {exc}")
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(err)


class RedisPipe:
    """``tracking``: (on_invalidate, on_reset). The connection speaks RESP3 with client-side
    caching on (``CLIENT TRACKING ON``: Redis remembers every key this connection reads and
    pushes its name, on this same connection, when any client changes it); ``on_invalidate``
    gets the keys (None: all of them), ``on_reset`` is called whenever a connection is
    lost or made, when pushes may have been missed."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 2.0,
        tracking: tuple[Callable[[list[bytes] | None], None], Callable[[], None]] | None = None,
    ):
        opts = parse_url(url)  # type: ignore[no-untyped-call]
        self.host = str(opts.get("host", "127.0.0.1"))
        self.port = int(opts.get("port", 6379))
        self.db = int(opts.get("db", 0))
        self.password = opts.get("password")
        self.username = opts.get("username")
        # rediss:// is TLS, verified against the system's CAs, as redis-py does by default
        self.ssl = ssl.create_default_context() if url.startswith("rediss://") else None
        self.timeout_s = timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self.tracking = tracking

    def _on_push(self, push: list[Any]) -> None:
        if self.tracking is not None and push and push[0] == b"invalidate":
            self.tracking[0](push[1] if len(push) > 1 else None)

    def _tracking_reset(self) -> None:
        if self.tracking is not None:
            self.tracking[1]()

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    functools.partial(_Protocol, self._on_push, self._tracking_reset),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                ),
                self.timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise RedisPipeError(f"cannot connect to redis: {exc}") from exc
        setup: list[tuple[Any, ...]] = []
        auth = () if self.password is None else (self.username or "default", self.password)
        if self.tracking is not None:
            setup.append(("HELLO", 3, *(("AUTH", *auth) if auth else ())))
        elif self.password is not None:
            setup.append(("AUTH", *([self.username] if self.username else []), self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        if self.tracking is not None:
            setup.append(("CLIENT", "TRACKING", "ON"))
            self._tracking_reset()  # whatever was mirrored before this connection is unknown now
        self._proto = proto
        if setup:
            await asyncio.gather(*self._send(proto, setup))
        return proto

    def _send(
        self, proto: _Protocol, commands: Sequence[Sequence[Any]]
    ) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        assert proto.transport is not None
        proto.transport.write(b"".join(hiredis.pack_command(tuple(c)) for c in commands))
        return futures

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send all commands in one write; replies in order (ReplyError instances for errors)."""
        proto = await self._connection()
        futures = self._send(proto, commands)
        last = futures[-1]
        if not last.done():
            # Replies arrive in order: the last one done means all are. If Redis stops
            # answering, aborting the connection fails every waiter on it.
            transport = proto.transport
            assert transport is not None
            timer = asyncio.get_running_loop().call_later(self.timeout_s, transport.abort)
            try:
                await asyncio.wait((last,))
            finally:
                timer.cancel()
        out: list[Any] = []
        for fut in futures:
            exc = fut.exception()
            if isinstance(exc, RedisPipeError):
                raise exc
            out.append(exc if exc is not None else fut.result())
        return out

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


class TickCoalescer(Generic[T, R]):
    """Collects what callers submit in one event-loop tick and hands it to ``_run`` as one
    batch (one socket write for Redis however many callers are in flight: a write per
    caller cost more CPU than the rest of a purchase, a cart write or a stock check).
    ``max_batch`` (0: none) sends a batch early. ``_run`` answers each caller's future; an
    exception it raises fails every caller it has not answered."""

    def __init__(self, max_batch: int = 0):
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False

    def submit(self, item: T) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if self.max_batch and len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending:
            batch, self._pending = self._pending, []
            asyncio.ensure_future(self._run_all(batch)).add_done_callback(_retrieved)

    async def _run_all(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await self._run(batch)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        raise NotImplementedError


class TickBatch(TickCoalescer[Sequence[Sequence[Any]], list[Any]]):
    """The command lists asked for in one tick, sent as one ``RedisPipe.execute``; each
    caller gets its own replies, in order."""

    def __init__(self, pipe: RedisPipe):
        super().__init__()
        self.pipe = pipe

    def execute(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        return self.submit(commands)

    async def _run(
        self, batch: list[tuple[Sequence[Sequence[Any]], asyncio.Future[list[Any]]]]
    ) -> None:
        replies = await self.pipe.execute([c for cmds, _ in batch for c in cmds])
        i = 0
        for cmds, fut in batch:
            if not fut.done():
                fut.set_result(replies[i : i + len(cmds)])
            i += len(cmds)


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class Commands:
    """Commands and scripts on the lean pipelined connection when there is one (the edge's
    cart and checkout paths), else on the pooled client (services, tests). On the pipe, the
    commands of every caller in one event-loop tick go out in one write (one syscall and
    one read for Redis, however many carts and checkouts are in flight)."""

    def __init__(self, client: aioredis.Redis, pipe: RedisPipe | None):
        self.client = client
        self.pipe = pipe
        self._registered: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Future[list[Any]]] = {}
        self._batch = TickBatch(pipe) if pipe is not None else None

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Replies in order (a Redis error as a ReplyError / ResponseError instance)."""
        if self._batch is None:
            pipe = self.client.pipeline(transaction=False)
            for c in commands:
                pipe.execute_command(*c)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies
        return await self._batch.execute(commands)

    async def checked(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """``execute``, raising the first Redis error."""
        replies = await self.execute(commands)
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return replies

    async def script(self, script: Script, keys: Sequence[bytes], args: Sequence[Any]) -> Any:
        if self.pipe is None:
            fn = self._registered.get(script.name)
            if fn is None:
                fn = self._registered[script.name] = script.for_client(self.client)
            return await fn(keys=keys, args=args)
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        (reply,) = await self.execute([call])
        if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
            # Redis restarted and lost its script cache (a NOSCRIPT call did not run): one
            # SCRIPT LOAD for every caller that found it missing, then each runs again
            loading = self._loading.get(script.sha)
            if loading is None or loading.done():
                loading = asyncio.ensure_future(self.checked([("SCRIPT", "LOAD", script.source)]))
                self._loading[script.sha] = loading
            await asyncio.shield(loading)
            (reply,) = await self.execute([call])
        if isinstance(reply, Exception):
            raise reply
        return reply
