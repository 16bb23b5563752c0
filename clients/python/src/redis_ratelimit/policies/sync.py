"""Syncing the app's policies with the server: Policies reads what the
server holds (RL.POLICY GET), defines what the sync mode lets it (RL.POLICY
SET) at start-up and after `no such policy`, and raises PoliciesNotSynced
when the server's are not the app's and may not be made so."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeAlias, TypeVar, overload

from redis.exceptions import ResponseError

from .._core import NO_PERMISSION, Limit, RateLimiterMisconfigured, misconfigured
from .._durations import Duration
from ..client import AsyncRateLimiter, RateLimiter, server_address
from .definitions import POLICY_NAME, PolicyDef, PolicySpec

log = logging.getLogger("redis_ratelimit")

T = TypeVar("T")
Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

SYNC_MODES = ("missing", "overwrite", "off", "verify")
WRITING_MODES = ("missing", "overwrite")  # the modes that run RL.POLICY SET
# What a Redis user needs to define policies, on top of an application's
# grant (RL.POLICY SET and DEL are in @admin @dangerous, not @ratelimit).
OPERATOR_GRANT = "+rl.policy|set +rl.policy|del"
POLICIES_NOT_SYNCED = "policies-not-synced"  # RateLimiterMisconfigured.reason


class PolicyClient(Protocol):
    """What Policies needs of an async client (AsyncRateLimiter, a FastAPI
    Limiter's calls): policy_get and policy_set (on every master of a
    cluster), awaited."""

    async def policy_get(self, name: str) -> list[str] | None: ...

    async def policy_set(
        self, name: str, limit: Limit, *, penalty: Duration | None = None, shadow: bool = False
    ) -> None: ...


class SyncPolicyClient(Protocol):
    """The same of a blocking client (RateLimiter)."""

    def policy_get(self, name: str) -> list[str] | None: ...

    def policy_set(
        self, name: str, limit: Limit, *, penalty: Duration | None = None, shadow: bool = False
    ) -> None: ...


def _blocking(client: Any) -> bool:
    """Whether a client's calls answer at once (RateLimiter) rather than
    being awaited (AsyncRateLimiter, a PolicyClient's coroutines)."""
    if isinstance(client, RateLimiter):
        return True
    if isinstance(client, AsyncRateLimiter):
        return False
    return not inspect.iscoroutinefunction(client.policy_get)


@dataclass(frozen=True)
class _Read:
    """A step of Policies' logic: RL.POLICY GET of these, learned."""

    names: Sequence[str]


@dataclass(frozen=True)
class _Write:
    """A step: RL.POLICY SET of these as the app defines them."""

    names: Sequence[str]


Steps: TypeAlias = Generator[_Read | _Write, None, T]


class PoliciesNotSynced(RateLimiterMisconfigured):
    """The server does not hold the app's policies as the app defines them,
    and the app may not define them (sync="verify") or its Redis user may
    not (RL.POLICY SET answered NOPERM): a configuration error. Start-up
    (Policies.sync, Limiter.sync_policies) raises it; at run time a call
    whose policy is missing is answered 503 with it.

    `missing`    the policies the server lacks (names in the server)
    `different`  those it holds otherwise: name -> (the server's
                 definition, the app's), as PolicyDef.describe() spells them
    `refused`    the NOPERM reply to RL.POLICY SET; None with sync="verify"
    `commands`   the RL.POLICY SET commands defining them as the app does,
                 for an operator to run on every master
    `mode`       the sync mode
    `reason` is POLICIES_NOT_SYNCED; str() says all of it and the fix."""

    def __init__(
        self,
        *,
        missing: Sequence[str] = (),
        different: Mapping[str, tuple[str, str]] | None = None,
        commands: Sequence[str] = (),
        mode: str = "verify",
        refused: str | None = None,
        server: str | None = None,
    ) -> None:
        self.missing = tuple(missing)
        self.different = dict(different or {})
        self.commands = tuple(commands)
        self.mode = mode
        self.refused = refused
        wrong = [f"{n} missing" for n in self.missing] + [
            f"{n} differs (Redis: {have}; the app: {want})"
            for n, (have, want) in self.different.items()
        ]
        where = f"on {server}" if server else "in Redis"
        run = "; ".join(f"`{c}`" for c in self.commands)
        operator = f"an operator (a Redis user granted {OPERATOR_GRANT})"
        if refused is None:
            reply = f"sync={mode!r} never writes them"
            fix = f"{operator} defines them on every master: {run}"
            if self.different:
                fix += " (or give the app the server's definitions)"
        else:
            reply = refused.strip()
            fix = (f"the Redis user may not define them: grant it +rl.policy|set, or "
                   f"have {operator} define them on every master ({run}) and use "
                   f"sync='verify'")  # fmt: skip
        ResponseError.__init__(
            self, f"policies not as the app defines them {where}: {', '.join(wrong)}: "
            f"{reply}; {fix}"
        )  # fmt: skip
        self.message = reply
        self.reason = POLICIES_NOT_SYNCED
        self.server = server
        self.key = None
        self.fix = fix


def _write_refused(error: BaseException) -> str | None:
    """The NOPERM reply when a policy write was refused (what a client
    raised, or a FastAPI Limiter's LimiterUnavailable for it), else None."""
    wrong = error if isinstance(error, RateLimiterMisconfigured) else None
    if wrong is None:
        wrong = getattr(error, "misconfigured", None) or misconfigured(error)
    if not isinstance(wrong, RateLimiterMisconfigured) or wrong.reason != NO_PERMISSION:
        return None
    return wrong.message


def _address(client: Any) -> str | None:
    redis = getattr(client, "redis", None)  # AsyncRateLimiter's, RateLimiter's
    return None if redis is None else server_address(redis)


async def _direct(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


class Policies:
    """The app's policies and what the server holds for them.

    sync      what the app writes (RL.POLICY SET):
              missing    at start-up, define the policies the server lacks
                         and keep its definition of the others (an
                         operator's survives restarts; a difference is
                         logged); after `no such policy` (a Redis restarted
                         without persistence, a DEL) define them again
              overwrite  the same, but at start-up the app's definitions win
              off        never write: a missing policy is an error reply
              verify     never write (an ACL user without +rl.policy|set:
                         an operator defines them): start-up raises
                         PoliciesNotSynced unless the server holds every
                         policy as the app defines it; after `no such
                         policy` read them again, and raise it if still
                         missing (a FastAPI Limiter answers 503)
              In the writing modes a Redis user who may not run RL.POLICY
              SET is no error while nothing needs writing; otherwise
              PoliciesNotSynced says which and how to fix it.
    prefix    before every name in the server ("quotes:" makes
              "quotes:free"), so that apps sharing a Redis do not share
              policies; headers and keys use the names without it
    refresh   seconds a definition read from the server is trusted (0: read
              it with every call that uses it)
    """

    def __init__(
        self,
        policies: Sequence[PolicySpec],
        *,
        sync: str = "missing",
        prefix: str = "",
        refresh: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        if not refresh >= 0:
            raise ValueError(f"refresh must be at least 0, not {refresh!r}")
        self.specs: dict[str, PolicySpec] = {}
        for p in policies:
            if p.name in self.specs:
                raise ValueError(f"policy {p.name!r} defined twice")
            if not POLICY_NAME.match(prefix + p.name):
                raise ValueError(f"policy name {prefix + p.name!r} is not valid in the server")
            self.specs[p.name] = p
        self.sync_mode = sync
        self.prefix = prefix
        self.refresh = refresh
        self._clock = clock
        self._known: dict[str, PolicyDef] = {}  # name -> what the server holds
        self._unreadable: set[str] = set()  # held, in a form not understood here
        self._read_at: dict[str, float] = {}
        self._restoring: asyncio.Future[None] | None = None
        self._restoring_now = threading.Lock()  # a blocking restore's

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def server_name(self, name: str) -> str:
        if name not in self.specs:
            raise KeyError(f"policy {name!r} is not one of the app's policies")
        return self.prefix + name

    def current(self, name: str) -> PolicyDef:
        """The definition in force as last read from the server, else the
        app's own."""
        return self._known.get(name) or self.specs[name].definition

    def stale(self, name: str) -> bool:
        """Whether this definition is due to be read from the server."""
        read_at = self._read_at.get(name)
        return read_at is None or self._clock() - read_at >= self.refresh

    def held(self, name: str) -> bool:
        """Whether the server held the policy when last read."""
        return name in self._known or name in self._unreadable

    def learn(self, name: str, reply: list[str] | None) -> None:
        """Keeps what RL.POLICY GET answered (None: the server lacks it)."""
        self._unreadable.discard(name)
        if reply is None:
            self._known.pop(name, None)
            self._read_at.pop(name, None)
            return
        try:
            self._known[name] = PolicyDef.parse(reply)
        except ValueError as e:  # held all the same: never "restored" over it
            log.warning("policy %s: %s; the app's definition describes it", name, e)
            self._known.pop(name, None)
            self._unreadable.add(name)
        self._read_at[name] = self._clock()

    # -- the Redis calls: the logic once, as steps (_Read, _Write) that an
    # async driver (awaiting `call`s) or a blocking one (a RateLimiter's
    # calls) carries out

    @overload
    def read(self, client: SyncPolicyClient, names: Sequence[str]) -> None: ...

    @overload
    def read(
        self, client: PolicyClient, names: Sequence[str], call: Call = ...
    ) -> Coroutine[Any, Any, None]: ...

    def read(self, client: Any, names: Sequence[str], call: Call = _direct) -> Any:
        """Reads these definitions now (RL.POLICY GET). With an async client
        (AsyncRateLimiter, any PolicyClient) a coroutine, the reads
        concurrent, `call` running each (e.g. a FastAPI Limiter's, with its
        timeout and circuit breaker); with a RateLimiter, done at once."""
        if _blocking(client):
            self._read_now(client, names)
            return None
        return self._read(client, names, call)

    async def _read(self, client: PolicyClient, names: Sequence[str], call: Call) -> None:
        replies = await asyncio.gather(
            *(call(partial(client.policy_get, self.server_name(n))) for n in names)
        )
        for name, reply in zip(names, replies, strict=True):
            self.learn(name, reply)

    def _read_now(self, client: SyncPolicyClient, names: Sequence[str]) -> None:
        for name in names:
            self.learn(name, client.policy_get(self.server_name(name)))

    def not_synced(
        self, names: Sequence[str], server: str | None = None, refused: str | None = None
    ) -> PoliciesNotSynced:
        """The PoliciesNotSynced for these policies (short names), as last
        read from the server."""
        different = {
            self.server_name(n): (self._known[n].describe() if n in self._known else "?",
                                  self.specs[n].definition.describe())
            for n in names if self.held(n)
        }  # fmt: skip
        commands = [" ".join(["RL.POLICY", "SET", self.server_name(n),
                              *map(str, self.specs[n].args())]) for n in names]  # fmt: skip
        return PoliciesNotSynced(
            missing=[self.server_name(n) for n in names if not self.held(n)],
            different=different, commands=commands, mode=self.sync_mode, refused=refused,
            server=server,
        )  # fmt: skip

    def _set_args(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        spec = self.specs[name]
        return (self.server_name(name), spec.limit()), {"penalty": spec.penalty,
                                                        "shadow": spec.shadow}  # fmt: skip

    def _refused(self, e: Exception, names: Sequence[str], server: str | None) -> None:
        """A write of names[0] failed: PoliciesNotSynced when it was refused
        (not a generic NOPERM: which policies, and the two ways out)."""
        refused = _write_refused(e)
        if refused is not None:
            raise self.not_synced(names, server, refused) from e

    async def _set(
        self, client: PolicyClient, names: Sequence[str], call: Call, server: str | None
    ) -> None:
        for i, n in enumerate(names):
            args, kw = self._set_args(n)
            try:
                await call(partial(client.policy_set, *args, **kw))
            except Exception as e:
                self._refused(e, names[i:], server)
                raise

    def _set_now(self, client: SyncPolicyClient, names: Sequence[str], server: str | None) -> None:
        for i, n in enumerate(names):
            args, kw = self._set_args(n)
            try:
                client.policy_set(*args, **kw)
            except Exception as e:
                self._refused(e, names[i:], server)
                raise

    async def _drive(
        self, steps: Steps[T], client: PolicyClient, call: Call, server: str | None
    ) -> T:
        step = next(steps)  # each starts with a read
        while True:
            if isinstance(step, _Write):
                await self._set(client, step.names, call, server)
            else:
                await self._read(client, step.names, call)
            try:
                step = steps.send(None)
            except StopIteration as end:
                result: T = end.value
                return result

    def _drive_now(self, steps: Steps[T], client: SyncPolicyClient, server: str | None) -> T:
        step = next(steps)
        while True:
            if isinstance(step, _Write):
                self._set_now(client, step.names, server)
            else:
                self._read_now(client, step.names)
            try:
                step = steps.send(None)
            except StopIteration as end:
                result: T = end.value
                return result

    @overload
    def sync(self, client: SyncPolicyClient, *, server: str | None = None) -> dict[str, str]: ...

    @overload
    def sync(
        self, client: PolicyClient, call: Call = ..., *, server: str | None = None
    ) -> Coroutine[Any, Any, dict[str, str]]: ...

    def sync(self, client: Any, call: Call = _direct, *, server: str | None = None) -> Any:
        """At start-up: reads every policy and defines them as `sync` says.
        Returns what became of each: "defined", "replaced", "kept" (the
        server's differs and stays), "same" or "missing" (sync off).
        Raises PoliciesNotSynced when they are not as the app defines them
        and it may not (sync="verify") or cannot (NOPERM) define them.
        `server`: the address for the messages (default: the client's).
        With a RateLimiter it runs at once; with an async client
        (AsyncRateLimiter, any PolicyClient) it is awaited."""
        where = server or _address(client)
        if _blocking(client):
            return self._drive_now(self._sync_steps(where), client, where)
        return self._drive(self._sync_steps(where), client, call, where)

    def _sync_steps(self, server: str | None) -> Steps[dict[str, str]]:
        names = list(self.specs)
        yield _Read(names)
        done: dict[str, str] = {}
        mode = self.sync_mode
        for n in names:
            want, have = self.specs[n].definition, self._known.get(n)
            if have == want:
                done[n] = "same"
            elif mode in ("off", "verify"):
                done[n] = "kept" if self.held(n) else "missing"
            elif not self.held(n):
                done[n] = "defined"
            else:
                done[n] = "replaced" if mode == "overwrite" else "kept"
            if mode == "verify":
                if n in self._unreadable:  # a newer module's form: not held against it
                    log.warning("policy %s in Redis is in a form this client cannot read: "
                                "not verified (sync=verify)", self.server_name(n))  # fmt: skip
            elif done[n] == "kept":
                log.warning("policy %s in Redis (%s) differs from the app's (%s): keeping "
                            "Redis' (sync=%s)", self.server_name(n),
                            have.describe() if have else "?", want.describe(),
                            self.sync_mode)  # fmt: skip
            elif done[n] == "missing":
                log.warning("policy %s is not defined in Redis (sync=off): calls using it "
                            "are answered 'no such policy'", self.server_name(n))  # fmt: skip
        if mode == "verify":
            wrong = [n for n in names if done[n] != "same" and n not in self._unreadable]
            if wrong:
                raise self.not_synced(wrong, server)
            return done
        to_set = [n for n in names if done[n] in ("defined", "replaced")]
        if to_set:
            yield _Write(to_set)
            yield _Read(to_set)
        return done

    @overload
    def restore(self, client: SyncPolicyClient, *, server: str | None = None) -> bool: ...

    @overload
    def restore(
        self, client: PolicyClient, call: Call = ..., *, server: str | None = None
    ) -> Coroutine[Any, Any, bool]: ...

    def restore(self, client: Any, call: Call = _direct, *, server: str | None = None) -> Any:
        """After `no such policy`: defines the missing policies again from
        the app's definitions, once for all the calls that found them
        missing at the same time. False when the app must not (sync off).
        Raises PoliciesNotSynced when they stay missing: sync="verify"
        (read again first: an operator may just have defined them), or the
        Redis user may not define them; and what the Redis calls raise.
        With a RateLimiter at once (threads one after the other), with an
        async client awaited."""
        where = server or _address(client)
        if _blocking(client):
            if self.sync_mode == "off":
                return False
            with self._restoring_now:
                self._drive_now(self._restore_steps(where), client, where)
            return True
        return self._restore_async(client, call, where)

    async def _restore_async(self, client: PolicyClient, call: Call, server: str | None) -> bool:
        if self.sync_mode == "off":
            return False
        task = self._restoring
        if task is None or task.done():
            task = asyncio.ensure_future(self._drive(self._restore_steps(server), client, call,
                                                     server))  # fmt: skip
            self._restoring = task
        await asyncio.shield(task)
        return True

    def _restore_steps(self, server: str | None) -> Steps[None]:
        # All of them: a Redis that lost one has usually lost them all.
        yield _Read(list(self.specs))
        # Only those still missing: one an operator has just set stays his.
        missing = [n for n in self.specs if not self.held(n)]
        if not missing:
            return
        if self.sync_mode == "verify":
            raise self.not_synced(missing, server)
        yield _Write(missing)
        log.warning("rate limiter policies missing in Redis, defined again from the "
                    "app's definitions: %s",
                    ", ".join(self.server_name(n) for n in missing))  # fmt: skip
        yield _Read(missing)


def no_such_policy(error: BaseException) -> bool:
    """Whether an error (a reply, or what a call raised for it) says the
    server lacks a policy."""
    return "no such policy" in str(error)


__all__ = [
    "OPERATOR_GRANT",
    "POLICIES_NOT_SYNCED",
    "SYNC_MODES",
    "WRITING_MODES",
    "Policies",
    "PoliciesNotSynced",
    "PolicyClient",
    "SyncPolicyClient",
    "no_such_policy",
]
