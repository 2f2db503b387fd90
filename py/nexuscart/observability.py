"""What every service process shares to be observed: its Prometheus endpoint and metrics
(prometheus_client, one process each, the library's default registry), Kafka consumer lag,
and JSON log lines.

The edge is the exception for metrics: its workers share a port and keep their own counters
(``nexuscart.web.Metrics``, ADR 0006). Every metric of the services is declared here, so
the catalogue in docs/observability.md has one place to be checked against
(tests/test_metrics_catalogue.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NamedTuple, Protocol

import msgspec
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector

# --- the services' metrics ----------------------------------------------------------------

CONSUMER_RECORDS: Final = Counter(
    "nexuscart_consumer_records_total",
    "Kafka records a consumer finished with, by outcome (applied, dead_lettered)",
    ["consumer", "topic", "outcome"],
)
CONSUMER_RETRIES: Final = Counter(
    "nexuscart_consumer_retries_total",
    "Transient failures a consumer retried (a batch, or a dead-letter publish)",
    ["consumer"],
)
CONSUMER_BATCH_SECONDS: Final = Histogram(
    "nexuscart_consumer_batch_duration_seconds",
    "Time to apply one fetched batch, retries included",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONSUMER_LAG: Final = Gauge(
    "nexuscart_kafka_consumer_lag_records",
    "Records in the partition not yet committed by the consumer (high watermark - committed)",
    ["consumer", "topic", "partition"],
)
OUTBOX_RELAYED: Final = Counter(
    "nexuscart_outbox_relayed_total",
    "Outbox entries Kafka acknowledged and the relay removed, by outbox",
    ["outbox"],
)
OUTBOX_FAILURES: Final = Counter(
    "nexuscart_outbox_relay_failures_total",
    "Relay batches that failed (retried)",
    ["outbox"],
)
OUTBOX_BACKLOG: Final = Gauge(
    "nexuscart_outbox_backlog_entries",
    "Entries waiting in the outbox, as last measured",
    ["outbox"],
)
OUTBOX_AGE: Final = Gauge(
    "nexuscart_outbox_oldest_age_seconds",
    "Age of the oldest entry waiting in the outbox (0 when empty)",
    ["outbox"],
)
PAYMENT_WEBHOOKS_APPLIED: Final = Counter(
    "nexuscart_payments_webhooks_applied_total",
    "Webhook inbox entries the payments service took out of the inbox, by outcome (applied, "
    "duplicate, unknown, dead: to the dead-letter stream)",
    ["outcome"],
)
PAYMENT_INBOX_BACKLOG: Final = Gauge(
    "nexuscart_payments_webhook_inbox_entries",
    "Webhooks recorded by the edge and not applied yet, as last measured",
)
PAYMENT_INTENT_CANCELS: Final = Counter(
    "nexuscart_payments_intent_cancels_total",
    "Intents of orders closed unpaid the payments sweeper asked the provider to cancel, by "
    "outcome (canceled, too_late, refused, unavailable)",
    ["outcome"],
)
HOLDS_EXPIRED: Final = Counter(
    "nexuscart_flash_sale_expired_units_total",
    "Units the inventory service released from holds that expired unpaid",
)
CONSERVATION_BROKEN: Final = Gauge(
    "nexuscart_flash_sale_conservation_broken_sales",
    "Sales whose stock counters break units = available + held + sold (oversell), last check",
)
CONSERVATION_CHECKED: Final = Gauge(
    "nexuscart_flash_sale_conservation_check_timestamp_seconds",
    "Unix time of the last completed conservation check",
)
RECS_TRAINING_RUNS: Final = Counter(
    "nexuscart_recs_training_runs_total",
    "Scheduled training rounds of the recommendations, by outcome (promoted, kept, skipped, "
    "failed)",
    ["outcome"],
)
RECS_TRAINING_SECONDS: Final = Gauge(
    "nexuscart_recs_training_seconds",
    "Wall time of the last scheduled training run (its child process)",
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> Any | None:
    """Serve the default registry on ``host:port`` (a daemon thread); 0 serves nothing."""
    if port <= 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    return server


# --- consumer lag -------------------------------------------------------------------------


class _Consumer(Protocol):
    def assignment(self) -> Iterable[Any]: ...
    def highwater(self, tp: Any) -> int | None: ...
    async def position(self, tp: Any) -> int: ...


class LagGauge:
    """Publishes a consumer's lag per assigned partition: high watermark (from its last fetch)
    minus what is committed. While a batch is being applied the consumer's position is past
    it, so the batch's first offsets (``pending``) stand for the committed ones until the
    commit."""

    def __init__(self, name: str, consumer: _Consumer):
        self.name = name
        self.consumer = consumer
        self.pending: dict[Any, int] = {}  # tp -> first offset of the uncommitted batch
        self._shown: set[tuple[str, str]] = set()

    def fetched(self, records: Iterable[Any]) -> None:
        for rec in records:
            key = (rec.topic, rec.partition)
            if key not in self.pending or rec.offset < self.pending[key]:
                self.pending[key] = rec.offset

    def committed(self) -> None:
        self.pending.clear()

    async def update(self) -> None:
        shown: set[tuple[str, str]] = set()
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue  # nothing fetched from it yet
            done = self.pending.get((tp.topic, tp.partition))
            if done is None:
                done = await self.consumer.position(tp)
            labels = (tp.topic, str(tp.partition))
            CONSUMER_LAG.labels(self.name, *labels).set(max(0, high - done))
            shown.add(labels)
        for labels in self._shown - shown:  # revoked by a rebalance: not ours to report
            CONSUMER_LAG.remove(self.name, *labels)
        self._shown = shown


async def report_lag(lag: LagGauge, stop: asyncio.Event, every_s: float = 1.0) -> None:
    while not stop.is_set():
        try:
            await lag.update()
        except Exception:  # a metric must never stop a consumer
            logging.getLogger("nexuscart.metrics").debug("lag update failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


# --- collectors over counters a component keeps anyway ------------------------------------


class PaymentsCollector(Collector):
    """The Stripe provider's running totals (``CallStats``) and breaker state, read at
    scrape time: the provider keeps counting in plain dicts, nothing changes on its path."""

    BREAKER_STATES: Final = ("closed", "half-opened", "opened")

    def __init__(self, provider: Any, buckets: Iterable[float]):
        self.provider = provider
        self.buckets = tuple(buckets)

    def collect(self) -> Iterable[Metric]:
        stats = self.provider.stats
        attempts = CounterMetricFamily(
            "nexuscart_payments_provider_attempts",
            "HTTP attempts to the payment provider (retries included), by operation",
            labels=["operation"],
        )
        for op, n in sorted(dict(stats.attempts).items()):
            attempts.add_metric([op], n)
        calls = CounterMetricFamily(
            "nexuscart_payments_provider_calls",
            "Provider calls finished, by operation and outcome (ok, refused, unavailable)",
            labels=["operation", "outcome"],
        )
        for (op, outcome), n in sorted(dict(stats.outcomes).items()):
            calls.add_metric([op, outcome], n)
        latency = HistogramMetricFamily(
            "nexuscart_payments_provider_call_duration_seconds",
            "Duration of a provider call, retries and back-off included",
        )
        cum, pairs = 0, []
        for bound, n in zip(
            (*self.buckets, float("inf")), list(stats.latency_buckets), strict=True
        ):
            cum += n
            pairs.append(("+Inf" if bound == float("inf") else repr(bound), cum))
        latency.add_metric([], pairs, stats.latency_sum_s)
        state = self.provider.breaker_state()
        breaker = GaugeMetricFamily(
            "nexuscart_payments_breaker_open",
            "1 while the circuit breaker in front of the provider is open",
        )
        breaker.add_metric([], 1.0 if state == "opened" else 0.0)
        states = GaugeMetricFamily(
            "nexuscart_payments_breaker_state",
            "The breaker's state: 1 for the current one",
            labels=["state"],
        )
        for s in self.BREAKER_STATES:
            states.add_metric([s], 1.0 if s == state else 0.0)
        return [attempts, calls, latency, breaker, states]


def register(collector: Collector) -> Callable[[], None]:
    """Add ``collector`` to the default registry; returns its removal (tests, restarts)."""
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


# --- logs ---------------------------------------------------------------------------------

# Set per request (edge) or per record (services); every log line carries them.
REQUEST_ID: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("request_id", default="")
TRACE_ID: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("trace_id", default="")

_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request and trace ids in
    context, any ``extra=`` fields, and the exception text."""

    def __init__(self, service: str = ""):
        super().__init__()
        self.service = service
        self.encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            line["service"] = self.service
        if rid := REQUEST_ID.get():
            line["request_id"] = rid
        if tid := TRACE_ID.get():
            line["trace_id"] = tid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self.encoder.encode(line).decode()


