"""
The two API surfaces Sequence publishes, as small immutable profiles.

Owns ``Profile`` and its two values, ``API_V1`` (``/api/v1``: ``ApiKey``
auth, snake_case, cursors) and ``PLATFORM_V1`` (``/platform/v1``: ``Bearer``
auth, camelCase, page numbers, UPPERCASE enums, 36-character idempotency
keys). A profile is consulted at the few seams where the surfaces differ:
the ``Authorization`` value, paths, field and query names, paging, enum
values sent, error codes, idempotency-key rules and the features one surface
lacks. Pure: plain values in, plain values out.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import attrs

from . import errors
from ._checks import check_idempotency_key, check_text, path


API_V1: Final = "api-v1"
PLATFORM_V1: Final = "platform-v1"
API_NAMES: Final = (API_V1, PLATFORM_V1)
# Query parameters whose values are enum members: UPPERCASE on Platform.
_ENUM_PARAMS: Final = frozenset(
    {"type", "status", "direction", "origin", "trigger_type", "execution_mode"}
)
# Query parameters Platform spells in snake_case all the same.
_SNAKE_PARAMS: Final = frozenset({"rule_execution_id"})
_KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9._:/|-]+")
_CAMEL_PART: Final = re.compile(r"_([a-z0-9])")
_SNAKE_PART: Final = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel(name: str) -> str:
    """
    ``amount_in_cents`` -> ``amountInCents``.
    """
    return _CAMEL_PART.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    """
    ``amountInCents`` -> ``amount_in_cents`` (snake_case names are unchanged).
    """
    return _SNAKE_PART.sub(lambda m: "_" + m.group(1).lower(), name)


@attrs.frozen
class Profile:
    """
    What differs between the two surfaces; the rest of the SDK is shared.

    Attributes:
        name: ``"api-v1"`` or ``"platform-v1"``.
        default_base_url: The production URL.
        auth_scheme: ``ApiKey`` or ``Bearer``.
        camel_case: Field and query names are camelCase on the wire.
        page_numbers: Lists page by ``page``/``pageSize`` (else by cursor).
        key_max: The longest idempotency key.
        key_pattern: The pattern a key must match, if any.
        renames: Wire names that are not the mechanical case change of the
            SDK's names (SDK name -> wire name).
        features: Surface-only features this profile has.
        code_errors: Error codes whose class holds for a status below 500
            the table lacks (a 5xx is always a server error).
        min_transfer: The smallest manual transfer, in cents.
        description_pattern: What a transfer's description must match, if
            anything (Platform's ACH label).
        enum_aliases: Enum values named otherwise on this surface (lowercase
            wire value -> the SDK's value), both ways.
    """

    name: str
    default_base_url: str
    auth_scheme: str
    camel_case: bool
    page_numbers: bool
    key_max: int
    key_pattern: re.Pattern[str] | None
    renames: Mapping[str, str]
    features: frozenset[str]
    code_errors: Mapping[str, type[errors.APIStatusError]]
    min_transfer: int = 1
    enum_aliases: Mapping[str, str] = attrs.field(factory=dict)
    description_pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"<Profile {self.name}>"

    def authorization(self, key: str) -> str:
        """
        The ``Authorization`` header value for *key*.
        """
        return f"{self.auth_scheme} {key}"

    def require(self, feature: str, what: str) -> None:
        """
        Raise ``UnsupportedFeatureError`` naming this profile unless it has *feature*.
        """
        if feature not in self.features:
            other = PLATFORM_V1 if self.name == API_V1 else API_V1
            raise errors.UnsupportedFeatureError(
                f"{what} is not part of Sequence's {self.name} API (only of "
                f"{other}); make the client with SequenceClient(api={other!r})",
                api=self.name,
            )

    def wire(self, name: str) -> str:
        """
        The wire name of the SDK field or parameter *name*.
        """
        renamed = self.renames.get(name)
        if renamed is not None:
            return renamed
        return camel(name) if self.camel_case else name

    def body(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """
        A request body with wire names; ``None`` values left out.
        """
        return {self.wire(k): v for k, v in fields.items() if v is not None}

    def query(self, params: Mapping[str, str]) -> dict[str, str]:
        """
        A query (from ``_checks.query``) with wire names and enum values.
        """
        if not self.camel_case:
            return dict(params)
        wire_values = {sdk: alias for alias, sdk in self.enum_aliases.items()}
        return {
            (k if k in _SNAKE_PARAMS else self.wire(k)): wire_values.get(v, v).upper()
            if k in _ENUM_PARAMS
            else v
            for k, v in params.items()
        }

    def check_description(self, description: object) -> str | None:
        """
        Return a transfer's *description* when this surface accepts it.

        Raises:
            TypeError: Not a string (or ``None``).
            ValueError: Not of the surface's pattern (Platform: at most 10
                letters, digits or spaces).
        """
        text = check_text(description, "description")
        pattern = self.description_pattern
        if text is not None and pattern is not None and not pattern.fullmatch(text):
            raise ValueError(
                f"description must match {pattern.pattern} on {self.name} "
                "(it becomes the ACH label)"
            )
        return text

    def check_idempotency_key(self, key: object) -> str:
        """
        Return *key* when this surface accepts it, else raise before sending.

        Raises:
            TypeError: Not a string.
            ValueError: Too long, or not of the surface's pattern.
        """
        if self.key_pattern is None:
            return check_idempotency_key(key)
        key = check_text(key, "idempotency_key", allow_none=False) or ""
        if len(key) > self.key_max or not self.key_pattern.fullmatch(key):
            raise ValueError(
                f"idempotency_key must be 1 to {self.key_max} characters of "
                f"[A-Za-z0-9._:/|-] on {self.name}"
            )
        return key

    def execution_path(self, rule_id: str | None, execution_id: str) -> str:
        """
        The path of one execution (Platform needs its rule).

        Raises:
            TypeError: No *rule_id* on Platform.
        """
        if not self.page_numbers:
            return path("rule-executions", (execution_id, "execution_id"))
        if rule_id is None:
            raise TypeError(f"rule_id is required on {self.name}")
        return path(
            "rules", (rule_id, "rule_id"), "executions", (execution_id, "execution_id")
        )

    def executions_list(self, rule_id: str) -> tuple[str, dict[str, str]]:
        """
        The path and query of a rule's executions, newest first.
        """
        if not self.page_numbers:
            path("rule-executions", (rule_id, "rule_id"))  # checks the id
            return "/rule-executions", {"rule_id": rule_id}
        return path("rules", (rule_id, "rule_id"), "executions"), {}

    def transfers_list(self, account_id: str) -> tuple[str, dict[str, str]]:
        """
        The path and query of an account's transfers.
        """
        if not self.page_numbers:
            path("transfers", (account_id, "account_id"))
            return "/transfers", {"account_id": account_id}
        return path("accounts", (account_id, "account_id"), "transfers"), {}

    def page_params(self, size: int, after: str | None) -> dict[str, str]:
        """
        The paging part of a list query: ``first``/``after`` or ``page``/``pageSize``.
        """
        if not self.page_numbers:
            return {"first": str(size)} | ({} if after is None else {"after": after})
        return {"page": str(_page_number(after) + 1), "pageSize": str(size)}

    def read_page(
        self,
        data: Any,
        page_info: Mapping[str, Any] | None,
        after: str | None,
    ) -> tuple[Any, Mapping[str, Any] | None]:
        """
        Split a list answer into its items and a cursor-style ``page_info``.

        On Platform, the page number is the cursor: ``end_cursor`` is this
        page's number, and ``start_after`` resumes after it.
        """
        if not self.page_numbers:
            return data, page_info
        if not isinstance(data, dict):
            return data, None
        pagination = data.get("pagination")
        info: dict[str, Any] = {"end_cursor": str(_page_number(after) + 1)}
        if isinstance(pagination, dict):
            has_next = pagination.get("hasNextPage")
            if isinstance(has_next, bool):
                info["has_next_page"] = has_next
        return data.get("items"), info


def _page_number(after: str | None) -> int:
    if after is None:
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 9:
        raise ValueError(f"start_after must be a page number here, not {after[:20]!r}")
    return int(after)


_API_V1_PROFILE: Final = Profile(
    name=API_V1,
    default_base_url="https://api.getsequence.io/api/v1",
    auth_scheme="ApiKey",
    camel_case=False,
    page_numbers=False,
    key_max=255,
    key_pattern=None,
    renames={},
    features=frozenset({"cards"}),
    code_errors={},
)
_PLATFORM_V1_PROFILE: Final = Profile(
    name=PLATFORM_V1,
    default_base_url="https://api.getsequence.io/platform/v1",
    auth_scheme="Bearer",
    camel_case=True,
    page_numbers=True,
    key_max=36,
    key_pattern=_KEY_PATTERN,
    renames={
        "manual_execute_amount": "executeAmount",
        "nickname": "name",
        "account_ids": "accountIds[]",
    },
    features=frozenset(
        {
            "simulation",
            "external_transactions",
            "card_transactions",
            "audit_logs",
            "called_reason",
        }
    ),
    code_errors={
        "INVALID_PARAMETERS": errors.BadRequestError,
        "IDEMPOTENCY_KEY_MISMATCH": errors.BadRequestError,
        "UNAUTHORIZED": errors.AuthenticationError,
        "ACCESS_DENIED": errors.PermissionDeniedError,
        "INVALID_RULE": errors.PermissionDeniedError,
        "RULE_DEACTIVATED": errors.PermissionDeniedError,
        "MAXIMUM_AMOUNT_EXCEEDED": errors.PermissionDeniedError,
        "RULE_EXECUTION_IN_PROGRESS": errors.ConflictError,
        "TRANSFER_IN_PROGRESS": errors.ConflictError,
        "RATE_LIMIT_EXCEEDED": errors.RateLimitError,
        "UNEXPECTED_ERROR": errors.ServerError,
    },
    min_transfer=100,  # $1.00
    description_pattern=re.compile(r"[a-zA-Z0-9 ]{0,10}"),  # the ACH label
    enum_aliases={"direct_deposit": "paycheck"},
)
PROFILES: Final[Mapping[str, Profile]] = {
    API_V1: _API_V1_PROFILE,
    PLATFORM_V1: _PLATFORM_V1_PROFILE,
}
DEFAULT: Final = _API_V1_PROFILE


def profile_named(api: object) -> Profile:
    """
    The profile named *api* (``"api-v1"`` when ``None``).

    Raises:
        ValueError: Not ``"api-v1"`` or ``"platform-v1"``.
        TypeError: Not a string.
    """
    name = check_text(api, "api")
    name = API_V1 if name is None else name  # ("" is no name: refused)
    profile = PROFILES.get(name)
    if profile is None:
        raise ValueError(f"api must be one of {', '.join(API_NAMES)}, not {name!r}")
    return profile


def other_surface(base_url: str, profile: Profile) -> str | None:
    """
    Say so when *base_url* ends in another profile's path, else ``None``.

    For a 401's message: with a base URL of the other API (``/platform/v1``
    on an ``api-v1`` client), a valid key is "invalid".
    """
    path = urllib.parse.urlsplit(base_url).path.rstrip("/")
    for other in PROFILES.values():
        suffix = urllib.parse.urlsplit(other.default_base_url).path
        if other is not profile and path.endswith(suffix):
            return (
                f"the base URL ends in {suffix}, the path of {other.name}, but "
                f"this client speaks {profile.name}: pass api={other.name!r}?"
            )
    return None
