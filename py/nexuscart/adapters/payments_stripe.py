"""Stripe behind the provider boundary: the official SDK's async client (stripe-mock locally),
every call with a timeout, retried with exponential back-off and jitter on retryable errors
only (tenacity), behind one circuit breaker (purgatory) that fails fast while Stripe is down
(ADR 0013). Counters for attempts, outcomes, latency and the breaker state are kept here and
logged by the payments service.

The SDK's own retries are off (``max_network_retries=0``): tenacity owns the policy, so one
place decides what is retried, and the breaker counts each logical call once.

CPU per call is what limits the payments service (docs/payments.md, Speed): the SDK runs on
its aiohttp client over one keep-alive pool of ``pool_size`` connections (its httpx client
kept at most 20 idle connections, so 32 calls in flight reconnected, and cost ~5x the CPU
per call), and answers are read as the SDK's parsed dicts through ``raw_request_async``
(same auth, idempotency headers and error mapping) instead of being built into
StripeObjects, which cost about as much again as the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aiohttp
import stripe
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from nexuscart import observability
from nexuscart.adapters.payments_provider import (
    CancelResult,
    Intent,
    IntentRequest,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
)
from nexuscart.config import StripeSettings

T = TypeVar("T")

CIRCUIT: Final = "stripe"
# Stripe's 400 to cancelling an intent that moved on (succeeded, processing, canceled): an
# answer about the intent, not a fault of the call
UNEXPECTED_STATE: Final = "payment_intent_unexpected_state"
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def is_retryable(exc: BaseException) -> bool:
    """Worth the same call again: the network, a timeout, a rate limit, a 5xx or a lock
    conflict (409 ``lock_timeout``). Never a refusal (4xx): it would be refused again.
    (aiohttp's errors while the body is read reach us unwrapped by the SDK.)"""
    if isinstance(
        exc, stripe.APIConnectionError | stripe.RateLimitError | TimeoutError | aiohttp.ClientError
    ):
        return True
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status or 0
        return status >= 500 or (status == 409 and exc.code == "lock_timeout")
    return False


@dataclass
class CallStats:
    """Running totals (log lines carry them: services export no metrics endpoint yet)."""

    attempts: dict[str, int] = field(default_factory=dict)  # op -> HTTP attempts
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)  # (op, outcome) -> n
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum_s: float = 0.0
    latency_count: int = 0

    def attempt(self, op: str) -> None:
        self.attempts[op] = self.attempts.get(op, 0) + 1

    def outcome(self, op: str, outcome: str, seconds: float) -> None:
        self.outcomes[(op, outcome)] = self.outcomes.get((op, outcome), 0) + 1
        i = next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))
        self.latency_buckets[i] += 1
        self.latency_sum_s += seconds
        self.latency_count += 1

    def summary(self) -> dict[str, Any]:
        return {
            "attempts": dict(self.attempts),
            "outcomes": {f"{op}:{o}": n for (op, o), n in self.outcomes.items()},
            "latency_count": self.latency_count,
            "latency_mean_ms": round(1000 * self.latency_sum_s / max(1, self.latency_count), 2),
        }


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        settings: StripeSettings,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        retry_budget_s: float = 10.0,
        breaker_threshold: int = 5,
        breaker_ttl_s: float = 5.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        pool_size: int = 32,
    ):
        # the SDK logs two lines per request at INFO (~7% of the service's CPU in a storm);
        # failures reach our own log through the errors they raise
        logging.getLogger("stripe").setLevel(logging.WARNING)
        self.settings = settings
        self.pool_size = pool_size
        # made on first use: aiohttp's pool belongs to the running loop
        self._http: stripe.AIOHTTPClient | None = None
        self._client: stripe.StripeClient | None = None
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retry_budget_s = retry_budget_s
        # initial * 2^n plus up to ``initial`` of jitter, capped: retries of many calls that
        # failed together spread out instead of hitting Stripe again in step
        self.backoff = wait_exponential_jitter(
            multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s
        )
        # refusals are answers: they say nothing about Stripe being down, so they never
        # count towards opening the circuit
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold,
            default_ttl=breaker_ttl_s,
            exclude=[(stripe.StripeError, lambda e: not is_retryable(e))],
        )
        self.stats = CallStats()
        self._state = "closed"

    def breaker_state(self) -> str:
        return self._state

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            # one keep-alive pool per process, as many connections as calls in flight
            self._http = stripe.AIOHTTPClient(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.pool_size, keepalive_timeout=30),
            )
            base = self.settings.api_base
            self._client = stripe.StripeClient(
                self.settings.api_key,
                base_addresses={"api": base} if base else None,
                http_client=self._http,
                max_network_retries=0,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (on the loop that used them)."""
        if self._http is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]
            self._http = self._client = None

    async def _post(self, path: str, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        """POST through the SDK (auth, idempotency key, errors raised as stripe.StripeError);
        the answer as the SDK parsed it."""
        opts = {} if key is None else {"idempotency_key": key}
        resp = await self.client.raw_request_async("post", path, **params, **opts)
        data: dict[str, Any] = resp.data
        return data

    async def _call(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        span = observability.TRACING.child(f"stripe.{op}")  # None unless in a traced batch
        try:
            result = await self._guarded(op, fn)
        except ProviderUnavailable:
            self.stats.outcome(op, "unavailable", time.monotonic() - started)
            raise
        except ProviderRefused:
            self.stats.outcome(op, "refused", time.monotonic() - started)
            raise
        finally:
            if span is not None:
                span.end()
        self.stats.outcome(op, "ok", time.monotonic() - started)
        return result

    async def _guarded(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        breaker = await self.breakers.get_breaker(CIRCUIT)
        try:
            async with breaker:
                try:
                    return await self._retried(op, fn)
                finally:
                    self._state = str(breaker.context.state)
        except OpenedState as exc:
            self._state = "opened"
            raise ProviderUnavailable(f"stripe circuit open: {exc}") from exc
        except stripe.StripeError as exc:
            if is_retryable(exc):
                raise ProviderUnavailable(f"stripe {op}: {exc}") from exc
            raise ProviderRefused(f"stripe {op}: {exc.code or ''} {exc}") from exc
        except TimeoutError as exc:
            raise ProviderUnavailable(f"stripe {op}: timed out") from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"stripe {op}: {exc!r}") from exc

    async def _retried(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        self.client  # noqa: B018 (the pool is made here, outside the call's timeout)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            wait=self.backoff,
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.retry_budget_s),
            reraise=True,
        ):
            with attempt:
                self.stats.attempt(op)
                async with asyncio.timeout(self.timeout_s):
                    return await fn()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def create_intent(self, req: IntentRequest) -> Intent:
        params: dict[str, Any] = {
            "amount": req.amount_cents,
            "currency": req.currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "metadata": {
                "order_id": str(req.order_id),
                "user_id": str(req.user_id),
                "sale_id": "" if req.sale_id is None else str(req.sale_id),
            },
        }
        pi = await self._call(
            "create_intent",
            lambda: self._post("/v1/payment_intents", params, req.idempotency_key),
        )
        return Intent(
            ref=pi["id"], client_secret=pi.get("client_secret") or "", status=pi["status"]
        )

    async def refund(
        self, ref: str, amount_cents: int, idempotency_key: str, metadata: dict[str, str]
    ) -> RefundResult:
        params: dict[str, Any] = {
            "payment_intent": ref,
            "amount": amount_cents,
            "metadata": metadata,
        }
        r = await self._call("refund", lambda: self._post("/v1/refunds", params, idempotency_key))
        return RefundResult(ref=r["id"], amount_cents=amount_cents, status=r.get("status") or "")

    async def cancel_intent(self, ref: str, idempotency_key: str) -> CancelResult:
        """Cancel an intent as abandoned: the request of the SDK's
        ``PaymentIntentService.cancel_async`` (its path, the id quoted as it quotes it),
        read as a dict like the others. The refusal because the intent moved on is caught
        inside the retried call, so neither tenacity nor the breaker counts it as a failure."""
        path = f"/v1/payment_intents/{urllib.parse.quote_plus(ref)}/cancel"
        params: dict[str, Any] = {"cancellation_reason": "abandoned"}

        async def cancel() -> CancelResult:
            try:
                pi = await self._post(path, params, idempotency_key)
            except stripe.InvalidRequestError as exc:
                if exc.code != UNEXPECTED_STATE:
                    raise
                # Stripe sends the intent with the error: its status says where it went
                found = None if exc.error is None else exc.error.payment_intent
                return CancelResult(False, str(getattr(found, "status", None) or ""))
            # a 2xx is the cancellation (stripe-mock answers it with a canned status)
            return CancelResult(True, str(pi.get("status") or ""))

        return await self._call("cancel_intent", cancel)

    async def confirm_test(self, ref: str, payment_method: str) -> str:
        pi = await self._call(
            "confirm",
            lambda: self._post(
                f"/v1/payment_intents/{ref}/confirm", {"payment_method": payment_method}, None
            ),
        )
        return str(pi["status"])
