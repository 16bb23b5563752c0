"""The label a rule's metrics carry (see metrics.py), without importing
prometheus_client: rules.py names every rule, metrics or not."""

from __future__ import annotations

from typing import Any


def rule_name(scope: str | None, limits: Any) -> str:
    """The rule's scope when it has one, else its limits as written
    ("100/minute", "policy:free"), or the name of the function choosing
    them: from the app's code, never from a request."""
    if scope is not None:
        return scope
    if isinstance(limits, str):
        return limits
    if callable(limits):
        return str(getattr(limits, "__qualname__", None) or type(limits).__qualname__)
    return ";".join(f"{r.amount}/{r.seconds}s" for r in limits)
