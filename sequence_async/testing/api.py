"""
The fake server's API vocabulary: error answers, enum values, parameters.

Owns ``ApiError`` (an answer's status, envelope code and message), the
documented error answers (401, 403, 403 ``invalid_rule``, 404, 400
``invalid_request``), the enum values of the API reference, and the checks
of query parameters, header values and timestamps every endpoint shares.
No HTTP and no data here.

May import: nothing from the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime


EXECUTION_STATUSES = ("in_progress", "executed", "partial", "failed")
EXECUTION_TRIGGER_TYPES = ("manual", "scheduled", "on_funds_transferred")
ACCOUNT_TYPES = ("income_source", "pod", "external_account")
ACCOUNT_ROLES = ("source", "destination", "either")
DIRECTIONS = ("money_in", "money_out", "internal")
ORIGINS = (
    "paycheck",
    "check_deposit",
    "cashback",
    "user_pull",
    "rule",
    "user",
    "external_pull",
)
TRANSFER_STATUSES = (
    "pending_approval",
    "processing",
    "pending",
    "complete",
    "incomplete",
    "error",
    "cancelled",
)
CARD_STATUSES = ("active", "inactive", "frozen", "stolen", "lost")
CARD_TYPES = ("virtual", "physical")
CARD_DIRECTIONS = ("debit", "credit")


class ApiError(Exception):
    """
    An error answer: status, envelope code and message.

    ``retry_after`` (seconds) is sent as ``Retry-After`` when set.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def invalid(message: str) -> ApiError:
    """
    The 400 ``invalid_request`` answer.
    """
    return ApiError(400, "invalid_request", message)


def unauthorized() -> ApiError:
    """
    The 401 answer.
    """
    return ApiError(401, "unauthorized", "Missing or invalid API key.")


def forbidden() -> ApiError:
    """
    The 403 answer.
    """
    return ApiError(
        403, "forbidden", "This API key does not have the required permission."
    )


def invalid_rule(rule_id: str) -> ApiError:
    """
    The 403 answer for a rule the API cannot represent (``isSupported: false``).
    """
    return ApiError(
        403, "invalid_rule", f"Rule '{rule_id}' is not supported by the API."
    )


def not_found(kind: str, resource_id: str) -> ApiError:
    """
    The documented 404 answer for an unknown id of *kind*.
    """
    return ApiError(
        404, "resource_not_found", f"{kind} with id '{resource_id}' was not found."
    )


def printable(value: str, longest: int) -> bool:
    """
    Whether *value* is 1 to *longest* printable ASCII characters, no spaces.
    """
    return 1 <= len(value) <= longest and all(" " < c <= "~" for c in value)


def required(query: Mapping[str, str], name: str) -> str:
    """
    Return query parameter *name*; raise 400 when it is missing or empty.
    """
    value = query.get(name)
    if not value:
        raise invalid(f"The {name} query parameter is required.")
    return value


def enum_param(
    query: Mapping[str, str], name: str, allowed: tuple[str, ...]
) -> str | None:
    """
    Return query parameter *name* if it is one of *allowed*; raise 400 if not.
    """
    value = query.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(f"{name} must be one of: {', '.join(allowed)}.")
    return value


def iso(ts: float) -> str:
    """
    Format epoch seconds as the API does (``2024-01-15T10:00:00Z``).
    """
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def when(query: Mapping[str, str], name: str) -> datetime | None:
    """
    Return the ISO 8601 timestamp in query parameter *name*; raise 400 if bad.
    """
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 timestamp.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def between(stamp: str, start: datetime | None, end: datetime | None) -> bool:
    """
    Whether the API timestamp *stamp* lies in ``[start, end]`` (open ends).
    """
    if start is None and end is None:
        return True
    moment = datetime.fromisoformat(stamp)
    return (start is None or moment >= start) and (end is None or moment <= end)
