"""Policies an app defines in the server by name (RL.POLICY SET) and then
uses by name (RL.CHECK, POLICY in RL.ALL), so that an operator changes a
limit with one RL.POLICY SET, without a redeploy.

    policies = Policies(
        [
            PolicySpec("free", "100/minute"),
            PolicySpec("paid", "1000/minute", algorithm="token"),
            PolicySpec("paid-monthly", "300000/month", algorithm="fixed"),  # ALIGN, 1st
        ],
        sync="missing",
    )
    await policies.sync(AsyncRateLimiter(redis))   # at start-up (any PolicyClient)
    policies.sync(RateLimiter(redis))               # the same, blocking

`sync` says what the app writes: "missing" defines what the server lacks
and keeps an operator's definition, "overwrite" makes the app's win at
start-up, "off" never writes, "verify" never writes and refuses to start
unless the server holds every policy as the app defines it (for an ACL user
who may not run RL.POLICY SET: an operator defines them). `Policies.current(name)`
is the definition in force as last read from the server (for headers: its
limit and window).

The package's files, a job each: calendar.py (UTC offsets, windows of
calendar months), definitions.py (PolicySpec, rate_limit(), PolicyDef),
sync.py (Policies, PoliciesNotSynced, the sync modes). Every name is
imported from here, as before the split.
"""

from __future__ import annotations

from .._core import ALGORITHMS as ALGORITHMS  # policies.ALGORITHMS, as before
from .calendar import calendar_window, format_offset, parse_offset
from .definitions import PolicyDef, PolicySpec, rate_limit
from .sync import (
    OPERATOR_GRANT,
    POLICIES_NOT_SYNCED,
    SYNC_MODES,
    WRITING_MODES,
    Policies,
    PoliciesNotSynced,
    PolicyClient,
    SyncPolicyClient,
    no_such_policy,
)

__all__ = [
    "OPERATOR_GRANT",
    "POLICIES_NOT_SYNCED",
    "SYNC_MODES",
    "WRITING_MODES",
    "Policies",
    "PoliciesNotSynced",
    "PolicyClient",
    "PolicyDef",
    "PolicySpec",
    "SyncPolicyClient",
    "calendar_window",
    "format_offset",
    "no_such_policy",
    "parse_offset",
    "rate_limit",
]
