"""Prometheus metrics (pip install 'redis-ratelimit[prometheus]'):
Limiter(..., metrics=True) registers them in prometheus_client's default
registry, Limiter(..., metrics=registry) in yours; serve them with
metrics_app(limiter, authorize=...) mounted at /metrics (the registry's
exposition, behind the app's check of who may scrape it).

    redis_ratelimit_decisions_total{rule, outcome}
        outcome: allowed, denied (by Redis), denied_cache (from the deny
        cache, Redis not asked), shadow (decided by a SHADOW rule: served;
        the module answers a shadow denial as allowed, so which of these it
        would have denied is counted by the server: INFO ratelimit's
        *_shadow_denied, the dashboard), failed_open, failed_closed,
        misconfigured
    redis_ratelimit_redis_call_duration_seconds
        the limiter's calls to Redis, from queued to answered (a histogram)
    redis_ratelimit_breaker_state{state}
        1 for the breaker's state (closed, open, half-open), 0 for the others
    redis_ratelimit_deny_cache_entries, redis_ratelimit_deny_cache_hits_total
    redis_ratelimit_waits_total{outcome}, redis_ratelimit_waiting
        the requests of limits with wait= by what became of them (served,
        timed-out, beyond, full, gone), and how many wait now

`rule` is the rule's scope when it has one, else its limits as written
("100/minute", "policy:free") or the name of the function choosing them;
"-" for the calls of no rule (leases, refunds): label values come from the
app's code, never from a request, so their number stays bounded.

The counters' children are bound once per rule: the hot path pays one
attribute check without metrics, one bound call per decision with them.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_asgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp

from .._core import Arg, Limit
from .._durations import Duration
from .guard import Authorize, guarded
from .transport import Command, Transport
from .waiting import BEYOND, FULL, GONE, SERVED, TIMED_OUT

if TYPE_CHECKING:
    from .limiter import Limiter

OUTCOMES = (
    "allowed",
    "denied",
    "denied_cache",
    "shadow",
    "failed_open",
    "failed_closed",
    "misconfigured",
)

# Seconds: a loopback call takes ~0.1 ms, the default timeout is 0.5 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)  # fmt: skip

BREAKER_STATES = ("closed", "open", "half-open")

WAIT_OUTCOMES = (SERVED, TIMED_OUT, BEYOND, FULL, GONE)


class RuleMetrics:
    """One rule's counters, bound: call `allowed()`, `denied()`..."""

    def __init__(self, decisions: Counter, rule: str, shadow: bool) -> None:
        def inc(outcome: str) -> Callable[[], None]:
            child = decisions.labels(rule=rule, outcome=outcome)
            bound: Callable[[], None] = child.inc
            return bound

        self.allowed = inc("shadow" if shadow else "allowed")
        self.denied = inc("denied")
        self.denied_cache = inc("denied_cache")
        self.failed_open = inc("failed_open")
        self.failed_closed = inc("failed_closed")
        self.misconfigured = inc("misconfigured")


class _State(Collector):
    """What is read when scraped: the breakers' states, the deny caches'
    sizes and hits (summed over the registry's limiters)."""

    def __init__(self) -> None:
        self.limiters: weakref.WeakSet[Limiter] = weakref.WeakSet()

    def collect(self) -> Iterator[Any]:
        limiters = list(self.limiters)
        state = GaugeMetricFamily("redis_ratelimit_breaker_state",
                                  "The circuit breaker's state: 1 for the current one",
                                  labels=["state"])  # fmt: skip
        states = [lim.breaker.state for lim in limiters if lim.breaker is not None]
        for s in BREAKER_STATES:
            state.add_metric([s], sum(1 for x in states if x == s))
        yield state
        yield GaugeMetricFamily("redis_ratelimit_deny_cache_entries",
                                "Identities held denied locally by the deny cache",
                                value=sum(len(lim.deny_cache) for lim in limiters))  # fmt: skip
        yield CounterMetricFamily("redis_ratelimit_deny_cache_hits",
                                  "Checks answered from the deny cache, without Redis",
                                  value=sum(lim.deny_cache.hits for lim in limiters))  # fmt: skip
        waits = CounterMetricFamily("redis_ratelimit_waits",
                                    "Requests that could wait for a slot (wait=), by outcome",
                                    labels=["outcome"])  # fmt: skip
        for outcome in WAIT_OUTCOMES:
            waits.add_metric([outcome], sum(lim.waits[outcome] for lim in limiters))
        yield waits
        yield GaugeMetricFamily("redis_ratelimit_waiting",
                                "Requests waiting for a slot now (wait=)",
                                value=sum(lim.waiting.now for lim in limiters))  # fmt: skip

    def describe(self) -> Iterator[Any]:
        return iter(())


