"""The Limiter: settings shared by an app's limits, the makers of its
limits, and its calls to Redis (timeout, breaker, fail modes). Its calls
about policies kept in the server are in policycalls.py, its start-up
(init_app, check_server) in startup.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._breaker import (
    MISCONFIGURED,
    POOL_EXHAUSTED,
    CircuitBreaker,
    LimiterUnavailable,
    unavailable,
    within,
)
from .._core import (
    Arg,
    RateLimiterMisconfigured,
    located,
    misconfigured,
)
from .._durations import Duration
from .._pool import PoolGate
from ..client import AsyncRateLimiter
from ..policies.sync import Policies
from ..testing import Clock
from . import policycalls, startup
from .concurrency import ConcurrencyLimit
from .denycache import DenyCache
from .headers import (
    Denied,
    DeniedHandler,
    Misconfigured,
    Unavailable,
)
from .keys import (
    CostFunc,
    KeyFunc,
    _resolve,
    by_ip,
)
from .rules import (
    E,
    LimitsArg,
    RateLimit,
)
from .transport import Command, Transport, transport_for, with_clock
from .waiting import Waiting
from .websocket import MessageDeniedHandler, WebSocketLimit

if TYPE_CHECKING:
    from .metrics import Metrics, RuleMetrics

log = logging.getLogger("redis_ratelimit")


T = TypeVar("T")


class Limiter:
    """Settings and state shared by an app's limits.

    redis            a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster
    prefix           of every key
    enabled          False: every limit lets everything through (tests, dev)
    fail_open        Redis unreachable or slower than `timeout`: serve the
                     request (True) or answer 503 (False). Never for a Redis
                     that answers but cannot rate-limit (no module, NOPERM,
                     a key of another type): 503, logged at ERROR
    serve_misconfigured
                     True: such a server's checks serve the request without
                     limits instead (still logged at ERROR); an explicit
                     opt-out, for a limit that is only nice to have
    timeout          seconds Redis may take to answer a check before the fail
                     mode applies (the wait for a free pooled connection
                     comes first and is not counted; a pool still busy after
                     its own timeout is answered 503 even failing open)
    trusted_proxies  reverse proxies in front that append X-Forwarded-For
    headers          "both", "ietf" (RateLimit, RateLimit-Policy), "x"
                     (X-RateLimit-*) or None
    deny_cache       identities kept denied locally, at most (0: none)
    on_denied        (request, Denied) -> Response: your own 429 (default:
                     JSON {"detail": ...} with the headers)
    key              the default key function (by_ip)
    breaker          a CircuitBreaker (the default: CircuitBreaker(5, 5.0)):
                     after 5 consecutive failures Redis is not asked for 5 s,
                     every check takes the fail mode at once; False: none
    pipelining       checks, lease calls go down one connection of their own,
                     pipelined (a standalone redis.asyncio.Redis over TCP or
                     a unix socket, without TLS); False, or any other
                     client: through redis-py's pool
    policies         a Policies: the app's limits kept in the server, used as
                     "policy:<name>"; `await limiter.sync_policies()` at
                     start-up defines them (as its `sync` says; "verify"
                     only checks them, for a Redis user who may not write
                     them), a call finding one missing defines them again
                     and is retried once, and the headers take each
                     policy's window from the definition in force
    log_interval     seconds between two warnings of one kind, at least
                     (and between two ERRORs of one kind of misconfiguration)
    max_waiting      requests waiting for a slot (limits with wait=) at
                     once, at most; one more is answered 429 at once
    clock            tests: a redis_ratelimit.testing.FakeClock; every
                     decision, refund and acquire is made at its time (AT)
                     and the deny cache counts on it (use_clock() sets it
                     later, on an app's own limiter)
    metrics          True: Prometheus metrics in prometheus_client's default
                     registry, or a CollectorRegistry to register them in
                     (pip install 'redis-ratelimit[prometheus]'; see
                     redis_ratelimit.fastapi.metrics); False: none, at no cost

    `failures` counts the failed checks by kind (UNREACHABLE, CIRCUIT_OPEN,
    POOL_EXHAUSTED, ERROR_REPLY, MISCONFIGURED), whatever was logged.
    `waits` counts what became of the requests that could wait (served,
    timed-out, beyond, full, gone); `waiting.now` is how many wait now.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "rl",
        enabled: bool = True,
        fail_open: bool = True,
        timeout: float = 0.5,
        trusted_proxies: int = 0,
        headers: str | None = "both",
        deny_cache: int = 10_000,
        on_denied: DeniedHandler | None = None,
        key: KeyFunc = by_ip,
        breaker: CircuitBreaker | bool = True,
        pipelining: bool = True,
        policies: Policies | None = None,
        log_interval: float = 10.0,
        serve_misconfigured: bool = False,
        max_waiting: int = 100,
        clock: Clock | None = None,
        metrics: Any = False,
    ) -> None:
        if headers not in ("both", "ietf", "x", None):
            raise ValueError(f"headers must be 'both', 'ietf', 'x' or None, not {headers!r}")
        self.client = AsyncRateLimiter(redis)
        self.prefix = prefix
        self.enabled = enabled
        self.fail_open = fail_open
        self.timeout = timeout
        self.trusted_proxies = trusted_proxies
        self.headers = headers
        self.deny_cache = DenyCache(deny_cache)
        self.on_denied = on_denied
        self.key = key
        self._exempt: set[Callable[..., Any]] = set()
        self.middleware_limits = False  # a RateLimitMiddleware applies default limits
        if breaker is True:
            breaker = CircuitBreaker()
        self.breaker: CircuitBreaker | None = breaker or None
        # The one choice of connection: every call below goes through it.
        self.transport: Transport = transport_for(self.client, timeout, pipelining)
        self._gate = PoolGate.for_client(redis)  # calls through redis-py's pool queue here
        self._last_warning: dict[str, float] = {}
        self._reported: dict[str, tuple[float, int]] = {}  # ERRORs: (last, left out since)
        self.policies = policies
        self.log_interval = log_interval
        self.serve_misconfigured = serve_misconfigured
        self.failures: Counter[str] = Counter()
        self.checked = False  # check_server() has found the module
        self.metrics: Metrics | None = None
        if metrics is not False and metrics is not None:
            from .metrics import Metrics, Timed

            self.metrics = Metrics(self, None if metrics is True else metrics)
            self.transport = Timed(self.transport, self.metrics.observe)
        self.waiting = Waiting(max_waiting)
        self.clock: Clock | None = None
        self.heartbeat_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        if clock is not None:
            self.use_clock(clock)

    def use_clock(self, clock: Clock | None) -> None:
        """Decides at `clock`'s time from now on (tests: a FakeClock, see
        redis_ratelimit.testing): AT on every decision, refund and lease
        command, the deny cache and a lease's heartbeat on its time too.
        None: the server's clock again, and the path without a clock as it
        was."""
        self.transport = with_clock(self.transport, clock)
        self.deny_cache.use_clock(time.monotonic if clock is None else clock.time)
        # A lease's heartbeat waits for such a clock to move (FakeClock.wait)
        # rather than moving it: it runs beside a test, not for it.
        clock_wait = getattr(clock, "wait", None)
        self.heartbeat_sleep = asyncio.sleep if clock_wait is None else clock_wait
        # wait=: a clock that can sleep (a FakeClock) takes the naps too, so
        # a waiting route's test moves its time instead of sleeping.
        fake_sleep = getattr(clock, "sleep", None)
        if clock is not None and fake_sleep is not None:
            self.waiting.sleep, self.waiting.clock = fake_sleep, clock.time
        else:
            self.waiting.sleep, self.waiting.clock = asyncio.sleep, time.monotonic
        self.client.use_clock(clock)
        self.clock = clock

    @property
    def waits(self) -> Counter[str]:
        """What became of the requests that could wait, by kind."""
        return self.waiting.counts

    # -- building blocks

    def limit(
        self,
        limits: LimitsArg,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
        wait: Duration | None = None,
    ) -> RateLimit:
        """A dependency enforcing `limits` (see RateLimit)."""
        return RateLimit(self, limits, algorithm=algorithm, key=key, cost=cost, burst=burst,
                         scope=scope, penalty=penalty, shadow=shadow, wait=wait)  # fmt: skip

    def limited(
        self,
        limits: LimitsArg,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int | CostFunc = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
        wait: Duration | None = None,
    ) -> Callable[[E], E]:
        """A decorator enforcing `limits` on an endpoint (RateLimit.wrap):
        limit()'s check without the cost of a FastAPI dependency.

            @app.get("/search")
            @limiter.limited("100/minute")
            async def search(q: str): ..."""
        return self.limit(limits, algorithm=algorithm, key=key, cost=cost, burst=burst,
                          scope=scope, penalty=penalty, shadow=shadow, wait=wait).wrap  # fmt: skip

    def websocket(
        self,
        connect: LimitsArg | None = None,
        message: LimitsArg | None = None,
        *,
        algorithm: str | Sequence[str] = "sliding",
        key: KeyFunc | None = None,
        cost: int = 1,
        burst: int | Sequence[int | None] | None = None,
        scope: str | None = None,
        penalty: Duration | None = None,
        deny: str = "response",
        on_denied: MessageDeniedHandler | None = None,
        wait: Duration | None = None,
    ) -> WebSocketLimit:
        """Limits on a WebSocket route: on accepting a connection and per
        message (see WebSocketLimit).

            ws_limit = limiter.websocket(connect="10/minute", message="5/second")"""
        return WebSocketLimit(self, connect, message, algorithm=algorithm, key=key, cost=cost,
                              burst=burst, scope=scope, penalty=penalty, deny=deny,
                              on_denied=on_denied, wait=wait)  # fmt: skip

    def concurrency(
        self,
        limit: int,
        *,
        ttl: Duration = 30,
        key: KeyFunc | None = None,
        scope: str | None = None,
        name: str = "inflight",
        heartbeat: bool = True,
    ) -> ConcurrencyLimit:
        """A dependency holding one of `limit` slots for the request (see
        ConcurrencyLimit)."""
        return ConcurrencyLimit(self, limit, ttl=ttl, key=key, scope=scope, name=name,
                                heartbeat=heartbeat)  # fmt: skip

    def exempt(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: the middleware's default limits skip this endpoint."""
        self._exempt.add(endpoint)
        return endpoint

    def is_exempt(self, endpoint: Any) -> bool:
        return endpoint in self._exempt

    def has_exempt_endpoints(self) -> bool:
        return bool(self._exempt)

    def init_app(self, app: Any, *, freeze_gc: bool = True, check_server: bool = True) -> None:
        """Registers the 429/503 handlers (on_denied) and documents the 429
        and 503 responses with their headers in the app's OpenAPI schema on
        every route with a limit (all routes when the middleware is used).

        check_server  at the start of the app's lifespan, check_server():
                   a Redis without the module (every master of a cluster)
                   stops the app from starting (ModuleNotLoaded); one that
                   cannot be reached is only logged. False: no check.

        freeze_gc  tune the garbage collector for requests that wait:
                   widen_young_generation() now, and once the app's
                   lifespan startup is done, collect the garbage and
                   gc.freeze() what is left (see freeze_heap), so that
                   full collections no longer walk the app's own objects.
                   False: leave the collector alone."""
        startup.init_app(self, app, freeze_gc=freeze_gc, check_server=check_server)

    async def denied_response(self, request: Request, exc: Denied) -> Response:
        if self.on_denied is not None:
            response: Response = await _resolve(self.on_denied(request, exc))
            for k, v in (exc.headers or {}).items():
                response.headers.setdefault(k, v)
            return response
        return JSONResponse({"detail": exc.detail}, status_code=429, headers=exc.headers)

    # -- asking Redis

    def server(self, key: str | None = None) -> str | None:
        """The address this limiter's call about `key` goes to (None when
        unknown: a cluster without a key)."""
        return self.transport.address(key)

    async def check_server(self) -> bool:
        """Checks that the server has the ratelimit module (COMMAND INFO
        RL.FIXED, on every master of a cluster), within the timeout.
        init_app's start-up runs it. True when it has; raises ModuleNotLoaded
        (after logging it at ERROR) when it has not. False when the check
        could not run: Redis unreachable (the fail mode applies until it
        answers, and its first reply to a check tells: without the module,
        503 and an ERROR), or the ACL user may not run COMMAND INFO (grant
        +command|info); both are logged as a warning."""
        return await startup.check_server(self)

    def _refuse_to_start(self, wrong: RateLimiterMisconfigured) -> None:
        self.failures[MISCONFIGURED] += 1
        log.error("rate limiter misconfigured (%s), refusing to start: %s", wrong.reason, wrong)

    async def call(self, fn: Callable[[], Awaitable[T]], *, timed: bool = False) -> T:
        """await fn() (a Redis call) within the timeout, through the
        breaker: every call of the limiter but run()'s common case (a
        command in RESP on the pipelined connection, the breaker closed).
        Raises LimiterUnavailable when Redis
        cannot answer. The wait for a free pooled connection comes first,
        outside the timeout (PoolGate). `timed`: fn keeps its own time and
        takes no pooled connection (the pipelined transport)."""
        gate = None if timed else self._gate
        if gate is not None:
            async with gate:
                return await self._guarded(fn, None if timed else self.timeout)
        return await self._guarded(fn, None if timed else self.timeout)

    async def settle(self, fn: Callable[[], Awaitable[T]], *, timed: bool = False) -> T:
        """call(fn) for a call the request does not wait on and whose loss
        costs the caller (a refund, a lease's release): sent again, once,
        when the connection it went down turns out closed (ConnectionError:
        a Redis restarted under redis-py's idle pooled connections, which
        fail once each where the pipelined connection reconnects), within
        the same timeout, as one call for the breaker. Not after a
        timeout: a call that timed out may yet run. (A connection lost
        after Redis ran the call, its reply on the way, is the rare case
        where a refund goes twice: RL.REFUND never gives back more than
        was spent.)"""

        async def again_on_reconnect() -> T:
            try:
                return await fn()
            except RedisConnectionError:
                return await fn()

        return await self.call(again_on_reconnect, timed=timed)

    async def _guarded(self, fn: Callable[[], Awaitable[T]], timeout: float | None) -> T:
        if self.breaker is not None:
            return await self.breaker.call(fn, timeout)
        try:
            return await (fn() if timeout is None else within(fn, timeout))
        except Exception as e:
            err = self.failure(e)
            if err is e:  # not about Redis
                raise
            raise err from e

    def failure(self, error: Exception) -> Exception:
        """What a failed Redis call means (the breaker counting it): the
        LimiterUnavailable to raise, or the error itself when it is not
        about Redis."""
        breaker = self.breaker
        if breaker is not None:
            return breaker.failure(error)
        return unavailable(error) or error

    async def execute(self, args: Command) -> Any:
        """One command's reply, through the transport, within the timeout
        and the breaker. Raises LimiterUnavailable when Redis cannot
        answer. (In RESP only to a transport that takes it.)"""
        transport = self.transport
        return await self.call(lambda: transport.send(args), timed=transport.timed)

    async def ask(self, fn: Callable[[], Awaitable[T]]) -> T | None:
        """fn()'s result, or None when Redis cannot answer (within the
        timeout, the breaker closed) and the limiter fails open; raises
        Unavailable (503) when failing closed."""
        try:
            return await self.call(fn)
        except LimiterUnavailable as e:
            self._fail_mode(e)
            return None

    async def run(
        self, args: Command, key: str | None = None, rule: RuleMetrics | None = None
    ) -> Any:
        """execute(args), or None for the fail mode as ask() (`key`: the
        call's, for the messages; `rule`: its rule's metrics): every check's
        call. A command in RESP (only to a transport that takes it) is
        queued on the pipelined connection and its reply awaited in this
        frame, while the breaker is closed: what call() would do with it
        then (the connection keeps its own time), without its coroutines
        in between; what a failure means is failed(), as in call()."""
        breaker = self.breaker
        if type(args) is bytes and (breaker is None or breaker.closed):
            fut = self.transport.submit(args)  # None: not connected yet
            if fut is not None:
                try:
                    reply = await fut
                except Exception as e:
                    self.failed(e, key, rule)
                    return None
                if breaker is not None:
                    breaker.success()
                return reply
        try:
            return await self.execute(args)
        except LimiterUnavailable as e:
            self._fail_mode(e, key, rule)
            return None

    def failed(
        self, error: Exception, key: str | None = None, rule: RuleMetrics | None = None
    ) -> None:
        """The fail mode of a call that raised `error` outside call()
        (run()'s common case): returns (serving without limits) or raises Unavailable
        or Misconfigured; an error not about Redis is raised again."""
        err = self.failure(error)
        if not isinstance(err, LimiterUnavailable):
            raise err
        self._fail_mode(err, key, rule)

    def _fail_mode(
        self, e: LimiterUnavailable, key: str | None = None, rule: RuleMetrics | None = None
    ) -> None:
        self.failures[e.kind] += 1
        if self.metrics is not None:
            self._count_failure(e, rule or self.metrics.unruled)
        if e.kind == MISCONFIGURED:
            # Redis answered: not an outage, never failed open by default.
            wrong = self.explain(e, key)
            serving = self.serve_misconfigured
            self.report(wrong, "serving without limits (serve_misconfigured=True)" if serving
                        else "answering 503")  # fmt: skip
            if not serving:
                raise Misconfigured(wrong) from None
            return
        # A pool with no free connection is the app's own congestion, not
        # Redis down: failing open would let a burst through. Always 503.
        fail_open = self.fail_open and e.kind != POOL_EXHAUSTED
        mode = "serving without limits" if fail_open else "answering 503"
        self.warn(e.kind, "rate limiter unavailable (%s), %s: %s", e.kind, mode, e)
        if not fail_open:
            raise Unavailable() from None

    def _count_failure(self, e: LimiterUnavailable, rule: RuleMetrics) -> None:
        if e.kind == MISCONFIGURED:
            rule.misconfigured()
        elif self.fail_open and e.kind != POOL_EXHAUSTED:
            rule.failed_open()
        else:
            rule.failed_closed()

    def explain(self, e: LimiterUnavailable, key: str | None = None) -> RateLimiterMisconfigured:
        """The RateLimiterMisconfigured of a MISCONFIGURED failure, naming
        the server and the key."""
        wrong = e.misconfigured or misconfigured(e) or RateLimiterMisconfigured(
            str(e), "module-not-loaded")  # fmt: skip
        return located(wrong, self.server(key), key)

    def report(self, wrong: RateLimiterMisconfigured, consequence: str = "") -> None:
        """Logs a misconfiguration at ERROR: at most one per kind per
        `log_interval` s, saying how many were left out since (apart from
        the outages' warnings)."""
        kind = wrong.reason
        now = time.monotonic()
        last, left_out = self._reported.get(kind, (-1e9, 0))
        if now - last <= self.log_interval:
            self._reported[kind] = (last, left_out + 1)
            return
        self._reported[kind] = (now, 0)
        more = f" ({left_out} more since the last report)" if left_out else ""
        log.error("rate limiter misconfigured (%s)%s: %s%s", kind,
                  ", " + consequence if consequence else "", wrong, more)  # fmt: skip

    def _lost(self, e: LimiterUnavailable, what: str, message: str, *args: Any,
              key: str | None = None) -> None:  # fmt: skip
        """A call the request does not wait on failed (a refund, a lease's
        release or renewal, a policy read): a warning, or the ERROR of a
        misconfiguration."""
        self.failures[e.kind] += 1
        if e.kind == MISCONFIGURED:
            self.report(self.explain(e, key), what)
        else:
            self.warn(f"{what}:{e.kind}", message, *args)

    # -- policies kept in the server

    async def sync_policies(self) -> dict[str, str]:
        """Defines the Limiter's policies in the server as their `sync`
        says (Policies.sync), through the timeout and the breaker. Returns
        what became of each; raises LimiterUnavailable when Redis cannot
        answer (then the first call finding a policy missing defines it),
        RateLimiterMisconfigured (ModuleNotLoaded, NOPERM, ...) when it
        answers but cannot hold them, PoliciesNotSynced when they are not
        as the app defines them and the app may not (sync="verify") or
        cannot (its Redis user lacks +rl.policy|set) define them: a
        configuration error, which an `except LimiterUnavailable` does
        not swallow, logged at ERROR."""
        return await policycalls.sync_policies(self)

    async def run_policies(
        self,
        args: Sequence[Arg],
        names: Sequence[str],
        key: str | None = None,
        rule: RuleMetrics | None = None,
    ) -> Any:
        """run(args) for a call using these policies (short names): their
        definitions due for a refresh are read at the same time, and a call
        answered `no such policy` did nothing: it is sent again, once,
        after the policies are defined again (not with sync off). When they
        stay missing (sync="verify", or a Redis user who may not define
        them) it is a misconfiguration: 503 and an ERROR naming them."""
        return await policycalls.run_policies(self, args, names, key, rule)

    def close(self) -> None:
        """Closes the pipelined connection (the redis client is yours)."""
        self.transport.close()

    def warn(self, kind: str, message: str, *args: Any) -> None:
        """Logs a warning, at most one of each kind per `log_interval` s."""
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) > self.log_interval:
            self._last_warning[kind] = now
            log.warning(message, *args)