def setup_logging(service: str, fmt: str = "json", level: int = logging.INFO) -> None:
    """Route the root logger to stderr, as JSON lines (``fmt="json"``) or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# --- traces -------------------------------------------------------------------------------
#
# OpenTelemetry (API + SDK), W3C trace context. The head decision is taken by hand where a
# trace starts (a purchase at the edge: one random() per request, nothing else unless it
# wins); downstream a span is made only for work whose input carries a ``traceparent`` (an
# outbox entry, a Kafka record header), so untraced work never touches the SDK.


class Tracing:
    """The process's tracer and head-sampling rate (``setup_tracing`` fills it in)."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.tracer: Any = None
        self.provider: Any = None

    def start(self, name: str, parent: bytes | str | None = None, **attrs: Any) -> Any:
        """A span named ``name``: a new trace without ``parent``, else a child of that
        ``traceparent``. None when tracing is off (callers check before ending it)."""
        if self.tracer is None:
            return None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        ctx = None
        if parent is not None:
            tp = parent.decode() if isinstance(parent, bytes) else parent
            ctx = TraceContextTextMapPropagator().extract({"traceparent": tp})
        return self.tracer.start_span(name, context=ctx, attributes=attrs or None)

    def child(self, name: str, **attrs: Any) -> Any:
        """A child of the current span when there is a recording one (work done inside a
        traced batch: a Stripe call); None otherwise, at the cost of one context read."""
        if self.tracer is None:
            return None
        from opentelemetry import trace

        if not trace.get_current_span().is_recording():
            return None
        return self.tracer.start_span(name, attributes=attrs or None)


