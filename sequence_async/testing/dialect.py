"""
The fake server's two wire dialects: ``api-v1`` and ``platform-v1``.

Owns ``Dialect``. The state, the endpoints and the pipeline speak one
language, ``api-v1``'s (snake_case, lowercase enums, cursors); a dialect
translates at the edges: the path prefix, the auth scheme, query names and
enum values in, body keys in, field names and enum values out, the envelope
(``requestId``; ``{items, pagination}``), paging by page number, error
codes, scopes, the idempotency-key rule, and the plain-text 404 Platform
gives for any unlisted path or method. Written from the API reference
(``sequence-api.md`` Appendix A), never from the client's code.

May import: ``testing.api``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .api import invalid


API_V1: Final = "api-v1"
PLATFORM_V1: Final = "platform-v1"
# Fields whose values are enum members (UPPERCASE on Platform).
_ENUM_FIELDS: Final = frozenset(
    {"status", "type", "direction", "origin", "trigger_type", "execution_mode"}
)
# Platform names that are not the mechanical camelCase of api-v1's.
_OUT_RENAMES: Final = {"nickname": "name"}
_IN_RENAMES: Final = {
    "executeAmount": "manual_execute_amount",
    "accountIds[]": "account_ids",
    "accountIds": "account_ids",
}
# Enum values named otherwise on Platform (api-v1 value -> Platform value).
_VALUES: Final = {"paycheck": "DIRECT_DEPOSIT"}
_VALUES_IN: Final = {v.lower(): k for k, v in _VALUES.items()}
_PLATFORM_SCOPES: Final = {
    "LIST_ACCOUNTS": "READ_ACCOUNTS",
    "LIST_RULES": "READ_RULES",
    "READ_RULE_EXECUTIONS": "READ_RULES",
    "READ_CARDS": "READ_TRANSFERS",
}
_PLATFORM_CODES: Final = {
    "invalid_request": "INVALID_PARAMETERS",
    "forbidden": "ACCESS_DENIED",
    "request_in_progress": "RULE_EXECUTION_IN_PROGRESS",
    "service_unavailable": "UNEXPECTED_ERROR",
    "internal_error": "UNEXPECTED_ERROR",
}
_NOT_FOUND: Final = {
    "get_account": "ACCOUNT_NOT_FOUND",
    "list_account_transfers": "ACCOUNT_NOT_FOUND",
    "get_rule": "RULE_NOT_FOUND",
    "trigger_rule": "RULE_NOT_FOUND",
    "list_rule_executions": "RULE_NOT_FOUND",
    "get_rule_execution": "RULE_EXECUTION_NOT_FOUND",
    "get_transfer": "TRANSFER_NOT_FOUND",
}
_KEY: Final = re.compile(r"[A-Za-z0-9._:/|-]{1,36}")
_CAMEL: Final = re.compile(r"_([a-z0-9])")
_SNAKE: Final = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel(name: str) -> str:
    """
    ``amount_in_cents`` -> ``amountInCents``.
    """
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    """
    ``amountInCents`` -> ``amount_in_cents``.
    """
    return _SNAKE.sub(lambda m: "_" + m.group(1).lower(), name)


@attrs.frozen
class Dialect:
    """
    One surface's wire language, over the server's one state.
    """

    name: str
    prefix: str
    scheme: str

    @property
    def platform(self) -> bool:
        """
        Whether this is ``platform-v1``.
        """
        return self.name == PLATFORM_V1

    def query_in(self, query: Mapping[str, str]) -> dict[str, str]:
        """
        The query in api-v1's names and values (400 for a lowercase enum).
        """
        if not self.platform:
            return dict(query)
        out: dict[str, str] = {}
        for name, value in query.items():
            key = _IN_RENAMES.get(name) or snake(name)
            if key in _ENUM_FIELDS:
                if value != value.upper():
                    raise invalid(f"{name} must be one of the UPPERCASE values.")
                value = value.lower()  # noqa: PLW2901
                value = _VALUES_IN.get(value, value)  # noqa: PLW2901
            out[key] = value
        return out

    def body_in(self, body: Any, route: str) -> Any:
        """
        A request body in api-v1's names (Platform's trigger needs one).
        """
        if not self.platform:
            return body
        if body is None and route == "trigger_rule":
            raise invalid("The request body is required.")
        if not isinstance(body, dict):
            return body
        return {_IN_RENAMES.get(k) or snake(k): v for k, v in body.items()}

    def out(self, data: Any) -> Any:
        """
        Data in this dialect's names and enum values.
        """
        if not self.platform:
            return data
        return _platform(data)

    def envelope(
        self, request_id: str, data: Any, page_info: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """
        A success body.
        """
        if not self.platform:
            payload = {"request_id": request_id, "data": data}
            if page_info is not None:
                payload["page_info"] = page_info
            return payload
        body = _platform(data)
        if page_info is not None:
            body = {"items": body, "pagination": dict(page_info)}
        return {"requestId": request_id, "data": body}

    def code(self, code: str, route: str | None) -> str:
        """
        An error code in this dialect.
        """
        if not self.platform:
            return code
        if code == "resource_not_found":
            return _NOT_FOUND.get(route or "", "RESOURCE_NOT_FOUND")
        if code == "request_in_progress" and route == "create_transfer":
            return "TRANSFER_IN_PROGRESS"
        return _PLATFORM_CODES.get(code) or code.upper()

    def scope(self, scope: str) -> str:
        """
        A scope in this dialect (Platform has six, coarser ones).
        """
        return _PLATFORM_SCOPES.get(scope, scope) if self.platform else scope

    def key_ok(self, key: str) -> bool:
        """
        Whether *key* is an idempotency key of this dialect's form.
        """
        return not self.platform or _KEY.fullmatch(key) is not None


def _platform(data: Any) -> Any:
    if isinstance(data, list):
        return [_platform(item) for item in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key in _ENUM_FIELDS and isinstance(value, str):
            out[camel(key)] = _VALUES.get(value) or value.upper()
        else:
            out[_OUT_RENAMES.get(key) or camel(key)] = _platform(value)
    return out


DIALECTS: Final = {
    API_V1: Dialect(API_V1, "/api/v1", "ApiKey"),
    PLATFORM_V1: Dialect(PLATFORM_V1, "/platform/v1", "Bearer"),
}


def dialect_named(api: str) -> Dialect:
    """
    The dialect of *api* (``"api-v1"`` or ``"platform-v1"``).

    Raises:
        ValueError: Another name.
    """
    dialect = DIALECTS.get(api)
    if dialect is None:
        raise ValueError(f"api must be one of {', '.join(DIALECTS)}, not {api!r}")
    return dialect
