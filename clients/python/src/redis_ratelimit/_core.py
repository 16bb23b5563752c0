"""What the sync and async clients share: the limit specifications, the
arguments of every command, and reading the replies (RESP2 and RESP3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeAlias

from redis.exceptions import ResponseError

from ._durations import Duration, check_amount, duration_arg

Arg: TypeAlias = str | int | bytes


class RateLimitError(ResponseError):
    """An error reply from the module (or from Redis about an RL.* call:
    unknown command when the module is not loaded, WRONGTYPE, CROSSSLOT).
    `message` is the server's text, e.g. "ERR no such policy 'x'"."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RateLimitExceeded(Exception):
    """Raised by `lease()` when no slot is free; `decision` says when one
    will be (its retry_after)."""

    def __init__(self, decision: Decision) -> None:
        wait = decision.retry_after
        when = "never" if wait is None else f"retry after {wait:g} s"
        super().__init__(f"rate limit exceeded ({when})")
        self.decision = decision


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def module_error(error: ResponseError) -> RateLimitError:
    if isinstance(error, RateLimitError):
        return error
    message = str(error)
    # redis-py strips the error code for a few of its own classes; keep the
    # server's words as they were.
    return RateLimitError(message)


# ---------------------------------------------------------------- decisions


def _delta(ms: int) -> timedelta:
    return timedelta(milliseconds=ms)


@dataclass(frozen=True)
class Decision:
    """One decision of the module: the five fields every RL.* decision
    answers, plus the lease id (RL.ACQUIRE) and each limit's own decision
    (RL.ALL, in the order given).

    `retry_after_ms` is -1 when the request can never pass (its cost is
    above the limit); `retry_after` is then None. Allowed requests have 0
    there, except RL.LEAKY, where it is the wait before the request's turn."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_after_ms: int
    lease_id: str | None = None
    limits: tuple[Decision, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def retry_after(self) -> float | None:
        """Seconds until the same request would pass; None: never."""
        return None if self.retry_after_ms < 0 else self.retry_after_ms / 1000

    @property
    def retry_after_timedelta(self) -> timedelta | None:
        return None if self.retry_after_ms < 0 else _delta(self.retry_after_ms)

    @property
    def reset_after(self) -> float:
        """Seconds until the limiter is back to its full (or empty) state."""
        return self.reset_after_ms / 1000

    @property
    def reset_after_timedelta(self) -> timedelta:
        return _delta(self.reset_after_ms)

    @classmethod
    def from_reply(cls, reply: Any) -> Decision:
        """Reads an RL.* decision reply: [allowed, limit, remaining,
        retry_after_ms, reset_after_ms], then a lease id (RL.ACQUIRE) or one
        five-field array per key (RL.ALL). The same arrays under RESP2 and
        RESP3."""
        if not isinstance(reply, (list, tuple)) or len(reply) < 5:
            raise RateLimitError(f"unexpected reply to a rate limit call: {reply!r}")
        lease_id: str | None = None
        limits: tuple[Decision, ...] = ()
        if len(reply) > 5:
            rest = reply[5:]
            if isinstance(rest[0], (list, tuple)):
                limits = tuple(cls.from_reply(r) for r in rest)
            elif rest[0] is not None:
                lease_id = _text(rest[0])
            allowed, limit, remaining, retry, reset = reply[:5]
        else:
            allowed, limit, remaining, retry, reset = reply
        # What the dataclass's __init__ does, without a frozen class's
        # object.__setattr__ per field or a keyword dict: this runs for
        # every request checked.
        d = object.__new__(cls)
        fields = d.__dict__
        fields["allowed"] = bool(int(allowed))
        fields["limit"] = int(limit)
        fields["remaining"] = int(remaining)
        fields["retry_after_ms"] = int(retry)
        fields["reset_after_ms"] = int(reset)
        fields["lease_id"] = lease_id
        fields["limits"] = limits
        return d


def info_from_reply(reply: Any) -> dict[str, int | str] | None:
    """RL.INFO's map (RESP3) or flat array (RESP2) as a dict; None for a
    missing key."""
    if reply is None:
        return None
    if isinstance(reply, Mapping):
        pairs = list(reply.items())
    elif isinstance(reply, (list, tuple)):
        pairs = list(zip(reply[0::2], reply[1::2], strict=True))
    else:
        raise RateLimitError(f"unexpected reply to RL.INFO: {reply!r}")
    out: dict[str, int | str] = {}
    for k, v in pairs:
        out[_text(k)] = v if isinstance(v, int) else _text(v)
    return out


# ---------------------------------------------------------------- limits


class Limit:
    """An algorithm with its parameters, without a key: what RL.ALL,
    RL.PEEK and RL.POLICY SET take."""

    algorithm: str = ""

    def params(self) -> list[Arg]:
        raise NotImplementedError

    def args(self) -> list[Arg]:
        return [self.algorithm, *self.params()]


@dataclass(frozen=True)
class _Window(Limit):
    limit: int
    window: Duration

    def params(self) -> list[Arg]:
        return [check_amount(self.limit, "limit"), duration_arg(self.window, "window")]


@dataclass(frozen=True)
class Fixed(_Window):
    """Fixed window: at most `limit` per `window`. `align=True` puts the
    windows on the clock and the calendar (ALIGN: a day from midnight, "1mo"
    from the 1st, which needs it) instead of from a key's first request;
    `offset` ("+02:00", "-05:00") is that grid's UTC offset (OFFSET)."""

    algorithm = "FIXED"
    align: bool = False
    offset: str | None = None

    def params(self) -> list[Arg]:
        out = super().params()
        if self.offset is not None and not self.align:
            raise ValueError("offset is for aligned windows (align=True)")
        if self.align:
            out.append("ALIGN")
            if self.offset is not None:
                out += ["OFFSET", self.offset]
        return out