class _Families:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter("redis_ratelimit_decisions",
                                 "Rate-limit decisions by rule and outcome",
                                 ["rule", "outcome"], registry=registry)  # fmt: skip
        self.latency = Histogram("redis_ratelimit_redis_call_duration_seconds",
                                 "The limiter's calls to Redis, from queued to answered",
                                 buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.state = _State()
        registry.register(self.state)


# One set of metrics per registry, shared by its limiters (several
# limiters in one process would otherwise register the same names twice).
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


def metrics_app(limiter: Limiter, *, authorize: Authorize | None) -> ASGIApp:
    """limiter.metrics.app(authorize=...), for a limiter made with metrics
    on (a limiter without them is a mistake to report at start-up, not a
    /metrics that serves nothing)."""
    if limiter.metrics is None:
        raise ValueError("metrics_app: this Limiter has no metrics (make it with metrics=True)")
    return limiter.metrics.app(authorize=authorize)


class Metrics:
    """A Limiter's metrics (Limiter.metrics)."""

    def __init__(self, limiter: Limiter, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        families = _FAMILIES.get(registry)
        if families is None:
            families = _FAMILIES[registry] = _Families(registry)
        families.state.limiters.add(limiter)
        self.registry = registry
        self._families = families
        self.observe: Callable[[float], None] = families.latency.observe
        self.unruled = self.rule("-")

    def app(self, *, authorize: Authorize | None) -> ASGIApp:
        """The registry's exposition as an ASGI app to mount (at /metrics),
        served to the requests `authorize` lets through (see
        redis_ratelimit.fastapi.guard; None: to everyone, for a port only
        Prometheus reaches)."""
        return guarded(make_asgi_app(self.registry), authorize)

    def rule(self, name: str, shadow: bool = False) -> RuleMetrics:
        return RuleMetrics(self._families.decisions, name, shadow)

    def latency(self) -> dict[str, Any]:
        """The latency histogram now: count, sum (s), cumulative buckets
        [[upper bound (s), calls], ...] (the last bound +Inf as None)."""
        out: dict[str, Any] = {"count": 0, "sum": 0.0, "buckets": []}
        for family in self._families.latency.collect():
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    out["count"] = int(sample.value)
                elif sample.name.endswith("_sum"):
                    out["sum"] = sample.value
                elif sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    out["buckets"].append([le if le != float("inf") else None, int(sample.value)])
        return out

    def decisions(self) -> dict[str, dict[str, int]]:
        """{rule: {outcome: decisions}} (every limiter of the registry)."""
        out: dict[str, dict[str, int]] = {}
        for family in self._families.decisions.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    rule, outcome = sample.labels["rule"], sample.labels["outcome"]
                    out.setdefault(rule, {})[outcome] = int(sample.value)
        return out


class Timed(Transport):
    """A transport timing every call of another (the histogram)."""

    def __init__(self, inner: Transport, observe: Callable[[float], None]) -> None:
        self.inner = inner
        self.takes_resp = inner.takes_resp
        self.timed = inner.timed
        self._observe = observe

    def __getattr__(self, name: str) -> Any:  # the inner transport's own (fast, client...)
        return getattr(self.inner, name)

    def address(self, key: str | None = None) -> str | None:
        return self.inner.address(key)

    def submit(self, command: bytes) -> Awaitable[Any] | None:
        fut = self.inner.submit(command)
        if fut is not None:
            start = time.perf_counter()
            observe = self._observe
            fut.add_done_callback(lambda _: observe(time.perf_counter() - start))  # type: ignore[attr-defined]
        return fut

    async def _time(self, aw: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return await aw
        finally:
            self._observe(time.perf_counter() - start)

    def send(self, args: Command) -> Awaitable[Any]:
        return self._time(self.inner.send(args))

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        replies: list[Any] = await self._time(self.inner.send_many(commands))
        return replies

    async def policy_get(self, name: str) -> Any:
        return await self._time(self.inner.policy_get(name))

    async def policy_set(
        self, name: str, limit: Limit, penalty: Duration | None, shadow: bool
    ) -> None:
        await self._time(self.inner.policy_set(name, limit, penalty, shadow))

    async def check_module(self) -> None:
        await self._time(self.inner.check_module())

    def close(self) -> None:
        self.inner.close()


__all__ = ["OUTCOMES", "Metrics", "RuleMetrics", "Timed"]
