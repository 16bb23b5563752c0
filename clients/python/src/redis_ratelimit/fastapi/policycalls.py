"""A Limiter's calls about the policies kept in the server (Policies):
syncing them at start-up, a check that uses them (their definitions read
with it when due, the policies defined again after `no such policy`), and
their reads and writes, all through the Limiter's timeout and breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from .._breaker import MISCONFIGURED, LimiterUnavailable, unavailable
from .._core import Arg, Limit, policy_get_reply
from .._durations import Duration
from ..policies.sync import PoliciesNotSynced, no_such_policy

if TYPE_CHECKING:
    from .limiter import Limiter
    from .metrics import RuleMetrics

log = logging.getLogger("redis_ratelimit")


class PolicyCalls:
    """RL.POLICY GET and SET for a Limiter's policies, through its
    transport, within its timeout and through its breaker (the client's
    pool sends RL.POLICY SET to every master of a cluster)."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def policy_get(self, name: str) -> list[str] | None:
        limiter = self.limiter
        transport = limiter.transport
        reply = await limiter.call(lambda: transport.policy_get(name), timed=transport.timed)
        return policy_get_reply(reply)

    async def policy_set(
        self, name: str, limit: Limit, *, penalty: Duration | None = None, shadow: bool = False
    ) -> None:
        limiter = self.limiter
        transport = limiter.transport
        await limiter.call(lambda: transport.policy_set(name, limit, penalty, shadow),
                           timed=transport.timed)  # fmt: skip


async def sync_policies(limiter: Limiter) -> dict[str, str]:
    """Limiter.sync_policies (see there)."""
    if limiter.policies is None:
        return {}
    if not limiter.checked:
        await limiter.check_server()
    try:
        return await limiter.policies.sync(PolicyCalls(limiter), server=limiter.server())
    except PoliciesNotSynced as e:
        limiter._refuse_to_start(e)
        raise
    except LimiterUnavailable as e:
        if e.kind == MISCONFIGURED:
            wrong = limiter.explain(e)
            limiter.failures[MISCONFIGURED] += 1
            log.error("rate limiter misconfigured (%s), policies not synced: %s",
                      wrong.reason, wrong)  # fmt: skip
            raise wrong from None
        raise


async def run_policies(
    limiter: Limiter,
    args: Sequence[Arg],
    names: Sequence[str],
    key: str | None = None,
    rule: RuleMetrics | None = None,
) -> Any:
    """Limiter.run_policies (see there), which RateLimit's check calls
    directly, as it calls limiter.run."""
    policies = limiter.policies
    if policies is None:
        return await limiter.run(args, key, rule)
    stale = [n for n in names if n in policies and policies.stale(n)]
    try:
        if stale:
            reply = await _execute_and_read(limiter, args, stale)
        else:
            reply = await limiter.execute(args)
    except LimiterUnavailable as e:
        if not no_such_policy(e):
            limiter._fail_mode(e, key, rule)
            return None
        try:
            restored = await restore_policies(limiter)
        except PoliciesNotSynced as stays:  # the server answers: not an outage
            limiter._fail_mode(LimiterUnavailable(str(stays), MISCONFIGURED, stays), key, rule)
            return None  # serve_misconfigured
        if not restored:
            limiter._fail_mode(e, key, rule)
            return None
        return await limiter.run(args, key, rule)
    return reply


async def _execute_and_read(limiter: Limiter, args: Sequence[Arg], names: Sequence[str]) -> Any:
    """limiter.execute(args) and RL.POLICY GET of these policies at the
    same time, as one call for the timeout and the breaker: one failure,
    not one per command. Raises LimiterUnavailable as execute()."""
    policies = limiter.policies
    assert policies is not None
    transport = limiter.transport

    async def together() -> list[Any]:
        reads = (transport.policy_get(policies.server_name(n)) for n in names)
        replies = await asyncio.gather(transport.send(args), *reads, return_exceptions=True)
        for r in replies:  # an error reply is an answer; anything else is not
            if isinstance(r, BaseException) and not isinstance(r, ResponseError):
                raise r
        return replies

    replies = await limiter.call(together, timed=transport.timed)
    for name, r in zip(names, replies[1:], strict=True):
        if not isinstance(r, BaseException):
            policies.learn(name, policy_get_reply(r))
    if isinstance(replies[0], ResponseError):
        err = unavailable(replies[0])
        assert err is not None  # an error reply is ERROR_REPLY or MISCONFIGURED
        raise err from replies[0]
    return replies[0]


async def read_policies(limiter: Limiter, names: Sequence[str]) -> None:
    """Reads these definitions again (for the headers); a failure is only
    logged: the headers keep the last definition known."""
    assert limiter.policies is not None
    try:
        await limiter.policies.read(PolicyCalls(limiter), names)
    except LimiterUnavailable as e:
        limiter._lost(e, "policy-read", "rate limiter policies not read: %s", e)


async def restore_policies(limiter: Limiter) -> bool:
    """Policies.restore through the limiter's calls; False when they were
    not restored (sync off, or Redis could not answer: logged)."""
    assert limiter.policies is not None
    try:
        return await limiter.policies.restore(PolicyCalls(limiter), server=limiter.server())
    except LimiterUnavailable as e:
        limiter._lost(e, "restore", "rate limiter policies not restored: %s", e)
        return False


__all__ = ["PolicyCalls", "read_policies", "restore_policies", "run_policies", "sync_policies"]
