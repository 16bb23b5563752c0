"""Rate limits (RateLimit): the plan of a request's check, the check itself
(the hot path), and the decorator form (Limiter.limited)."""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .._breaker import (
    LimiterUnavailable,
)
from .._core import ALGORITHMS as ALGORITHMS  # rules.ALGORITHMS, as before
from .._core import (
    Arg,
    Decision,
    Limit,
    Policy,
    find_algorithm,
)
from .._durations import Duration, Rate, check_amount, duration_arg, parse_rates
from .._fast import encode_args, encode_int, encode_str
from .bounded import Bounded
from .concurrency import ConcurrencyLimit
from .headers import (
    _RATE_LIMITS,
    Denied,
    Outcome,
    Quota,
    _header_dict,
    _put_headers,
    _record,
)
from .keys import (
    CostFunc,
    KeyFunc,
    _key_base,
    _resolve,
)
from .labels import rule_name
from .policycalls import read_policies, run_policies
from .transport import Command
from .waiting import wait_seconds, waited

log = logging.getLogger("redis_ratelimit")

if TYPE_CHECKING:
    from .limiter import Limiter


LimitsArg: TypeAlias = "str | Sequence[Rate] | Callable[[Request], Any]"


_POLICY_PREFIX = "policy:"


E = TypeVar("E", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Plan:
    """What one request checks: (quota name, window seconds, Limit) each,
    and the command's arguments that do not depend on the request."""

    parts: tuple[tuple[str, int | None, Limit], ...]
    suffixes: tuple[str, ...]  # of the keys: ":" + the quota's name
    head: tuple[Arg, ...]  # before the keys: RL.<ALGO>, RL.CHECK <policy>, RL.ALL <n>
    middle: tuple[Arg, ...]  # after the keys: the limits' parameters
    # the same in RESP, "COST" after the parameters (for the pipelined connection)
    head_resp: bytes = b""
    middle_resp: bytes = b""
    # the short names of the policies it uses (kept in the server), worked
    # out once: every check asks
    policy_names: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_resp", encode_args(self.head))
        object.__setattr__(self, "middle_resp", encode_args((*self.middle, "COST")))
        names = tuple(n for n, _, spec in self.parts if isinstance(spec, Policy))
        object.__setattr__(self, "policy_names", names)

    @classmethod
    def of(cls, parts: tuple[tuple[str, int | None, Limit], ...]) -> _Plan:
        suffixes = tuple(":" + name for name, _, _ in parts)
        if len(parts) > 1:
            middle = tuple(a for _, _, spec in parts for a in spec.args())
            return cls(parts, suffixes, ("RL.ALL", len(parts)), middle)
        spec = parts[0][2]
        if isinstance(spec, Policy):
            return cls(parts, suffixes, ("RL.CHECK", spec.name), ())
        return cls(parts, suffixes, ("RL." + spec.algorithm,), tuple(spec.params()))

    def command(self, keys: list[str], cost: int, options: tuple[Arg, ...]) -> list[Arg]:
        return [*self.head, *keys, *self.middle, "COST", cost, *options]

    def resp(
        self, keys: list[str], cost: int, options: tuple[Arg, ...], options_resp: bytes
    ) -> bytes:
        """command() in RESP, from the parts encoded beforehand."""
        n = len(self.head) + len(keys) + len(self.middle) + 2 + len(options)
        encoded_keys = encode_str(keys[0]) if len(keys) == 1 else b"".join(map(encode_str, keys))
        return b"*%d\r\n%s%s%s%s%s" % (n, self.head_resp, encoded_keys, self.middle_resp,
                                        encode_int(cost), options_resp)  # fmt: skip


def _per_limit(value: Any, n: int, what: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: {len(value)} given for {n} limits")
        return list(value)
    return [value] * n


# keys, deny-cache key, the command at the default cost in RESP (b"": none)
_Target: TypeAlias = "tuple[list[str], str, Command]"


_TARGETS = 4096  # cached targets per rule, at most (then it starts over)
_PLANS = 1000  # cached plans of a dynamic rule's choices, at most (likewise)


_new = object.__new__


def _decision5(reply: list[Any]) -> Decision:
    """Decision.from_reply() of a five-field reply, for every check."""
    allowed, limit, remaining, retry, reset = reply
    d = _new(Decision)
    fields = d.__dict__
    fields["allowed"] = allowed == 1
    fields["limit"] = int(limit)
    fields["remaining"] = int(remaining)
    fields["retry_after_ms"] = int(retry)
    fields["reset_after_ms"] = int(reset)
    fields["lease_id"] = None
    fields["limits"] = ()
    return d


class RateLimit:
    """A dependency (and the middleware's engine) enforcing limits per key.

    limits     "100/minute;5000/day" (every one must allow: one RL.ALL), a
               list of Rate, "policy:<name>" for a policy kept in the
               server (RL.POLICY SET), or request -> any of these (may be
               async), e.g. a tier chosen per request; None: no limit
    algorithm  fixed | sliding | log | token | leaky | gcra, or one per rate
    key        request -> identity (by_ip, by_api_key, yours; may be async);
               None skips the limit for that request
    cost       an int, or request -> int (may be async); 0 only peeks
    burst      bucket algorithms: capacity (default: the rate's amount)
    scope      namespace of the keys (default: method and route path)
    penalty    a denied key is blocked that long (the module's PENALTY)
    shadow     decide and count, never deny (the module's SHADOW)
    wait       a denied request whose retry_after is within this bound
               (seconds, or "500ms", "2s") sleeps that long and asks
               again, for at most the bound in all, then 429; a LEAKY
               limit's request sleeps until its turn (beyond the bound:
               its place is given back, 429). At most the Limiter's
               max_waiting at once; one whose client goes away stops
    """

    def __init__(
        self,
        limiter: Limiter,
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
    ) -> None:
        self.limiter = limiter
        self.wait = None if wait is None else wait_seconds(wait)
        self.algorithm = algorithm
        self.burst = burst
        self.key = key
        self.cost = cost
        self.scope = scope
        self.penalty = None if penalty is None else duration_arg(penalty, "penalty")
        self.shadow = shadow
        self._peek_options: tuple[Arg, ...] = ("SHADOW",) if shadow else ()
        self._options = self._peek_options
        if self.penalty is not None:
            self._options = ("PENALTY", self.penalty, *self._options)
        self._options_resp = encode_args(self._options)
        self._peek_options_resp = encode_args(self._peek_options)
        self._static: _Plan | None = None
        # (identity, method, route path) -> the static plan's keys, their
        # deny-cache key and the command at the default cost: what every
        # check of a returning caller would build again.
        self._targets: Bounded[tuple[str, str, str], _Target] = Bounded(_TARGETS)
        self._dynamic: Callable[[Request], Any] | None = None
        self._plans: Bounded[Any, _Plan] = Bounded(_PLANS)
        if callable(limits):
            self._dynamic = limits
        else:
            self._static = self._plan(limits)
        if isinstance(cost, int) and (isinstance(cost, bool) or cost < 0):
            raise ValueError(f"cost must be a non-negative integer, not {cost!r}")
        # This rule's counters, bound once (None: the limiter has no metrics).
        metrics = limiter.metrics
        self._metrics = None if metrics is None else metrics.rule(rule_name(scope, limits), shadow)

    def _plan(self, limits: Any) -> _Plan:
        if isinstance(limits, str) and limits.startswith(_POLICY_PREFIX):
            # "policy:a" or several, "policy:a;policy:b" (one RL.ALL).
            names = [p.strip() for p in limits.split(";")]
            if not all(n.startswith(_POLICY_PREFIX) for n in names) or not 1 <= len(names) <= 64:
                raise ValueError(f"bad limits {limits!r}: 1 to 64 of 'policy:<name>', ';' apart")
            book = self.limiter.policies
            parts = []
            for n in (n[len(_POLICY_PREFIX) :] for n in names):
                server = book.server_name(n) if book is not None and n in book else n
                parts.append((n, None, Policy(server)))
            return _Plan.of(tuple(parts))
        rates = parse_rates(limits) if isinstance(limits, str) else list(limits)
        if not 1 <= len(rates) <= 64:
            raise ValueError("1 to 64 limits per RateLimit")
        algos = [
            find_algorithm(str(a).lower())
            for a in _per_limit(self.algorithm, len(rates), "algorithm")
        ]
        bursts = _per_limit(self.burst, len(rates), "burst")
        return _Plan.of(
            tuple(
                (r.name, r.seconds, a.of_rate(r.amount, f"{r.seconds}s", b))
                for r, a, b in zip(rates, algos, bursts, strict=True)
            )
        )

    async def plan(self, request: Request) -> _Plan | None:
        if self._static is not None:
            return self._static
        assert self._dynamic is not None
        chosen = await _resolve(self._dynamic(request))
        if chosen is None:
            return None
        cache_key = chosen if isinstance(chosen, str) else tuple(chosen)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._plans.put(cache_key, self._plan(chosen))
        return plan

    def _target_of(self, request: Request, ident: str, plan: _Plan) -> _Target:
        keys = self.keys(request, ident, plan)
        cache_key = keys[0] if len(keys) == 1 else "\0".join(keys)
        command: Command = b""  # only the pipelined connection sends RESP made here
        cost = self.cost
        if isinstance(cost, int) and self.limiter.transport.takes_resp and not plan.policy_names:
            command = self._command(plan, keys, cost)
        return keys, cache_key, command

    def _cached_target(self, request: Request, ident: str, plan: _Plan) -> _Target:
        """_target_of() the static plan, kept per identity, method and route
        path (per identity with a scope of its own): what every check of a
        returning caller would build again."""
        scope = request.scope
        if self.scope is not None:
            ck = (ident, "", "")
        else:
            path = getattr(scope.get("route"), "path", None)
            if path is None:
                return self._target_of(request, ident, plan)
            ck = (ident, scope.get("method", "WS"), path)
        target = self._targets.get(ck)
        if target is None:
            target = self._targets.put(ck, self._target_of(request, ident, plan))
        return target

    def _command(self, plan: _Plan, keys: list[str], cost: int) -> Command:
        """The check's command: in RESP when the transport takes it (not for
        policies: Limiter.run_policies), else its arguments."""
        options: tuple[Arg, ...]
        if cost > 0:
            options, options_resp = self._options, self._options_resp
        else:  # a peek: no penalty
            options, options_resp = self._peek_options, self._peek_options_resp
        if self.limiter.transport.takes_resp and not plan.policy_names:
            return plan.resp(keys, cost, options, options_resp)
        return plan.command(keys, cost, options)

    def keys(self, request: Request, ident: str, plan: _Plan) -> list[str]:
        base = _key_base(self.limiter.prefix, ident, self.scope, request)
        return [base + suffix for suffix in plan.suffixes]

    def _identity(self, request: Request) -> Any:
        """The key function's answer (an identity, None, or an awaitable of
        either); None when the limiter is disabled."""
        limiter = self.limiter
        if not limiter.enabled:
            return None
        scope = request.scope
        if "redis_ratelimit.limiter" not in scope:
            scope["redis_ratelimit.limiter"] = limiter
        return (self.key or limiter.key)(request)

    async def _target(self, request: Request) -> tuple[list[str], _Plan] | None:
        """This request's keys and plan; None when no limit applies."""
        ident = self._identity(request)
        if ident is not None and not isinstance(ident, str):
            ident = await _resolve(ident)
        if ident is None:
            return None
        plan = self._static or await self.plan(request)
        if plan is None:
            return None
        return self.keys(request, ident, plan), plan

    async def check(self, request: Request, cost: int | None = None) -> Outcome | None:
        """The decision for this request (one round trip, or none when the
        deny cache already knows the answer); None when no limit applies or
        Redis could not answer and the limiter fails open."""
        # The request's own work in plain functions, the awaits here only
        # when something may suspend: one coroutine per check (and
        # Limiter.run()'s).
        ident = self._identity(request)
        if ident is not None and not isinstance(ident, str):
            ident = await _resolve(ident)
        if ident is None:
            return None
        if cost is None:
            cost = self.cost if isinstance(self.cost, int) else await _resolve(self.cost(request))
        plan = self._static
        if plan is not None:
            keys, cache_key, command = self._cached_target(request, ident, plan)
        else:
            plan = await self.plan(request)
            if plan is None:
                return None
            keys, cache_key, command = self._target_of(request, ident, plan)
        limiter = self.limiter
        # Not for policies: an RL.POLICY SET applies to the next call.
        if cost > 0 and not plan.policy_names:
            cached = limiter.deny_cache.get(cache_key)
            if cached is not None:
                if self._metrics is not None:
                    self._metrics.denied_cache()
                left, outcome = cached
                was = outcome.decision
                ms = math.ceil(left * 1000)
                return Outcome(
                    Decision(False, was.limit, 0, ms, max(ms, was.reset_after_ms)),
                    outcome.quotas,
                    outcome.cap_retry,
                )
        if plan.policy_names:
            # With the definitions' reads, and a retry on 'no such policy'.
            args = plan.command(keys, cost, self._options if cost > 0 else self._peek_options)
            reply = await run_policies(limiter, args, plan.policy_names, keys[0], self._metrics)
        else:
            if not command or cost != self.cost or not limiter.transport.takes_resp:
                command = self._command(plan, keys, cost)
            reply = await limiter.run(command, keys[0], self._metrics)
        if reply is None:
            return None
        if type(reply) is list and len(reply) == 5:
            decision = _decision5(reply)
        else:
            decision = Decision.from_reply(reply)
        if plan.policy_names:
            await self._check_definitions(plan, decision)
        outcome = self._outcome(decision, plan)
        if not outcome.allowed and cost > 0 and not plan.policy_names:
            limiter.deny_cache.put(cache_key, outcome)
        m = self._metrics
        if m is not None and cost > 0:  # a peek decides nothing
            (m.allowed if decision.allowed else m.denied)()
        return outcome

    async def _check_definitions(self, plan: _Plan, d: Decision) -> None:
        """A limit other than the known definition's: the policy was
        changed; read it again (once per change) for the headers."""
        book = self.limiter.policies
        if book is None:
            return
        subs = d.limits or (d,)
        changed = [
            n
            for (n, _, spec), s in zip(plan.parts, subs, strict=True)
            if isinstance(spec, Policy) and n in book and s.limit != book.current(n).capacity
        ]
        if changed:
            await read_policies(self.limiter, changed)

    def _outcome(self, d: Decision, plan: _Plan) -> Outcome:
        parts = plan.parts
        # The usual case, without the dataclasses' __init__ (a policy's
        # window and penalty come from its definition, below).
        if len(parts) == 1 and not d.limits and not plan.policy_names:
            name, window, _ = parts[0]
            q = _new(Quota)
            fields = q.__dict__
            fields["name"] = name
            fields["window"] = window
            fields["decision"] = d
            fields["concurrent"] = False
            o = _new(Outcome)
            fields = o.__dict__
            fields["decision"] = d
            fields["quotas"] = (q,)
            fields["cap_retry"] = self.penalty is None
            return o
        subs = d.limits or (d,)
        book = self.limiter.policies
        windows = [
            book.current(n).window_s()
            if book is not None and isinstance(spec, Policy) and n in book
            else w
            for n, w, spec in plan.parts
        ]
        return Outcome(
            d,
            tuple(
                Quota(n, w, s) for (n, _, _), w, s in zip(plan.parts, windows, subs, strict=True)
            ),
            # A policy may carry a penalty the client does not know of.
            cap_retry=self.penalty is None and not plan.policy_names,
        )

    async def hit(
        self, request: Request, response: Response | None = None, cost: int | None = None
    ) -> Outcome | None:
        """Checks (spending `cost`, default the limit's), sets the headers
        on `response`, raises Denied (429) when a limit denies, or
        Unavailable (503) when failing closed."""
        outcome = await self.check(request, cost)
        if outcome is None:
            return None
        if self.wait is not None and self._waits(outcome):
            outcome = await waited(self, request, outcome, cost)
            if outcome is None:
                return None
        return self._answer(request, outcome, response)

    @staticmethod
    def _waits(outcome: Outcome) -> bool:
        """With wait=: a denied request waits, and a LEAKY limit's whose
        turn is later (allowed, with a retry_after)."""
        return not outcome.allowed or outcome.decision.retry_after_ms > 0

    def _answer(self, request: Request, outcome: Outcome, response: Response | None) -> Outcome:
        """hit()'s last step: the headers of `outcome` recorded on the
        request (for the middleware) and put on `response`; raises Denied
        (429) when a limit denies."""
        raw = _record(request, _RATE_LIMITS, outcome, self.limiter.headers)
        if not outcome.allowed:
            raise Denied(outcome, _header_dict(raw))
        if response is not None:
            _put_headers(response, raw)
        return outcome

    async def peek(self, request: Request) -> Outcome | None:
        """The caller's state under these limits, spending nothing."""
        return await self.check(request, 0)

    async def refund(
        self, request: Request, response: Response | None = None, cost: int = 1
    ) -> Outcome | None:
        """Gives back `cost` units to each of the caller's limits (RL.REFUND,
        by each algorithm's rule: never into a window that has closed, never
        more than was spent), for "charge first, refund on success":

            @app.post("/login")
            async def login(request: Request, response: Response,
                            charged=Depends(login_limit)):
                ...  # a wrong password raises: the attempt stays counted
                if charged is not None:
                    await login_limit.refund(request, response)

        The state afterwards is read in the same round trip and put in the
        headers (and on `response`). Returns it; None when the limit does
        not apply or Redis could not answer. Never raises for Redis: the
        request has been served, a lost refund only leaves it counted (a
        warning is logged, at most one per 10 s)."""
        check_amount(cost, "cost")
        target = await self._target(request)
        if target is None:
            return None
        keys, plan = target
        limiter = self.limiter
        transport = limiter.transport
        commands = [
            *(("RL.REFUND", k, cost) for k in keys),
            plan.command(keys, 0, self._peek_options),
        ]
        try:
            replies = await limiter.settle(lambda: transport.send_many(commands),
                                           timed=transport.timed)  # fmt: skip
        except LimiterUnavailable as e:
            limiter._lost(e, "refund", "rate limiter refund lost (%s): %s", e.kind, e, key=keys[0])
            return None
        limiter.deny_cache.discard(keys[0] if len(keys) == 1 else "\0".join(keys))
        outcome = self._outcome(Decision.from_reply(replies[-1]), plan)
        raw = _record(request, _RATE_LIMITS, outcome, limiter.headers, served=True)
        if response is not None:
            _put_headers(response, raw)
        return outcome

    def wrap(self, endpoint: E) -> E:
        """The limit as a decorator on a FastAPI endpoint (Limiter.limited),
        the cheaper form: FastAPI resolves a dependency in a generic way
        that costs about as much as the check itself, a decorator is one
        call more. The check runs when the endpoint is called, after the
        route's dependencies and the request's validation (a request
        answered 422 is not counted); headers, 429 and fail modes are the
        dependency's. The endpoint's own `request: Request` and `response:
        Response` parameters are used when it has them, else added unseen
        (not in OpenAPI)."""
        return _wrap_endpoint(self, endpoint)

    async def __call__(self, request: Request, response: Response) -> Outcome | None:
        # As a FastAPI dependency: hit(request, response) under the
        # signature FastAPI reads (hit's `cost` would be a query parameter),
        # composed of the same steps rather than awaiting hit(): a
        # coroutine less per request.
        outcome = await self.check(request)
        if outcome is None:
            return None
        if self.wait is not None and self._waits(outcome):
            outcome = await waited(self, request, outcome, None)
            if outcome is None:
                return None
        return self._answer(request, outcome, response)


_REQUEST_ARG = "redis_ratelimit_request"


_RESPONSE_ARG = "redis_ratelimit_response"


def _typed_parameters(endpoint: Callable[..., Any]) -> list[inspect.Parameter]:
    """The endpoint's parameters, annotations evaluated as FastAPI will."""
    try:
        from fastapi.dependencies.utils import get_typed_signature
    except ImportError:  # not FastAPI: the annotations as written
        return list(inspect.signature(endpoint).parameters.values())
    return list(get_typed_signature(endpoint).parameters.values())


def _param_of(params: list[inspect.Parameter], cls: type) -> str | None:
    for p in params:
        if isinstance(p.annotation, type) and issubclass(p.annotation, cls):
            return p.name
    return None


def _wrap_endpoint(rule: RateLimit, endpoint: E) -> E:
    if not callable(endpoint) or isinstance(endpoint, (RateLimit, ConcurrencyLimit)):
        raise TypeError(f"limited() decorates an endpoint function, not {endpoint!r}")
    typed = _typed_parameters(endpoint)
    request_name = _param_of(typed, Request)
    response_name = _param_of(typed, Response)
    signature = inspect.signature(endpoint)
    params = list(signature.parameters.values())
    extra = []
    if request_name is None:
        extra.append(inspect.Parameter(_REQUEST_ARG, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=Request))  # fmt: skip
    if response_name is None:
        extra.append(inspect.Parameter(_RESPONSE_ARG, inspect.Parameter.KEYWORD_ONLY,
                                       annotation=Response))  # fmt: skip
    # Keyword-only parameters go before a **kwargs, if there is one.
    split = len(params) - (1 if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD
                           else 0)  # fmt: skip
    params = params[:split] + extra + params[split:]
    take_request = request_name is None
    take_response = response_name is None
    request_key = request_name or _REQUEST_ARG
    response_key = response_name or _RESPONSE_ARG
    is_async = inspect.iscoroutinefunction(endpoint) or inspect.iscoroutinefunction(
        getattr(endpoint, "__call__", None)  # noqa: B004 (a callable object)
    )

    @functools.wraps(endpoint)
    async def limited(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.pop(request_key) if take_request else kwargs[request_key]
        response = kwargs.pop(response_key) if take_response else kwargs[response_key]
        await rule.hit(request, response)
        if is_async:
            return await endpoint(*args, **kwargs)
        return await run_in_threadpool(endpoint, *args, **kwargs)

    limited.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    rules = (*getattr(endpoint, _RULES_ATTR, ()), rule)
    setattr(limited, _RULES_ATTR, rules)
    return limited  # type: ignore[return-value]


_RULES_ATTR = "__redis_ratelimit_limits__"
