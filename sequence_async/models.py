"""
The nouns of the API as frozen attrs values, and their enums.

Every model is keyword-only and lenient: fields the reference does not show
for certain default to ``None``, unknown fields are ignored, and an enum field
holds the raw string when the server sends a value this version does not know
(typed ``SomeEnum | str``). Money is integer cents; timestamps are aware
datetimes. May import: nothing from the package (attrs only).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs


__all__ = [
    "TERMINAL_STATUSES",
    "Account",
    "AccountRef",
    "AccountType",
    "AuditLogEntry",
    "Balance",
    "Card",
    "CardTransaction",
    "ExecutionMode",
    "ExecutionStatus",
    "ExternalTransaction",
    "Page",
    "PageInfo",
    "Rule",
    "RuleExecution",
    "RuleStatus",
    "RuleStep",
    "RuleSummary",
    "RuleTrigger",
    "Transfer",
    "TransferDirection",
    "TransferOrigin",
    "TransferStatus",
]

T = TypeVar("T")


class AccountType(enum.StrEnum):
    """
    Kind of account.
    """

    INCOME_SOURCE = "income_source"
    POD = "pod"
    EXTERNAL_ACCOUNT = "external_account"


class RuleStatus(enum.StrEnum):
    """
    Whether a rule may run.
    """

    ENABLED = "enabled"
    DISABLED = "disabled"


class ExecutionStatus(enum.StrEnum):
    """
    Status of a rule execution; the last three are terminal.
    """

    IN_PROGRESS = "in_progress"
    EXECUTED = "executed"
    PARTIAL = "partial"
    FAILED = "failed"


class ExecutionMode(enum.StrEnum):
    """
    Whether a run moved money (``live``) or was a dry run (``simulation``).
    """

    LIVE = "live"
    SIMULATION = "simulation"


TERMINAL_STATUSES = frozenset(ExecutionStatus) - {ExecutionStatus.IN_PROGRESS}


class TransferDirection(enum.StrEnum):
    """
    Direction of a transfer.
    """

    MONEY_IN = "money_in"
    MONEY_OUT = "money_out"
    INTERNAL = "internal"


class TransferOrigin(enum.StrEnum):
    """
    Where a transfer comes from (Platform's ``DIRECT_DEPOSIT`` is ``PAYCHECK``).
    """

    PAYCHECK = "paycheck"
    CHECK_DEPOSIT = "check_deposit"
    CASHBACK = "cashback"
    USER_PULL = "user_pull"
    RULE = "rule"
    USER = "user"
    EXTERNAL_PULL = "external_pull"


class TransferStatus(enum.StrEnum):
    """
    Status of a transfer (the reference lists part of the set; others stay raw).
    """

    PENDING_APPROVAL = "pending_approval"
    PROCESSING = "processing"
    PENDING = "pending"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    ERROR = "error"
    CANCELLED = "cancelled"


@attrs.frozen(kw_only=True)
class AccountRef:
    """
    A reference to an account inside a rule or a transfer.
    """

    id: str | None = None
    type: AccountType | str | None = None
    name: str | None = None


@attrs.frozen(kw_only=True)
class Balance:
    """
    An account's balance, in cents (``error`` set when the bank did not answer).
    """

    balance_in_cents: int | None = None
    available_balance_in_cents: int | None = None
    last_statement_balance_in_cents: int | None = None
    next_payment_minimum_in_cents: int | None = None
    balance_last_updated_at: datetime | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class Account:
    """
    An income source, pod or external account; ``balance`` only from ``get``.
    """

    id: str
    name: str | None = None
    type: AccountType | str | None = None
    description: str | None = None
    external_account_type: str | None = None
    beneficiary_name: str | None = None
    institution_name: str | None = None
    can_be_source: bool | None = None
    can_be_destination: bool | None = None
    account_number_mask: str | None = None
    routing_number_mask: str | None = None
    balance: Balance | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    request_id: str | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class RuleSummary:
    """
    A rule as ``rules.list()`` returns it.
    """

    id: str
    nickname: str | None = None
    description: str | None = None
    status: RuleStatus | str | None = None
    trigger_type: str | None = None
    source: AccountRef | None = None
    is_supported: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class RuleTrigger:
    """
    What starts a rule (``ON_FUNDS_TRANSFERRED``, ``SCHEDULED``, ``MANUAL``, ...).
    """

    type: str
    account_id: str | None = None
    schedule_type: str | None = None
    start_date: str | None = None


@attrs.frozen(kw_only=True)
class RuleStep:
    """
    One step of a rule: conditions and actions, kept as the server's plain data.

    The reference shows only part of their grammar, so they are not modelled
    further: a new action type can never break parsing.
    """

    conditions: Mapping[str, Any] | None = None
    actions: tuple[Mapping[str, Any], ...] = ()


@attrs.frozen(kw_only=True)
class Rule:
    """
    A whole rule, as ``rules.get()`` returns it.
    """

    id: str
    nickname: str | None = None
    description: str | None = None
    status: RuleStatus | str | None = None
    trigger: RuleTrigger | None = None
    steps: tuple[RuleStep, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    request_id: str | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class RuleExecution:
    """
    One run of a rule.

    ``status`` is terminal when it is ``executed``, ``partial`` or ``failed``.
    Sequence counts a run as clean only when it is ``executed``,
    ``conditions_not_met`` is false and ``transfers_failed`` is 0: all three
    are here.
    """

    id: str
    rule_id: str | None = None
    rule_name: str | None = None
    trigger_type: str | None = None
    status: ExecutionStatus | str
    created_at: datetime | None = None
    trigger_details: Mapping[str, Any] | None = None
    step_index_matched: int | None = None
    conditions_not_met: bool | None = None
    transfers_attempted: int | None = None
    transfers_completed: int | None = None
    transfers_failed: int | None = None
    transfers_pending: int | None = None
    transfer_ids: tuple[str, ...] = ()
    error_message: str | None = None
    execution_mode: ExecutionMode | str | None = None
    next_attempt_at: datetime | None = None
    request_id: str | None = attrs.field(default=None, eq=False)

    @property
    def done(self) -> bool:
        """
        Whether the status is terminal.
        """
        return self.status in TERMINAL_STATUSES

    @property
    def settling(self) -> bool:
        """
        Whether only settlement is left: the job ran and its transfers exist.

        ``in_progress``, pending transfers, no ``next_attempt_at`` (ACH may
        take days).
        """
        return (
            self.status == ExecutionStatus.IN_PROGRESS
            and (self.transfers_pending or 0) > 0
            and self.next_attempt_at is None
        )


@attrs.frozen(kw_only=True)
class Transfer:
    """
    A movement of money, in cents.
    """

    id: str
    amount_in_cents: int | None = None
    direction: TransferDirection | str | None = None
    origin: TransferOrigin | str | None = None
    status: TransferStatus | str | None = None
    source: AccountRef | None = None
    destination: AccountRef | None = None
    rule_id: str | None = None
    rule_execution_id: str | None = None
    error_code: str | None = None
    description: str | None = None
    execution_mode: ExecutionMode | str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    request_id: str | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class ExternalTransaction:
    """
    Money in or out of a linked external account (``platform-v1`` only).
    """

    id: str
    account_id: str | None = None
    amount_in_cents: int | None = None
    direction: TransferDirection | str | None = None
    status: str | None = None
    description: str | None = None
    transaction_date: str | None = None


@attrs.frozen(kw_only=True)
class AuditLogEntry:
    """
    One API call as Sequence's audit log recorded it (``platform-v1`` only).
    """

    id: str
    created_at: datetime | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    path: str | None = None
    action: str | None = None
    request_id: str | None = None
    outcome: str | None = None
    error_code: str | None = None


@attrs.frozen(kw_only=True)
class Card:
    """
    A debit card (experimental: "coming soon" in Sequence's docs).
    """

    id: str
    type: str | None = None
    status: str | None = None
    last_four: str | None = None
    holder_name: str | None = None
    expiration_date: str | None = None
    account_id: str | None = None
    created_at: datetime | None = None
    request_id: str | None = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class CardTransaction:
    """
    A purchase (api-v1 ``debit``; Platform ``money_out``) or refund; experimental.
    """

    id: str
    card_id: str | None = None
    direction: TransferDirection | str | None = None
    amount_in_cents: int | None = None
    description: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    card_type: str | None = None  # platform-v1: DEBIT_CARD, OMNI_CARD
    subtype: str | None = None  # platform-v1: PURCHASE, REFUND
    account: AccountRef | None = None  # platform-v1: the card's pod
    completed_at: datetime | None = None


@attrs.frozen(kw_only=True)
class PageInfo:
    """
    Where a page ends: pass ``end_cursor`` as ``after`` for the next one.
    """

    end_cursor: str | None = None
    has_next_page: bool | None = None


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """
    One page of a paginated list (``retry_after``: the answer's hint, seconds).
    """

    items: tuple[T, ...]
    page_info: PageInfo
    request_id: str | None = None
    retry_after: float | None = attrs.field(default=None, eq=False)
