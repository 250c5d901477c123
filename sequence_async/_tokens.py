"""
Handles from outside: resume tokens read back, and executions fetched by id.

Owns ``from_token`` (every field of a token checked: ids that would leave
their path segment, the token's API against the client's, its size) and
``fetch`` (an execution by id, its identity checked, as a handle).
"""

from __future__ import annotations

from datetime import UTC, datetime

from . import errors
from ._checks import clamp, instant, is_segment, segment
from ._execution import MAX_TOKEN_CHARS, TOKEN_VERSION, Execution, token_field
from ._json import loads
from ._paging import get_execution
from ._profiles import API_V1
from ._requester import Requester


def from_token(token: object, requester: Requester) -> Execution:
    """
    Rebuild a handle from ``Execution.to_token()``.

    Raises:
        ValueError: The token is not one of ours (of this version), or a
            field is missing or bad (an id that would leave its path segment
            included).
    """
    if not isinstance(token, str | bytes) or len(token) > MAX_TOKEN_CHARS:
        raise ValueError("not an execution token: not a short JSON string")
    data = loads(token)
    if not isinstance(data, dict) or data.get("v") != TOKEN_VERSION:
        raise ValueError(f"not an execution token of version {TOKEN_VERSION}")
    # Tokens from before profiles existed are api-v1's.
    api = data.get("api", API_V1)
    if api != requester.profile.name:
        raise ValueError(
            f"this execution token is of Sequence's {str(api)[:20]!r} API; this "
            f"client speaks {requester.profile.name!r}: resume it with "
            f"SequenceClient(api={str(api)[:20]!r})"
        )
    execution_id, rule_id = data.get("id"), data.get("rule_id")
    try:
        segment(execution_id, "id")
        segment(rule_id, "rule_id")
        triggered_at = datetime.fromisoformat(data["triggered_at"])
        if triggered_at.tzinfo is None:
            triggered_at = triggered_at.replace(tzinfo=UTC)
        instant(triggered_at, "triggered_at")
        # (only informational: one a token could not carry is dropped)
        request_id = token_field(data.get("request_id"))
        key = _optional(data.get("idempotency_key"), "idempotency_key")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"execution token is missing or bad: {exc}") from None
    return Execution(
        id=str(execution_id),
        rule_id=str(rule_id),
        request_id=request_id,
        idempotency_key=key,
        triggered_at=triggered_at,
        requester=requester,
    )


async def fetch(
    requester: Requester,
    execution_id: str,
    *,
    rule_id: str | None = None,
    request_id: str | None = None,
) -> Execution:
    """
    Fetch an execution by id and return its handle, holding what was seen.

    Raises:
        errors.ResponseValidationError: The answer names no rule (or one
            that is no id), or is about another execution.
    """
    current = await get_execution(
        requester, execution_id, rule_id=rule_id, request_id=request_id
    )
    # (A rule id that is no path segment would make a handle whose own
    # token is refused.)
    rule = current.rule_id
    if current.id != execution_id or rule is None or not is_segment(rule):
        raise errors.ResponseValidationError(
            f"asked for execution {execution_id}, got {current.id!r:.60} of rule "
            f"{current.rule_id!r:.60}",
            request_id=current.request_id,
        )
    return Execution(
        id=current.id,
        rule_id=rule,
        request_id=current.request_id,
        idempotency_key=None,
        # (Go's zero time, year 1, clamped: the handle's token stays good.)
        triggered_at=clamp(current.created_at or datetime.now(UTC)),
        requester=requester,
        last=current,
    )


def _optional(value: object, name: str) -> str | None:
    if value is None:
        return None
    field = token_field(value)
    if field is None:
        raise ValueError(f"{name} must be a short string")
    return field
