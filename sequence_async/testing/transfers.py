"""
The fake server's transfers: the ledger, manual transfers and their listing.

Owns the transfer records (those rules create and manual ones), the
``processing`` to ``complete`` step of a manual transfer, the checks of
``POST /transfers`` (body, ``MANUAL_TRANSFER`` pairs and ``max_amount``,
known accounts) and the filters of ``GET /transfers``.

May import: ``testing.api``, ``testing.seed``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

import attrs

from .api import (
    ACCOUNT_ROLES,
    DIRECTIONS,
    ORIGINS,
    TRANSFER_STATUSES,
    ApiError,
    between,
    enum_param,
    forbidden,
    invalid,
    iso,
    when,
)
from .seed import Permission


MANUAL_SETTLE_SECONDS = 1.0


@attrs.frozen
class ManualTransfer:
    """
    A checked ``POST /transfers`` body.
    """

    source: str
    target: str
    amount: int
    description: str | None


class Ledger:
    """
    Every transfer, by id, in creation order.
    """

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self._seq: dict[str, int] = {}
        self._completing: list[tuple[float, str]] = []

    def add(
        self, seq: int, transfer: dict[str, Any], *, complete_at: float | None = None
    ) -> None:
        """
        Record *transfer*; a ``processing`` one completes at *complete_at*.
        """
        self.by_id[transfer["id"]] = transfer
        self._seq[transfer["id"]] = seq
        if complete_at is not None:
            heapq.heappush(self._completing, (complete_at, transfer["id"]))

    def settle(self, now: float) -> None:
        """
        Complete the processing transfers whose time has come.
        """
        while self._completing and self._completing[0][0] <= now:
            _, transfer_id = heapq.heappop(self._completing)
            transfer = self.by_id[transfer_id]
            if transfer["status"] == "processing":
                transfer["status"] = "complete"
                transfer["completed_at"] = iso(now)

    def matching(self, query: Mapping[str, str]) -> list[tuple[int, Any]]:
        """
        Return the transfers of ``account_id`` matching *query*, newest first.
        """
        account_id = query["account_id"]
        role = enum_param(query, "account_role", ACCOUNT_ROLES) or "either"
        direction = enum_param(query, "direction", DIRECTIONS)
        origin = enum_param(query, "origin", ORIGINS)
        status = enum_param(query, "status", TRANSFER_STATUSES)
        start, end = when(query, "from"), when(query, "to")
        out = []
        for transfer_id, transfer in reversed(self.by_id.items()):
            source = (transfer.get("source") or {}).get("id")
            destination = (transfer.get("destination") or {}).get("id")
            matches = {
                "source": source == account_id,
                "destination": destination == account_id,
                "either": account_id in (source, destination),
            }[role]
            if (
                not matches
                or (direction and transfer["direction"] != direction)
                or (origin and transfer["origin"] != origin)
                or (status and transfer["status"] != status)
                or not between(transfer["created_at"], start, end)
            ):
                continue
            out.append((self._seq[transfer_id], transfer))
        return out


def check_manual_transfer(
    permissions: tuple[Permission, ...], body: Any, accounts: Mapping[str, Any]
) -> ManualTransfer:
    """
    Check a ``POST /transfers`` body against the key and the accounts.

    Raises:
        ApiError: 400 for a bad body or unknown account, 403 when no
            ``MANUAL_TRANSFER`` entry allows the pair or the amount.
    """
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    source, target = body.get("source_account_id"), body.get("destination_account_id")
    amount = body.get("amount_in_cents")
    if not isinstance(source, str) or not isinstance(target, str):
        raise invalid(
            "source_account_id and destination_account_id are required strings."
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise invalid("amount_in_cents must be a positive integer.")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("description must be a string.")
    entries = [
        t
        for p in permissions
        if p.scope == "MANUAL_TRANSFER"
        for t in p.transfers
        if t.get("source") == source and t.get("target") == target
    ]
    if not entries:
        raise forbidden()
    if all(
        t.get("max_amount") is not None and amount > t["max_amount"] for t in entries
    ):
        raise ApiError(
            403,
            "maximum_amount_exceeded",
            "The amount exceeds this key's max_amount for this pair.",
        )
    for name, account_id in (("source", source), ("destination", target)):
        if account_id not in accounts:
            raise ApiError(
                400,
                f"transfer_{name}_not_found",
                f"Account '{account_id}' was not found.",
            )
    return ManualTransfer(source, target, amount, description)


def rule_transfer(
    transfer_id: str,
    amount: int,
    action: Mapping[str, Any],
    execution: Mapping[str, Any],
    *,
    failed: bool,
    now: str,
) -> dict[str, Any]:
    """
    The transfer an execution's *action* made: ``complete``, or ``error``.
    """
    return {
        "id": transfer_id,
        "amount_in_cents": max(amount, 1),
        "direction": "internal",
        "origin": "rule",
        "status": "error" if failed else "complete",
        "source": action.get("source"),
        "destination": action.get("destination"),
        "rule_id": execution["rule_id"],
        "rule_execution_id": execution["id"],
        "error_code": "INSUFFICIENT_FUNDS" if failed else None,
        "execution_mode": execution.get("execution_mode", "live"),
        "created_at": now,
        "completed_at": None if failed else now,
    }


def account_ref(account: Mapping[str, Any]) -> dict[str, Any]:
    """
    The ``{id, type, name}`` reference to an account a transfer carries.
    """
    return {
        "id": account["id"],
        "type": account.get("type"),
        "name": account.get("name"),
    }
