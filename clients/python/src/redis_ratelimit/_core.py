"""What the sync and async clients share: the limit specifications, the
arguments of every command, and reading the replies (RESP2 and RESP3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from typing import Any, Self, TypeAlias

from redis.exceptions import AuthenticationError, NoPermissionError, RedisError, ResponseError

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


MODULE = "ratelimit"
LOAD_HINT = (
    "load it with `loadmodule /path/to/libratelimit.so` in redis.conf (or "
    "`MODULE LOAD /path/to/libratelimit.so`, or `--loadmodule` on the command line), "
    "on every master and replica"
)
NOT_LOADED = "module-not-loaded"  # unknown command: no module, or an older one
NO_PERMISSION = "no-permission"  # NOPERM: the ACL user may not run RL.* or reach the key
WRONG_TYPE = "wrong-type"  # the key holds another type, or another algorithm's limiter
# WRONGPASS, NOAUTH: the server answers, but not to this client's credentials.
NOT_AUTHENTICATED = "not-authenticated"
_FIXES = {
    NO_PERMISSION: (
        "grant the Redis user the RL.* commands and the limiter's keys (e.g. `ACL SETUSER "
        "<user> ~rl:* +rl.fixed +rl.sliding +rl.log +rl.token +rl.leaky +rl.gcra +rl.all "
        "+rl.peek +rl.info +rl.refund +rl.check +rl.policy|get +rl.policy|list +rl.acquire "
        "+rl.release +rl.renew +command|info`; `~rl:* +@ratelimit +command|info` where "
        "module commands have ACL categories, Redis 7.4+ and Valkey 8+; RL.POLICY SET and "
        "DEL are an operator's: +rl.policy|set +rl.policy|del)"
    ),
    NOT_AUTHENTICATED: (
        "check the username and password the Redis client is given (its URL's "
        "redis://user:password@host, or username=/password=): the server refused them "
        "(WRONGPASS: a wrong pair, or the ACL user is off or was changed) or asks for them "
        "(NOAUTH)"
    ),
    WRONG_TYPE: (
        "the limiter's keys must be its own: DEL the key (it also holds a limiter of "
        "another algorithm when a rule's algorithm changed), or give the limiter another "
        "prefix or scope"
    ),
}


class RateLimiterMisconfigured(RateLimitError):
    """The server answers, but cannot rate-limit for this client: the
    module is not loaded (or is older than this client), the ACL user may
    not run RL.* commands or reach the key, the server refuses the client's
    credentials, or the key holds another kind of value. A configuration
    error, not an outage: the FastAPI Limiter answers 503 for it whatever
    its fail mode, and the clients raise it.

    `reason` is NOT_LOADED, NO_PERMISSION, NOT_AUTHENTICATED or WRONG_TYPE; `server` the
    address that answered (None when unknown), `key` the key of the call
    (None when unknown), `fix` what to do; `message` the server's words,
    str() all of it."""

    def __init__(
        self, reply: str, reason: str, *, server: str | None = None, key: str | None = None
    ) -> None:
        where = f"on {server}" if server else "on the Redis server"
        if reason == NOT_LOADED:
            fix = LOAD_HINT
            what = f"the {MODULE} module is not loaded {where}, or is older than this client"
        else:
            fix = _FIXES[reason]
            if reason == NO_PERMISSION:
                what = f"the Redis user may not run this {MODULE} command or reach its key {where}"
            elif reason == NOT_AUTHENTICATED:
                what = f"this client's Redis credentials are refused {where}"
            else:
                what = f"a key {where} holds another kind of value"
        if key is not None:
            what += f" (key {key!r})"
        reply = reply.strip()
        ResponseError.__init__(self, f"{what}: {reply}; {fix}")
        self.message = reply
        self.reason = reason
        self.server = server
        self.key = key
        self.fix = fix


class ModuleNotLoaded(RateLimiterMisconfigured):
    """The ratelimit module is not loaded on a server the limiter uses
    (`servers`: every one found without it, a cluster's masters each)."""

    def __init__(self, reply: str, *, servers: Sequence[str] = (), key: str | None = None) -> None:
        self.servers = tuple(servers)
        super().__init__(reply, NOT_LOADED, server=", ".join(self.servers) or None, key=key)


_PIPELINE = " of pipeline caused error: "
_NOT_IN_TABLE = "command doesn't exist in Redis commands"
# The replies of a server refusing a connection's credentials (the pipelined
# transport reads them as plain error replies).
_AUTH_REFUSED = ("WRONGPASS", "NOAUTH")
_AUTH_WITHOUT_PASSWORD = "AUTH <password> called without any password"


def _reply_text(error: BaseException) -> str:
    # A pipeline's error names the command first: "Command # 1 (RL.REFUND
    # ...) of pipeline caused error: <the reply>".
    text = str(error)
    if text.startswith("Command # "):
        at = text.find(_PIPELINE)
        if at >= 0:
            return text[at + len(_PIPELINE) :]
    return text


def located(
    error: RateLimiterMisconfigured, server: str | None, key: str | None
) -> RateLimiterMisconfigured:
    """The same error, naming the server and the key when it did not."""
    if (error.server or not server) and (error.key or not key):
        return error
    if type(error) not in (RateLimiterMisconfigured, ModuleNotLoaded):
        return error  # a subclass with its own message (PoliciesNotSynced)
    server, key = error.server or server, error.key or key
    if isinstance(error, ModuleNotLoaded):
        return ModuleNotLoaded(error.message, servers=[server] if server else (), key=key)
    return RateLimiterMisconfigured(error.message, error.reason, server=server, key=key)


def misconfiguration(error: BaseException) -> str | None:
    """The reason (NOT_LOADED, NO_PERMISSION, NOT_AUTHENTICATED, WRONG_TYPE)
    when an error reply says the server cannot rate-limit for this client;
    None for any other error (a bad argument, LOADING, READONLY, ...)."""
    # redis-py raises WRONGPASS and NOAUTH as a ConnectionError: it is a
    # server answering, so a wrong password is never failed open.
    if isinstance(error, AuthenticationError):
        return NOT_AUTHENTICATED
    if not isinstance(error, ResponseError):
        # redis-py's cluster client, when the node it read its command table
        # from has no module, before asking anyone.
        if isinstance(error, RedisError) and str(error).endswith(_NOT_IN_TABLE):
            return NOT_LOADED
        return None
    if isinstance(error, RateLimiterMisconfigured):
        return error.reason
    if isinstance(error, NoPermissionError):  # redis-py strips its NOPERM
        return NO_PERMISSION
    text = _reply_text(error)
    head = text[4:] if text.startswith("ERR ") else text  # redis-py strips ERR
    if head.startswith("unknown command"):
        return NOT_LOADED
    if text.startswith("NOPERM"):
        return NO_PERMISSION
    if text.startswith(_AUTH_REFUSED) or head.startswith(_AUTH_WITHOUT_PASSWORD):
        return NOT_AUTHENTICATED
    if text.startswith("WRONGTYPE") or head.startswith("the key holds"):
        return WRONG_TYPE
    return None


def misconfigured(
    error: BaseException, server: str | None = None, key: str | None = None
) -> RateLimiterMisconfigured | None:
    """The RateLimiterMisconfigured an error reply means, else None."""
    if isinstance(error, RateLimiterMisconfigured):
        return error
    reason = misconfiguration(error)
    if reason is None:
        return None
    reply = _reply_text(error)
    if isinstance(error, NoPermissionError) and not reply.startswith("NOPERM"):
        reply = "NOPERM " + reply
    if reason == NOT_LOADED:
        if not reply.startswith("ERR "):
            reply = "ERR " + reply
        return ModuleNotLoaded(reply, servers=[server] if server else (), key=key)
    return RateLimiterMisconfigured(reply, reason, server=server, key=key)


def module_error(
    error: ResponseError, server: str | None = None, key: str | None = None
) -> RateLimitError:
    if isinstance(error, RateLimitError):
        return error
    wrong = misconfigured(error, server, key)
    if wrong is not None:
        return wrong
    message = str(error)
    # redis-py strips the error code for a few of its own classes; keep the
    # server's words as they were.
    return RateLimitError(message)


def command_key(args: Sequence[Any]) -> str | None:
    """The (first) key of an RL.* command, for error messages."""
    name = _text(args[0]).upper() if args else ""
    at = 2 if name in ("RL.ALL", "RL.CHECK") else 1
    if name == "RL.POLICY" or name.startswith("COMMAND") or len(args) <= at:
        return None
    return _text(args[at])


def command_info_has(reply: Any) -> bool:
    """Whether COMMAND INFO <one command> answered the command (a nil
    entry: the server does not have it)."""
    return isinstance(reply, (list, tuple)) and len(reply) == 1 and reply[0] is not None


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
    # The module answers as `limit` this much more than the first
    # parameter: GCRA's is max_burst, max_burst + 1 at once.
    beyond_first = 0

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

    @classmethod
    def _of_rate(cls, amount: int, window: Duration, burst: int | None) -> Self:
        """`amount` per `window` (a window has no burst)."""
        return cls(amount, window)


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

    @classmethod
    def _of_rate(cls, amount: int, window: Duration, burst: int | None) -> Self:
        """Refilled at `amount` per `window`, `burst` at once (default `amount`)."""
        return cls((burst or amount) - cls.beyond_first, amount, window)


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
    beyond_first = 1


@dataclass(frozen=True)
class Policy(Limit):
    """A policy kept in the server (RL.POLICY SET), by name."""

    name: str
    algorithm = "POLICY"

    def params(self) -> list[Arg]:
        return [self.name]


# ---------------------------------------------------------------- the algorithms


@dataclass(frozen=True)
class Algorithm:
    """One of the module's algorithms, as its Limit class defines it."""

    name: str  # as rate_limit() and RateLimit take it: "token"
    command: str  # RL.TOKEN's word, also in RL.ALL and RL.POLICY SET: "TOKEN"
    params: tuple[str, ...]  # its parameters, in order: ("capacity", "rate", "period")
    limit: type[_Window] | type[_Bucket]

    @classmethod
    def of(cls, limit: type[_Window] | type[_Bucket]) -> Algorithm:
        required = tuple(f.name for f in fields(limit) if f.default is MISSING)
        return cls(limit.algorithm.lower(), limit.algorithm, required, limit)

    def of_rate(self, amount: int, window: Duration, burst: int | None = None) -> Limit:
        """The Limit allowing `amount` per `window`: a window's limit, or a
        bucket's refill rate with `burst` its capacity (default `amount`)."""
        return self.limit._of_rate(amount, window, burst)

    def answered_limit(self, first: int) -> int:
        """The `limit` the module answers under a definition whose first
        parameter is `first` (a window's limit, a bucket's capacity)."""
        return first + self.limit.beyond_first


# Every algorithm this client knows: adding one is its Limit class above and
# its place here. Built once, at import.
BY_NAME = {a.name: a for a in map(Algorithm.of, (Fixed, Sliding, Log, Token, Leaky, Gcra))}
BY_COMMAND = {a.command: a for a in BY_NAME.values()}
ALGORITHMS = tuple(BY_NAME)  # "fixed", "sliding", "log", "token", "leaky", "gcra"


_NAME = object()


def find_algorithm(name: str, given: object = _NAME) -> Algorithm:
    """The algorithm of a lower-case name; ValueError naming `given` (what
    the caller was given, default `name`) for any other."""
    found = BY_NAME.get(name)
    if found is None:
        shown = name if given is _NAME else given
        raise ValueError(f"unknown algorithm {shown!r} (use {', '.join(ALGORITHMS)})")
    return found


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
