"""What every service process shares: logging, uvloop, a clean stop on SIGINT/SIGTERM, and
the Kafka consumer loop (dead-letter topic for poison records, retry for transient failures)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from redis import exceptions as redis_exc

from nexuscart import config, events, observability, tasks
from nexuscart.adapters import kafka
from nexuscart.gc_tuning import tune_gc


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` under uvloop; ``stop`` is set on SIGINT/SIGTERM. Logs and the
    service's /metrics endpoint follow LOG_FORMAT and METRICS_PORT."""
    import uvloop

    observe = config.observe()
    # services/<name>/bootstrap.py: the service's name is its package's
    observability.setup_logging(main.__module__.split(".")[-2], observe.log_format)
    observability.serve_metrics(observe.metrics_port, observe.metrics_host)
    observability.setup_tracing(
        main.__module__.split(".")[-2], observe.trace_sample, observe.trace_export
    )

    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    tune_gc()  # imports and setup done: the records in flight are what the collector sees
    uvloop.run(wrapper())


def consumer_name() -> str:
    """A Redis stream consumer's name, unique per process: two consumers under one name
    would share (and hide) each other's pending entries, and a restarted one must not look
    like the one that died."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --- the consumer loop every service uses ---------------------------------------------------

# its result is not used; it gets what ``decode`` made of each record (events.Envelope by
# default, the envelope of another topic's events when a consumer passes its decoder)
Handler = Callable[[list[Any]], Awaitable[object]]

# SQLSTATE classes that blame the event's data: data exceptions (22: out of range, bad
# value) and integrity violations (23: check, not null, foreign key), and an error raised
# by a trigger or function on purpose (P0001). Every other PostgreSQL error is retried: a
# lost connection, serialization failure or deadlock (08, 40), a server short of resources
# or restarting (53, 57), a lock timeout (55P03), but also a missing table or a statement
# the server refuses (42, 0A, XX): those are wrong for every event alike, so parking the
# events would empty the topic into the dead-letter topic; retrying waits for the fix (a
# migration, a deploy) with nothing lost, and the log says what fails.
_EVENT_SQLSTATE_CLASSES: Final = frozenset({"22", "23"})
_EVENT_SQLSTATES: Final = frozenset({"P0001"})


def is_transient(exc: BaseException) -> bool:
    """True when the same work should be retried later (a dependency hiccup, or a fault of
    the statement or schema rather than of these events); False when the events themselves
    are at fault (bad data, a constraint, an exception from the handler's own checks) and
    would fail again."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True  # refused/reset connections, timeouts, a pool connection closed under us
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return not (state[:2] in _EVENT_SQLSTATE_CLASSES or state in _EVENT_SQLSTATES)
    if isinstance(exc, redis_exc.ConnectionError | redis_exc.TimeoutError):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(exc.retriable) or isinstance(
            exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError
        )
    return False


class ConsumerLoop:
    """Kafka records -> ``handle(envelopes)``, at least once, never skipping, never wedging.

    * A record that does not decode, or whose event fails for good, is published unchanged to
      the topic's dead-letter topic (headers: source topic/partition/offset, consumer, error),
      counted in ``dead_lettered`` and logged; the loop goes on.
    * A transient failure (see ``is_transient``) retries the same events with capped
      exponential backoff, without committing, for as long as it takes (or until ``stop``).
    * A batch that fails for good is split in halves, recursively, so only the poison events
      go to the dead-letter topic; halves keep the batch order, so each user's events are
      still applied in order. ``handle`` must therefore be idempotent (an inbox), since a
      half may be re-applied.
    * Offsets are committed only after the writes and the dead-letter publishes succeeded:
      those of the records applied, at most every ``commit_every_s`` while records keep
      coming, at once when they stop coming, and on ``stop``. A commit is a write the broker
      flushes to disk; committing after every small batch made one per fetch, and the
      broker's CPU per event doubled at moderate rates. A crash redelivers what was applied
      since the last commit, and the handlers' inboxes drop the repeats.
    """

    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handle: Handler,
        *,
        max_records: int = 2000,
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
        decode: Callable[[bytes], Any] = events.decode,
        commit_every_s: float = 1.0,
    ):
        self.name = name
        self.decode = decode
        self.consumer = consumer
        self.producer = producer
        self.handle = handle
        self.max_records = max_records
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.commit_every_s = commit_every_s
        # the next offset of each partition's applied records, not committed yet
        self._done: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        self.log = logging.getLogger(f"nexuscart.{name}")
        # running totals, carried by the log lines (and the metrics below)
        self.dead_lettered = 0
        self.retries = 0
        self.lag = observability.LagGauge(name, consumer)
        self._retried = observability.CONSUMER_RETRIES.labels(name)
        self._batch_seconds = observability.CONSUMER_BATCH_SECONDS.labels(name)

    async def run(self, stop: asyncio.Event) -> None:
        lag = asyncio.create_task(observability.report_lag(self.lag, stop))
        try:
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=250, max_records=self.max_records)
                if not batches:
                    if self._done:  # the records stopped coming: commit what was applied
                        await self._commit()
                    continue
                records = [rec for recs in batches.values() for rec in recs]
                self.lag.fetched(records)
                t0 = time.perf_counter()
                # traced records: their spans (the first one's trace id in the log lines)
                # last until the batch is applied
                with observability.traced(self.name, records):
                    if not await self.process(records, stop):
                        break  # stopped mid-batch: none of it is committed
                    self._batch_seconds.observe(time.perf_counter() - t0)
                    for tp, recs in batches.items():
                        self._done[tp] = recs[-1].offset + 1
                    if time.monotonic() - self._last_commit >= self.commit_every_s:
                        await self._commit()
            if self._done:  # stopping: what was applied is not fetched again
                await self._commit()
        finally:
            await tasks.stop(lag)

    async def process(
        self, records: Sequence[ConsumerRecord[Any, Any]], stop: asyncio.Event
    ) -> bool:
        """Apply or dead-letter every record; False when ``stop`` interrupted (no commit)."""
        good: list[tuple[ConsumerRecord[Any, Any], Any]] = []
        for rec in records:
            try:
                value = self.decode(rec.value)
                good.append((rec, value))
                observability.note_event(rec, getattr(value, "id", None))
            except (msgspec.DecodeError, TypeError) as exc:  # TypeError: a null value
                if not await self._dead_letter(rec, exc, stop):
                    return False
        return await self._apply(good, stop)

    async def _apply(
        self, pairs: list[tuple[ConsumerRecord[Any, Any], Any]], stop: asyncio.Event
    ) -> bool:
        if not pairs:
            return True
        delay = self.backoff_s
        while True:
            try:
                await self.handle([env for _, env in pairs])
                self._count([rec for rec, _ in pairs], "applied")
                return True
            except Exception as exc:
                if not is_transient(exc):
                    if len(pairs) == 1:
                        return await self._dead_letter(pairs[0][0], exc, stop)
                    mid = len(pairs) // 2
                    return await self._apply(pairs[:mid], stop) and await self._apply(
                        pairs[mid:], stop
                    )
                self.retries += 1
                self._retried.inc()
                self.log.warning(
                    "%s: transient failure on %d events, retrying in %.2fs: %r; retries_total=%d",
                    self.name, len(pairs), delay, exc, self.retries,
                )  # fmt: skip
            if not await self._backoff(stop, delay):
                return False
            delay = min(delay * 2, self.max_backoff_s)

    async def _dead_letter(
        self, rec: ConsumerRecord[Any, Any], error: BaseException, stop: asyncio.Event
    ) -> bool:
        topic = events.dead_letter_topic(rec.topic)
        headers = [
            *(rec.headers or ()),
            ("dlq.source.topic", rec.topic.encode()),
            ("dlq.source.partition", str(rec.partition).encode()),
            ("dlq.source.offset", str(rec.offset).encode()),
            ("dlq.consumer", self.name.encode()),
            ("dlq.error", f"{type(error).__name__}: {error}"[:2000].encode()),
        ]
        delay = self.backoff_s
        while True:
            try:
                # send_and_wait: the offset is committed only once the broker has it
                await self.producer.send_and_wait(
                    topic, value=rec.value, key=rec.key, headers=headers
                )
                break
            except Exception as exc:
                self.retries += 1
                self._retried.inc()
                self.log.warning(
                    "%s: dead-letter publish to %s failed: %r; retries_total=%d",
                    self.name, topic, exc, self.retries,
                )  # fmt: skip
            if not await self._backoff(stop, delay):
                return False
            delay = min(delay * 2, self.max_backoff_s)
        self.dead_lettered += 1
        self._count([rec], "dead_lettered")
        self.log.error(
            "%s: dead-lettered %s:%d:%d to %s (%s: %s); dead_lettered_total=%d",
            self.name, rec.topic, rec.partition, rec.offset, topic,
            type(error).__name__, error, self.dead_lettered,
        )  # fmt: skip
        return True

    def _count(self, records: Sequence[ConsumerRecord[Any, Any]], outcome: str) -> None:
        per_topic: dict[str, int] = {}
        for rec in records:
            per_topic[rec.topic] = per_topic.get(rec.topic, 0) + 1
        for topic, n in per_topic.items():
            observability.CONSUMER_RECORDS.labels(self.name, topic, outcome).inc(n)

    async def _backoff(self, stop: asyncio.Event, seconds: float) -> bool:
        await sleep_or_stop(stop, seconds)
        return not stop.is_set()

    async def _commit(self) -> None:
        """Commit the offsets of the records applied (never of one fetched and not applied)."""
        # a partition a rebalance took since is the new owner's to commit (it re-reads them)
        mine = self.consumer.assignment()
        done = {tp: offset for tp, offset in self._done.items() if tp in mine}
        self._done = {}
        self._last_commit = time.monotonic()
        if not done:
            return
        try:
            await self.consumer.commit(done)
            self.lag.committed()
        except kafka_errors.KafkaError as exc:
            # a rebalance (or a broker hiccup) took the partitions: the new owner gets the
            # uncommitted records again and the handlers' inboxes drop the repeats
            self.log.warning("%s: offset commit failed, records will be redelivered: %r",
                             self.name, exc)  # fmt: skip


async def consume(
    settings: config.Settings,
    name: str,
    topics: Sequence[str],
    handle: Handler,
    stop: asyncio.Event,
    decode: Callable[[bytes], Any] = events.decode,
    **consumer_options: Any,
) -> None:
    """Run ``handle`` over ``topics`` as consumer group ``name`` until ``stop``: the topics
    and their dead-letter topics are created if missing, offsets are committed by the loop
    only (at least once), and only committed transactions are read."""
    await kafka.ensure_topics(
        settings.kafka.bootstrap, [*topics, *map(events.dead_letter_topic, topics)]
    )
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=name,
        client_id=f"{settings.kafka.client_id}-{name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **consumer_options,
    )
    producer = kafka.producer(settings.kafka, f"{name}-dlq")  # dead letters only
    await producer.start()
    await consumer.start()
    try:
        await ConsumerLoop(name, consumer, producer, handle, decode=decode).run(stop)
    finally:
        await consumer.stop()
        await producer.stop()