TRACING: Final = Tracing()


def traceparent(span: Any) -> str:
    """The W3C ``traceparent`` of ``span`` ('' for None)."""
    if span is None:
        return ""
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def trace_id(span: Any) -> str:
    return f"{span.get_span_context().trace_id:032x}" if span is not None else ""


class _LogExporter:
    """Spans as JSON lines on the ``nexuscart.trace`` logger: a trace is followed across
    processes by grepping their logs for its trace id (an OTLP collector is not part of the
    local stack)."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        out = logging.getLogger("nexuscart.trace")
        for s in spans:
            c = s.context
            out.info(
                "span %s",
                s.name,
                extra={
                    "trace_id": f"{c.trace_id:032x}",
                    "span_id": f"{c.span_id:016x}",
                    "parent_id": f"{s.parent.span_id:016x}" if s.parent else "",
                    "duration_ms": round((s.end_time - s.start_time) / 1e6, 3),
                    **{f"attr.{k}": v for k, v in (s.attributes or {}).items()},
                },
            )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def setup_tracing(service: str, rate: float, export: str = "log", exporter: Any = None) -> None:
    """Trace ``rate`` of the requests this process starts (0: tracing off entirely), and
    every piece of work that arrives traced. ``exporter`` (tests: an in-memory one) replaces
    the one ``export`` names ("log": span lines in this process's log; "none")."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if rate <= 0 and exporter is None and export == "none":
        TRACING.rate, TRACING.tracer = 0.0, None
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif export == "log":
        provider.add_span_processor(BatchSpanProcessor(_LogExporter()))  # type: ignore[arg-type]
        span_log = logging.getLogger("nexuscart.trace")
        span_log.setLevel(logging.INFO)
        if not logging.getLogger().handlers:
            # a process that set up no logging (the edge by default) still shows its spans
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter(service))
            span_log.addHandler(handler)
            span_log.propagate = False
    TRACING.provider = provider
    TRACING.tracer = provider.get_tracer("nexuscart")
    TRACING.rate = max(0.0, min(1.0, rate))


@contextlib.contextmanager
def traced(consumer: str, records: Iterable[Any]) -> Iterator[None]:
    """Run the batch of ``records`` with a span per traced record; the first one's trace id
    goes in the log lines, and all end when the block does. Work done for one record hangs
    from that record's span only inside ``for_event`` (after ``note_event`` names the record's
    event): a batch of 500 orders with one traced among them traces that order's Stripe call,
    not the 500. Nothing happens for an untraced batch."""
    spans = consume_spans(consumer, records)
    if not spans:
        yield
        return
    by_record = {(r.topic, r.partition, r.offset): s for r, s in spans}
    token = TRACE_ID.set(trace_id(spans[0][1]))
    batch = _BATCH.set(_Batch(by_record, {}))
    try:
        yield
    finally:
        _BATCH.reset(batch)
        TRACE_ID.reset(token)
        for _, span in spans:
            span.end()


class _Batch(NamedTuple):
    by_record: dict[tuple[str, int, int], Any]  # (topic, partition, offset) -> span
    by_event: dict[object, Any]  # event id -> span (note_event)


_BATCH: Final[contextvars.ContextVar[_Batch | None]] = contextvars.ContextVar(
    "traced_batch", default=None
)


def note_event(record: Any, event_id: object) -> None:
    """Name the event a traced record carries (the consumer calls it once decoded)."""
    batch = _BATCH.get()
    if batch is not None and event_id is not None:
        span = batch.by_record.get((record.topic, record.partition, record.offset))
        if span is not None:
            batch.by_event[event_id] = span


@contextlib.contextmanager
def for_event(event_id: object) -> Iterator[None]:
    """Work for one event of the batch: its record's span is current (``TRACING.child``
    hangs from it) if that record was traced; otherwise no span is (child gives None)."""
    batch = _BATCH.get()
    span = None if batch is None or event_id is None else batch.by_event.get(event_id)
    if span is None:
        yield
        return
    from opentelemetry import trace

    with trace.use_span(span, end_on_exit=False):
        yield


def consume_spans(consumer: str, records: Iterable[Any]) -> list[tuple[Any, Any]]:
    """(record, span) for every record that arrived with a ``traceparent`` header (none when
    tracing is off: the headers are not even looked at); the caller ends them after the
    batch."""
    if TRACING.tracer is None:
        return []
    spans = []
    for rec in records:
        for k, v in rec.headers or ():
            if k == "traceparent":
                spans.append(
                    (
                        rec,
                        TRACING.start(
                            f"{consumer}.apply",
                            v,
                            **{
                                "messaging.system": "kafka",
                                "messaging.destination.name": rec.topic,
                                "messaging.kafka.partition": rec.partition,
                                "messaging.kafka.offset": rec.offset,
                            },
                        ),
                    )
                )
                break
    return spans
