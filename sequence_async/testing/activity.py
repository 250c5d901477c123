"""
The fake server's Platform-only records: the audit log, external transactions.

Owns ``Activity``: every authenticated Platform request as an audit-log entry
(``AuditLogEntry``: key, path, action, request id, outcome, error code),
the external transactions of linked accounts (empty until a test adds
some), the filters of ``GET /audit-logs``, ``GET /external-transactions``
and the card transactions (api-v1's ``GET /cards/{id}/transactions``,
Platform's ``GET /card-transactions``), newest first, and Platform's shape
of a card transaction.

May import: ``testing.api``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from .api import CARD_DIRECTIONS, between, enum_param, iso, when


AUDIT_KEPT: Final = 100_000
ACTIONS: Final = {
    "get_account": "GET_ACCOUNT",
    "list_accounts": "LIST_ACCOUNTS",
    "list_transfers": "LIST_TRANSFERS",
    "list_account_transfers": "LIST_TRANSFERS",
    "get_transfer": "GET_TRANSFER",
    "create_transfer": "CREATE_TRANSFER",
    "trigger_rule": "TRIGGER_RULE",
    "list_rules": "LIST_RULES",
    "get_rule": "GET_RULE",
    "list_rule_executions": "LIST_RULE_EXECUTIONS",
    "get_rule_execution": "GET_RULE_EXECUTION",
    "list_audit_logs": "LIST_AUDIT_LOGS",
}
_DIRECTIONS: Final = ("money_in", "money_out")
_STATUSES: Final = ("pending", "complete")


class Activity:
    """
    The audit log and the external transactions of one organization.

    Args:
        keys: The API keys, in seed order (an entry names its key by index).
        clock: Epoch seconds.
    """

    def __init__(self, keys: list[str], clock: Callable[[], float]) -> None:
        self._key_ids = {key: f"key_{n:04d}" for n, key in enumerate(keys, 1)}
        self._clock = clock
        self.audit: deque[dict[str, Any]] = deque(maxlen=AUDIT_KEPT)
        self.external_transactions: list[dict[str, Any]] = []

    def record(
        self,
        key: str,
        *,
        path: str,
        route: str,
        request_id: str,
        error_code: str | None,
    ) -> None:
        """
        Add the audit-log entry of one answered request.
        """
        key_id = self._key_ids.get(key, "key_unknown")
        self.audit.append(
            {
                "id": f"aud_{len(self.audit) + 1:010d}",
                "created_at": iso(self._clock()),
                "api_key_id": key_id,
                "api_key_name": f"Key {key_id}",
                "path": path,
                "action": ACTIONS.get(route),
                "request_id": request_id,
                "outcome": "FAILURE" if error_code else "SUCCESS",
                "error_code": error_code,
            }
        )

    def audit_matching(self, query: Mapping[str, str]) -> list[Any]:
        """
        The entries matching *query*, newest first.
        """
        key_id, action = query.get("api_key_id"), query.get("action")
        start, end = when(query, "from"), when(query, "to")
        return [
            entry
            for entry in reversed(self.audit)
            if (not key_id or entry["api_key_id"] == key_id)
            and (not action or entry["action"] == action)
            and between(entry["created_at"], start, end)
        ]

    def external_matching(
        self, account_ids: list[str], query: Mapping[str, str]
    ) -> list[Any]:
        """
        The external transactions of *account_ids* matching *query*, newest first.
        """
        direction = enum_param(query, "direction", _DIRECTIONS)
        status = enum_param(query, "status", _STATUSES)
        start, end = when(query, "from"), when(query, "to")
        rows = [
            t
            for t in self.external_transactions
            if t["account_id"] in account_ids
            and (not direction or t["direction"] == direction)
            and (not status or t["status"] == status)
            and between(t["transaction_date"], start, end)
        ]
        rows.sort(key=lambda t: t["transaction_date"], reverse=True)
        return rows


def card_transactions_of(
    transactions: list[dict[str, Any]],
    card_ids: Collection[str],
    query: Mapping[str, str],
) -> list[tuple[int, Any]]:
    """
    Return the cards' transactions matching *query*, newest first, as ``(seq, item)``.
    """
    direction = enum_param(query, "direction", CARD_DIRECTIONS)
    start, end = when(query, "from"), when(query, "to")
    rows = [
        t
        for t in transactions
        if t["card_id"] in card_ids
        and (not direction or t["direction"] == direction)
        and between(t["created_at"], start, end)
    ]
    rows.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
    return [(len(rows) - n, t) for n, t in enumerate(rows)]


def platform_card_transaction(
    transaction: Mapping[str, Any], account: Mapping[str, Any]
) -> dict[str, Any]:
    """
    A card transaction in Platform's shape (Appendix A.4, section 7.7).

    A ``debit`` is a ``MONEY_OUT`` ``PURCHASE``, a ``credit`` a ``MONEY_IN``
    ``REFUND``; every one is ``COMPLETE``, completed when made, on a debit card.
    """
    refund = transaction["direction"] == "credit"
    return {
        "id": transaction["id"],
        "card_id": transaction["card_id"],
        "card_type": "DEBIT_CARD",
        "account": {
            "id": account.get("id"),
            "name": account.get("name"),
            "type": account.get("type"),
        },
        "direction": "money_in" if refund else "money_out",
        "subtype": "REFUND" if refund else "PURCHASE",
        "status": "complete",
        "amount_in_cents": transaction.get("amount_in_cents"),
        "description": transaction.get("description"),
        "created_at": transaction["created_at"],
        "completed_at": transaction["created_at"],
    }
