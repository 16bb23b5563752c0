"""RateLimiter and AsyncRateLimiter: one typed method per RL.* command over a
redis-py client (standalone or RedisCluster)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from ._core import (
    Arg,
    Decision,
    Fixed,
    Gcra,
    Leaky,
    Limit,
    Log,
    ModuleNotLoaded,
    RateLimitError,
    RateLimitExceeded,
    Sliding,
    Token,
    all_args,
    command_info_has,
    command_key,
    info_from_reply,
    misconfigured,
    module_error,
    options,
    policy_get_reply,
    policy_set_args,
    strings,
)
from ._durations import Duration, check_amount, duration_arg
from .testing import Clock

T = TypeVar("T")
Limits: TypeAlias = Mapping[str, Limit] | Sequence[tuple[str, Limit]]


@dataclass(frozen=True)
class Lease:
    """A slot of a concurrency limit, held under `id` at `key`."""

    key: str
    id: str
    decision: Decision


def _lease_id(lease_id: str | None) -> str:
    return uuid.uuid4().hex if lease_id is None else lease_id


def _acquire_args(
    key: str, limit: int, ttl: Duration, lease_id: str | None, cost: int | None, at: int | None
) -> list[Arg]:
    args: list[Arg] = ["RL.ACQUIRE", key, check_amount(limit, "limit"), duration_arg(ttl, "ttl")]
    if lease_id is not None:
        args += ["ID", lease_id]
    return args + options(cost=cost, at=at)


def _first(reply: Any) -> Any:
    """A keyless command sent to several cluster nodes answers per node."""
    if isinstance(reply, Mapping) and reply and all(isinstance(k, str) for k in reply):
        values = list(reply.values())
        for v in values:
            if isinstance(v, BaseException):
                raise v
        return values[0]
    return reply


# The command whose presence says the module is loaded (COMMAND INFO): every
# version of the module has it.
CHECK_COMMAND = "RL.FIXED"


def server_address(redis: Any) -> str | None:
    """Where a redis-py client's call goes: host:port (or the unix socket)
    of a standalone client. None when unknown, and on a cluster: redis-py
    may send an RL.* command to another node than the key's when the node
    it read its command table from lacks the module (check_module() names
    the masters without it)."""
    try:
        if isinstance(redis, (RedisCluster, AsyncRedisCluster)):
            return None
        kw = redis.connection_pool.connection_kwargs
        if kw.get("path"):
            return f"unix:{kw['path']}"
        return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    except Exception:  # only for a message: never worth failing over
        return None


def _module_check(replies: Mapping[str, Any]) -> list[str]:
    """COMMAND INFO RL.FIXED's reply of each server (name -> reply): the
    servers checked, or ModuleNotLoaded naming those without the module."""
    missing = [name for name, reply in replies.items() if not command_info_has(reply)]
    if missing:
        raise ModuleNotLoaded(f"COMMAND INFO {CHECK_COMMAND} answered no such command",
                              servers=missing)  # fmt: skip
    return list(replies)


def _check_refused(error: NoPermissionError, where: str | None) -> RateLimitError:
    # Not a misconfiguration of the limiter: the check could not run.
    return RateLimitError(
        f"cannot check for the ratelimit module on {where or 'the Redis server'}: the Redis "
        f"user may not run COMMAND INFO (NOPERM {error}); grant it +command|info"
    )


def _per_node(nodes: Sequence[Any], reply: Any) -> dict[str, Any]:
    if isinstance(reply, Mapping) and all(isinstance(k, str) for k in reply):
        return dict(reply)
    return {nodes[0].name: reply}  # one node: redis-py answers its reply alone


def _as_module_error(e: RedisError, redis: Any, args: Sequence[Arg]) -> Exception:
    """What a failed call raises, for the sync and async clients alike: an
    error reply as the module's error for its key; any other RedisError
    unchanged, unless it means the server can't rate-limit (a cluster
    client without RL.* in its command table)."""
    if isinstance(e, ResponseError):
        return module_error(e, server_address(redis), command_key(args))
    wrong = misconfigured(e, None, command_key(args))
    return e if wrong is None else wrong


@dataclass(slots=True)  # not frozen: built for every call, and never kept
class Command(Generic[T]):
    """One RL.* call as both clients make it: its arguments, how its reply
    is read, and where it goes on a cluster ("": the key's node; "write":
    every master, the first reply kept; "read": the default node)."""

    args: Sequence[Arg]
    parse: Callable[[Any], T]
    route: str = ""


def _decision(args: Sequence[Arg]) -> Command[Decision]:
    return Command(args, Decision.from_reply)


def _identity(reply: Any) -> Any:
    return reply


def _none(reply: Any) -> None:
    return None


# The return types of the command layer's methods: the reply's value for
# RateLimiter, a coroutine of it for AsyncRateLimiter (only the I/O differs).
D = TypeVar("D")  # Decision
I = TypeVar("I")  # noqa: E741 (int)
B = TypeVar("B")  # bool
N = TypeVar("N")  # None
L = TypeVar("L")  # list[str]
G = TypeVar("G")  # list[str] | None
F = TypeVar("F")  # dict[str, int | str] | None


class _Commands(Generic[D, I, B, N, L, G, F]):
    """The RL.* commands, written once for both clients: each method builds
    a Command; the client's _decision(), _int(), ... run it (RateLimiter:
    at once; AsyncRateLimiter: as a coroutine). `extra` on the decision
    methods is appended verbatim: options of the module this client does
    not know yet."""

    redis: Any
    _cluster: bool
    clock: Clock | None = None

    def use_clock(self, clock: Clock | None) -> None:
        """Decides at `clock`'s time from now on (AT on every decision,
        refund and acquire; redis_ratelimit.testing.FakeClock); None: the
        server's clock again. An `at=` given to a call wins."""
        self.clock = clock

    def _at(self, at: int | None) -> int | None:
        if at is None and self.clock is not None:
            return self.clock.now_ms()
        return at

    def _kw(self, route: str) -> dict[str, Any]:
        """execute_command's keywords for a Command's route."""
        if not route or not self._cluster:
            return {}
        # The nodes themselves: redis-py 8.1 cannot route a command it does
        # not know by a node flag (PRIMARIES) alone.
        if route == "write":  # each master holds its own set of policies
            return {"target_nodes": self.redis.get_primaries()}
        return {"target_nodes": self.redis.get_default_node()}

    def _reply(self, cmd: Command[T], reply: Any) -> T:
        if cmd.route == "write" and self._cluster:
            reply = _first(reply)
        return cmd.parse(reply)

    def _run_decision(self, cmd: Command[Decision]) -> D:
        raise NotImplementedError

    def _run_int(self, cmd: Command[int]) -> I:
        raise NotImplementedError

    def _run_bool(self, cmd: Command[bool]) -> B:
        raise NotImplementedError

    def _run_none(self, cmd: Command[None]) -> N:
        raise NotImplementedError

    def _run_strings(self, cmd: Command[list[str]]) -> L:
        raise NotImplementedError

    def _run_definition(self, cmd: Command[list[str] | None]) -> G:
        raise NotImplementedError

    def _run_info(self, cmd: Command[dict[str, int | str] | None]) -> F:
        raise NotImplementedError

    # -- the algorithms

    def decide(
        self,
        key: str,
        limit: Limit,
        *,
        cost: int | None = None,
        at: int | None = None,
        penalty: Duration | None = None,
        shadow: bool = False,
        extra: Sequence[Arg] = (),
    ) -> D:
        """RL.<ALGO> for a `Limit` (RL.CHECK for a `Policy`)."""
        opts = options(cost, self._at(at), penalty, shadow, extra)
        if limit.algorithm == "POLICY":
            return self._run_decision(_decision(["RL.CHECK", *limit.params(), key, *opts]))
        return self._run_decision(_decision([f"RL.{limit.algorithm}", key, *limit.params(), *opts]))

    def fixed(self, key: str, limit: int, window: Duration, *, cost: int | None = None,
              at: int | None = None, penalty: Duration | None = None, shadow: bool = False,
              extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.FIXED: at most `limit` per `window`."""
        return self.decide(key, Fixed(limit, window), cost=cost, at=at, penalty=penalty,
                           shadow=shadow, extra=extra)  # fmt: skip

    def sliding(self, key: str, limit: int, window: Duration, *, cost: int | None = None,
                at: int | None = None, penalty: Duration | None = None, shadow: bool = False,
                extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.SLIDING: sliding window counter."""
        return self.decide(key, Sliding(limit, window), cost=cost, at=at, penalty=penalty,
                           shadow=shadow, extra=extra)  # fmt: skip

    def log(self, key: str, limit: int, window: Duration, *, cost: int | None = None,
            at: int | None = None, penalty: Duration | None = None, shadow: bool = False,
            extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.LOG: sliding window log, exact."""
        return self.decide(key, Log(limit, window), cost=cost, at=at, penalty=penalty,
                           shadow=shadow, extra=extra)  # fmt: skip

    def token(self, key: str, capacity: int, rate: int, period: Duration, *,
              cost: int | None = None, at: int | None = None, penalty: Duration | None = None,
              shadow: bool = False, extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.TOKEN: token bucket."""
        return self.decide(key, Token(capacity, rate, period), cost=cost, at=at,
                           penalty=penalty, shadow=shadow, extra=extra)  # fmt: skip

    def leaky(self, key: str, capacity: int, rate: int, period: Duration, *,
              cost: int | None = None, at: int | None = None, penalty: Duration | None = None,
              shadow: bool = False, extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.LEAKY: leaky bucket as a queue."""
        return self.decide(key, Leaky(capacity, rate, period), cost=cost, at=at,
                           penalty=penalty, shadow=shadow, extra=extra)  # fmt: skip

    def gcra(self, key: str, max_burst: int, rate: int, period: Duration, *,
             cost: int | None = None, at: int | None = None, penalty: Duration | None = None,
             shadow: bool = False, extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.GCRA: `max_burst + 1` at once, then `rate` per `period`."""
        return self.decide(key, Gcra(max_burst, rate, period), cost=cost, at=at,
                           penalty=penalty, shadow=shadow, extra=extra)  # fmt: skip

    def check(self, policy: str, key: str, *, cost: int | None = None,
              at: int | None = None) -> D:  # fmt: skip
        """RL.CHECK: decides with a policy kept in the server."""
        opts = options(cost=cost, at=self._at(at))
        return self._run_decision(_decision(["RL.CHECK", policy, key, *opts]))

    def all(self, limits: Limits, *, cost: int | None = None, at: int | None = None,
            penalty: Duration | None = None, shadow: bool = False,
            extra: Sequence[Arg] = ()) -> D:  # fmt: skip
        """RL.ALL: every limit ({key: Limit}, in order) or none. The result's
        `limits` holds each key's own decision. On a cluster the keys need a
        common hash tag ("{user42}:s", "{user42}:d")."""
        opts = options(cost, self._at(at), penalty, shadow, extra)
        return self._run_decision(_decision(all_args(limits, opts)))

    def peek(self, key: str, limit: Limit, *, cost: int | None = None,
             at: int | None = None) -> D:  # fmt: skip
        """RL.PEEK: what that call would get, writing nothing (runs on
        read-only replicas)."""
        args = ["RL.PEEK", key, *limit.args(), *options(cost=cost, at=self._at(at))]
        return self._run_decision(_decision(args))

    def info(self, key: str) -> F:
        """RL.INFO: what the limiter holds; None for a missing key."""
        return self._run_info(Command(["RL.INFO", key], info_from_reply))

    # -- refunds and leases

    def refund(self, key: str, n: int = 1, *, at: int | None = None) -> I:
        """RL.REFUND: gives back up to `n` units; returns how many went back."""
        args = ["RL.REFUND", key, check_amount(n, "n"), *options(at=self._at(at))]
        return self._run_int(Command(args, int))

    def acquire(self, key: str, limit: int, ttl: Duration, *, lease_id: str | None = None,
                cost: int | None = None, at: int | None = None) -> D:  # fmt: skip
        """RL.ACQUIRE: a slot of `limit` for `ttl`. The Decision's lease_id
        is the lease (None when denied)."""
        args = _acquire_args(key, limit, ttl, lease_id, cost, self._at(at))
        return self._run_decision(_decision(args))

    def release(self, key: str, lease_id: str) -> B:
        """RL.RELEASE: True if the lease was held and is now freed."""
        return self._run_bool(Command(["RL.RELEASE", key, lease_id], bool))

    def renew(self, key: str, lease_id: str, ttl: Duration) -> B:
        """RL.RENEW: True if the lease was held; its end is now `ttl` away."""
        args = ["RL.RENEW", key, lease_id, duration_arg(ttl, "ttl")]
        return self._run_bool(Command(args, bool))

    # -- policies

    def policy_set(self, name: str, limit: Limit, *, penalty: Duration | None = None,
                   shadow: bool = False) -> N:  # fmt: skip
        """RL.POLICY SET (on every master of a cluster)."""
        args = policy_set_args(name, limit, penalty, shadow)
        return self._run_none(Command(args, _none, "write"))

    def policy_get(self, name: str) -> G:
        """RL.POLICY GET: the definition as arguments; None if there is none."""
        return self._run_definition(Command(["RL.POLICY", "GET", name], policy_get_reply, "read"))

    def policy_del(self, name: str) -> B:
        """RL.POLICY DEL (on every master of a cluster): True if it existed."""
        return self._run_bool(Command(["RL.POLICY", "DEL", name], bool, "write"))

    def policy_list(self) -> L:
        """RL.POLICY LIST: the names, in order."""
        return self._run_strings(Command(["RL.POLICY", "LIST"], strings, "read"))


class RateLimiter(
    _Commands[Decision, int, bool, None, list[str], list[str] | None, "dict[str, int | str] | None"]
):
    """The RL.* commands over a redis-py client (`redis.Redis` or
    `redis.cluster.RedisCluster`), either RESP2 or RESP3, with or without
    decode_responses.

    Durations are seconds (int or float), `timedelta`, or the module's own
    strings ("500ms", "1m"), passed through. Every decision returns a
    frozen `Decision`; an error reply raises `RateLimitError`.

    `extra` on the decision methods is appended verbatim: options of the
    module this client does not know yet."""

    def __init__(self, redis: Any, *, clock: Clock | None = None) -> None:
        self.redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self.clock = clock

    def _call(self, args: Sequence[Arg], **kw: Any) -> Any:
        try:
            return self.redis.execute_command(*args, **kw)
        except RedisError as e:
            wrong = _as_module_error(e, self.redis, args)
            if wrong is e:
                raise
            raise wrong from e

    def _run(self, cmd: Command[T]) -> T:
        return self._reply(cmd, self._call(cmd.args, **self._kw(cmd.route)))

    # Every kind of reply alike (the command layer's types tell them apart).
    _run_decision = _run_int = _run_bool = _run_none = _run
    _run_strings = _run_definition = _run_info = _run

    def check_module(self) -> list[str]:
        """Checks that the server has the ratelimit module (COMMAND INFO
        RL.FIXED; on a cluster, on every master): returns the servers
        checked, raises ModuleNotLoaded naming those without it, and
        RateLimitError when the ACL user may not run COMMAND INFO. Redis
        unreachable raises redis-py's ConnectionError or TimeoutError."""
        redis = self.redis
        try:
            if self._cluster:
                nodes = redis.get_primaries()
                reply = redis.execute_command("COMMAND INFO", CHECK_COMMAND, target_nodes=nodes)
                return _module_check(_per_node(nodes, reply))
            reply = redis.execute_command("COMMAND INFO", CHECK_COMMAND)
        except NoPermissionError as e:
            raise _check_refused(e, server_address(redis)) from e
        return _module_check({server_address(redis) or "the Redis server": reply})

    @contextmanager
    def lease(self, key: str, limit: int, ttl: Duration, *, cost: int | None = None,
              lease_id: str | None = None) -> Iterator[Lease]:  # fmt: skip
        """Holds a slot for the block and releases it when the block ends,
        however it ends. Raises RateLimitExceeded (with the Decision) when
        none is free. The id is made here, so a lost reply cannot leave a
        lease nothing could release (its ttl frees it)."""
        lid = _lease_id(lease_id)
        d = self.acquire(key, limit, ttl, lease_id=lid, cost=cost)
        if not d.allowed:
            raise RateLimitExceeded(d)
        try:
            yield Lease(key, lid, d)
        finally:
            self.release(key, lid)


_releasing: set[asyncio.Task[Any]] = set()  # releases outliving a cancelled task

_Co: TypeAlias = Coroutine[Any, Any, T]


class AsyncRateLimiter(
    _Commands[
        _Co[Decision], _Co[int], _Co[bool], _Co[None], _Co[list[str]], _Co[list[str] | None],
        "_Co[dict[str, int | str] | None]",
    ]
):  # fmt: skip
    """RateLimiter's methods, awaited, over `redis.asyncio.Redis` or
    `redis.asyncio.cluster.RedisCluster`."""

    def __init__(self, redis: Any, *, clock: Clock | None = None) -> None:
        self.redis = redis
        self._cluster = isinstance(redis, AsyncRedisCluster)
        self.clock = clock

    async def _call(self, args: Sequence[Arg], **kw: Any) -> Any:
        try:
            return await self.redis.execute_command(*args, **kw)
        except RedisError as e:
            wrong = _as_module_error(e, self.redis, args)
            if wrong is e:
                raise
            raise wrong from e

    async def _run(self, cmd: Command[T]) -> T:
        return self._reply(cmd, await self._call(cmd.args, **self._kw(cmd.route)))

    _run_decision = _run_int = _run_bool = _run_none = _run
    _run_strings = _run_definition = _run_info = _run

    async def check_module(self) -> list[str]:
        """RateLimiter.check_module(), awaited."""
        redis = self.redis
        try:
            if self._cluster:
                await redis.initialize()  # the nodes are known once connected
                nodes = redis.get_primaries()
                reply = await redis.execute_command("COMMAND INFO", CHECK_COMMAND,
                                                    target_nodes=nodes)  # fmt: skip
                return _module_check(_per_node(nodes, reply))
            reply = await redis.execute_command("COMMAND INFO", CHECK_COMMAND)
        except NoPermissionError as e:
            raise _check_refused(e, server_address(redis)) from e
        return _module_check({server_address(redis) or "the Redis server": reply})

    @asynccontextmanager
    async def lease(self, key: str, limit: int, ttl: Duration, *, cost: int | None = None,
                    lease_id: str | None = None) -> AsyncIterator[Lease]:  # fmt: skip
        """Holds a slot for the block and releases it when the block ends,
        returned, raised or cancelled (the release runs in its own task,
        which the cancellation does not stop). Raises RateLimitExceeded
        when no slot is free."""
        lid = _lease_id(lease_id)
        d = await self.acquire(key, limit, ttl, lease_id=lid, cost=cost)
        if not d.allowed:
            raise RateLimitExceeded(d)
        try:
            yield Lease(key, lid, d)
        finally:
            task = asyncio.ensure_future(self.release(key, lid))
            _releasing.add(task)
            task.add_done_callback(_releasing.discard)
            await asyncio.shield(task)


__all__ = ["AsyncRateLimiter", "Lease", "RateLimiter"]