@dataclass(frozen=True)
class Sliding(_Window):
    """Sliding window counter."""

    algorithm = "SLIDING"


@dataclass(frozen=True)
class Log(_Window):
    """Sliding window log (exact)."""

    algorithm = "LOG"


@dataclass(frozen=True)
class _Bucket(Limit):
    capacity: int
    rate: int
    period: Duration

    def params(self) -> list[Arg]:
        return [
            check_amount(self.capacity, "capacity", zero=self.algorithm == "GCRA"),
            check_amount(self.rate, "rate"),
            duration_arg(self.period, "period"),
        ]


@dataclass(frozen=True)
class Token(_Bucket):
    """Token bucket: `capacity` tokens, refilled at `rate` per `period`."""

    algorithm = "TOKEN"


@dataclass(frozen=True)
class Leaky(_Bucket):
    """Leaky bucket as a queue of `capacity`, drained at `rate` per `period`."""

    algorithm = "LEAKY"


@dataclass(frozen=True)
class Gcra(_Bucket):
    """GCRA with redis-cell's meaning: `capacity` is max_burst (max_burst + 1
    at once), then `rate` per `period`."""

    algorithm = "GCRA"


@dataclass(frozen=True)
class Policy(Limit):
    """A policy kept in the server (RL.POLICY SET), by name."""

    name: str
    algorithm = "POLICY"

    def params(self) -> list[Arg]:
        return [self.name]


def options(
    cost: int | None = None,
    at: int | None = None,
    penalty: Duration | None = None,
    shadow: bool = False,
    extra: Sequence[Arg] = (),
) -> list[Arg]:
    """COST, AT, PENALTY and SHADOW, then `extra` verbatim (options the
    module has and this client does not know yet)."""
    out: list[Arg] = []
    if cost is not None:
        out += ["COST", check_amount(cost, "cost", zero=True)]
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise ValueError(f"at must be Unix milliseconds, not {at!r}")
        out += ["AT", at]
    if penalty is not None:
        out += ["PENALTY", duration_arg(penalty, "penalty")]
    if shadow:
        out.append("SHADOW")
    return out + list(extra)


def all_args(
    limits: Mapping[str, Limit] | Sequence[tuple[str, Limit]], opts: list[Arg]
) -> list[Arg]:
    pairs = list(limits.items()) if isinstance(limits, Mapping) else list(limits)
    if not 1 <= len(pairs) <= 64:
        raise ValueError(f"RL.ALL takes 1 to 64 limits, not {len(pairs)}")
    args: list[Arg] = ["RL.ALL", len(pairs), *(k for k, _ in pairs)]
    for _, spec in pairs:
        args += spec.args()
    return args + opts


def policy_set_args(name: str, limit: Limit, penalty: Duration | None, shadow: bool) -> list[Arg]:
    if isinstance(limit, Policy):
        raise ValueError("a policy is defined by an algorithm, not another policy")
    return ["RL.POLICY", "SET", name, *limit.args(), *options(penalty=penalty, shadow=shadow)]


def strings(reply: Any) -> list[str]:
    return [_text(v) for v in reply or []]


def policy_get_reply(reply: Any) -> list[str] | None:
    return None if reply is None else [_text(v) for v in reply]
