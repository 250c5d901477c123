"""
The fake server's memory and rules: what each endpoint answers.

Owns the organization's data, permission checks, cursor pagination, the
execution lifecycle (``in_progress``, then ``executed``/``partial``/``failed``
after a drawn duration, with transfers for executed steps), manual transfers,
idempotency (a replay within 24 h creates nothing; another body: 400; a
concurrent duplicate: 409) and the clock. No HTTP here: ``app`` turns requests
into calls and replies into responses. Judged against the API reference, not
against the client's code.

May import: ``testing.seed``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .seed import Behavior, Permission, Seed


IDEMPOTENCY_TTL = 24 * 3600.0
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
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(kind: str, resource_id: str) -> ApiError:
    """
    The documented 404 answer for an unknown id of *kind*.
    """
    return ApiError(
        404, "resource_not_found", f"{kind} with id '{resource_id}' was not found."
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class ManualClock:
    """
    A clock that moves only when told: ``advance(seconds)``.

    It starts at the real time (or *start*), so timestamps look current.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        """
        The current time, in epoch seconds.
        """
        return self.now

    def advance(self, seconds: float) -> None:
        """
        Move time forward.
        """
        self.now += seconds


@attrs.define(eq=False)
class _Execution:
    seq: int
    data: dict[str, Any]
    rule: Mapping[str, Any]
    finish_at: float
    outcome: str
    visible_at: float
    amount: int | None
    idempotency_key: str | None = None


@attrs.define(eq=False)
class _Idem:
    fingerprint: str
    created: float
    reply: tuple[int, Any] | None = None  # None while the first request runs


class State:
    """
    The fake organization: its data, keys, executions and transfers.

    Args:
        seed: Starting data.
        clock: Epoch seconds (a ``ManualClock`` in deterministic tests).
        rng_seed: Seed of the random durations and outcomes.
        visibility_delay: Seconds a new execution answers 404 and is left
            out of lists (eventual consistency).
    """

    def __init__(
        self,
        seed: Seed,
        *,
        clock: Callable[[], float] = time.time,
        rng_seed: int = 0,
        visibility_delay: float = 0.0,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(rng_seed)
        self.visibility_delay = visibility_delay
        self.accounts = {a["id"]: dict(a) for a in seed.accounts}
        self.balances = dict(seed.balances)
        self.rules = {r["id"]: dict(r) for r in seed.rules}
        self.cards = {c["id"]: dict(c) for c in seed.cards}
        self.card_transactions = [dict(t) for t in seed.card_transactions]
        self.keys: dict[str, tuple[Permission, ...]] = dict(seed.keys)
        self.behaviors: dict[str, Behavior] = dict(seed.behaviors)
        self.default_behavior = Behavior()
        self.executions: dict[str, _Execution] = {}
        self._by_rule: dict[str, list[_Execution]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self._transfer_seq: dict[str, int] = {}
        self._transfer_done: list[tuple[float, str]] = []
        self._due: list[tuple[float, int, str]] = []
        self._idem: dict[tuple[str, str, str], _Idem] = {}
        self._seq = 0
        self.idempotency_keys: list[str] = []

    # -- housekeeping ------------------------------------------------------

    def _next(self, prefix: str) -> tuple[int, str]:
        self._seq += 1
        return self._seq, f"{prefix}_{self._seq:010d}"

    def settle(self) -> None:
        """
        Finish every execution and transfer whose time has come.
        """
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            _, _, execution_id = heapq.heappop(self._due)
            execution = self.executions[execution_id]
            if execution.data["status"] == "in_progress":
                self._finish(execution, execution.outcome)
        while self._transfer_done and self._transfer_done[0][0] <= now:
            _, transfer_id = heapq.heappop(self._transfer_done)
            transfer = self.transfers[transfer_id]
            if transfer["status"] == "processing":
                transfer["status"] = "complete"
                transfer["completed_at"] = _iso(now)

    # -- permissions -------------------------------------------------------

    def permissions(self, authorization: str | None) -> tuple[Permission, ...]:
        """
        Return the permissions of the key in an ``Authorization`` header.

        Raises:
            ApiError: 401 for a missing, malformed or unknown key.
        """
        scheme, _, key = (authorization or "").partition(" ")
        if scheme != "ApiKey" or key not in self.keys:
            raise ApiError(401, "unauthorized", "Missing or invalid API key.")
        return self.keys[key]

    @staticmethod
    def forbidden() -> ApiError:
        """
        The 403 answer.
        """
        return ApiError(
            403, "forbidden", "This API key does not have the required permission."
        )

    @staticmethod
    def require(
        permissions: tuple[Permission, ...], scope: str, resource_id: str | None = None
    ) -> None:
        """
        Raise 403 unless some entry of *scope* covers *resource_id*.
        """
        if not any(p.scope == scope and p.allows(resource_id) for p in permissions):
            raise State.forbidden()

    # -- idempotency -------------------------------------------------------

    def idempotent_begin(
        self, key_id: str, route: str, idem_key: str, body: Any
    ) -> tuple[int, Any] | None:
        """
        Start an idempotent request: the stored reply of a replay, else ``None``.

        Raises:
            ApiError: 400 for a bad key or a replay with another body; 409 while
                the first request with this key still runs.
        """
        if not 1 <= len(idem_key) <= 255 or not all(" " < c <= "~" for c in idem_key):
            raise ApiError(
                400,
                "invalid_request",
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            )
        now = self.clock()
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True).encode()
        ).hexdigest()
        slot = (key_id, route, idem_key)
        entry = self._idem.get(slot)
        if entry is not None and now - entry.created > IDEMPOTENCY_TTL:
            entry = None
        if entry is None:
            self._idem[slot] = _Idem(fingerprint, now)
            self.idempotency_keys.append(idem_key)
            return None
        if entry.fingerprint != fingerprint:
            raise ApiError(
                400,
                "idempotency_key_mismatch",
                "This Idempotency-Key was used with another request body.",
            )
        if entry.reply is None:
            raise ApiError(
                409,
                "request_in_progress",
                "A request with this Idempotency-Key is still in progress.",
            )
        return entry.reply

    def idempotent_end(
        self, key_id: str, route: str, idem_key: str, reply: tuple[int, Any] | None
    ) -> None:
        """
        Store the reply of an idempotent request (``None``: it failed, forget it).
        """
        slot = (key_id, route, idem_key)
        if reply is None:
            self._idem.pop(slot, None)
        elif slot in self._idem:
            self._idem[slot].reply = reply

    # -- pagination --------------------------------------------------------

    @staticmethod
    def page(
        items: list[tuple[int, Any]], query: Mapping[str, str]
    ) -> tuple[list[Any], dict[str, Any]]:
        """
        Cut one page from *items* (``(seq, item)``, newest first).

        Raises:
            ApiError: 400 for a bad ``first`` or ``after``.
        """
        raw_first = query.get("first", "20")
        try:
            first = int(raw_first)
        except ValueError:
            first = 0
        if not 1 <= first <= 100:
            raise ApiError(
                400, "invalid_request", "first must be an integer from 1 to 100."
            )
        start = 0
        if "after" in query:
            try:
                after = int(
                    base64.urlsafe_b64decode(query["after"].encode())
                    .decode()
                    .removeprefix("c:")
                )
            except ValueError:
                raise ApiError(
                    400, "invalid_request", "after is not a valid cursor."
                ) from None
            start = next(
                (i for i, (seq, _) in enumerate(items) if seq < after), len(items)
            )
        chunk = items[start : start + first]
        end_cursor = (
            base64.urlsafe_b64encode(f"c:{chunk[-1][0]}".encode()).decode()
            if chunk
            else None
        )
        return [item for _, item in chunk], {
            "end_cursor": end_cursor,
            "has_next_page": start + first < len(items),
        }

    # -- executions --------------------------------------------------------

    def trigger(
        self, rule_id: str, body: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """
        Start an execution of *rule_id*; return ``{"execution_id": ...}``.

        Raises:
            ApiError: 404 for an unknown rule, 403 for a disabled one, 400 for
                a bad body.
        """
        rule = self.rules.get(rule_id)
        if rule is None:
            raise not_found("Rule", rule_id)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_request", "The request body must be a JSON object."
            )
        amount = body.get("manual_execute_amount")
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or amount < 0
        ):
            raise ApiError(
                400,
                "invalid_request",
                "manual_execute_amount must be a non-negative integer (cents).",
            )
        if rule.get("status") != "enabled":
            raise ApiError(403, "rule_deactivated", f"Rule '{rule_id}' is disabled.")
        behavior = self.behaviors.get(rule_id, self.default_behavior)
        now = self.clock()
        duration = (
            behavior.median * math.exp(self.rng.gauss(0, behavior.sigma))
            if behavior.sigma > 0
            else behavior.median
        )
        roll = self.rng.random()
        outcome = (
            "failed"
            if roll < behavior.failure_rate
            else "partial"
            if roll < behavior.failure_rate + behavior.partial_rate
            else "executed"
        )
        seq, execution_id = self._next("rex")
        manual = rule["trigger"].get("type") == "MANUAL"
        data: dict[str, Any] = {
            "id": execution_id,
            "rule_id": rule_id,
            "rule_name": rule.get("nickname"),
            "trigger_type": "manual",
            "status": "in_progress",
            "created_at": _iso(now),
            "trigger_details": {
                "type": "manual",
                "amount_in_cents": amount if manual else None,
            },
            "step_index_matched": None,
            "conditions_not_met": False,
            "transfers_attempted": 0,
            "transfers_completed": 0,
            "transfers_failed": 0,
            "transfers_pending": 0,
            "transfer_ids": [],
            "error_message": None,
        }
        execution = _Execution(
            seq=seq,
            data=data,
            rule=rule,
            finish_at=now + duration,
            outcome=outcome,
            visible_at=now + self.visibility_delay,
            amount=amount if manual else None,
            idempotency_key=idempotency_key,
        )
        self.executions[execution_id] = execution
        self._by_rule.setdefault(rule_id, []).append(execution)
        heapq.heappush(self._due, (execution.finish_at, seq, execution_id))
        return {"execution_id": execution_id}

    def finish(self, execution_id: str, status: str = "executed") -> None:
        """
        End an execution now with *status* (a test's control).
        """
        if status not in EXECUTION_STATUSES[1:]:
            raise ValueError(f"status must be one of {EXECUTION_STATUSES[1:]}")
        execution = self.executions[execution_id]
        if execution.data["status"] == "in_progress":
            self._finish(execution, status)

    def _finish(self, execution: _Execution, outcome: str) -> None:
        now = self.clock()
        actions = execution.rule.get("steps", [{}])[0].get("actions", [])
        data = execution.data
        data["step_index_matched"] = 0
        ids: list[str] = []
        completed = failed = 0
        for n, action in enumerate(actions):
            amount = (
                execution.amount
                if execution.amount is not None
                else action.get("amount_in_cents", 0)
            )
            fails = outcome == "failed" or (
                outcome == "partial" and n == len(actions) - 1
            )
            if amount <= 0 and not fails:
                continue
            seq, transfer_id = self._next("txr")
            self._transfer_seq[transfer_id] = seq
            self.transfers[transfer_id] = {
                "id": transfer_id,
                "amount_in_cents": max(amount, 1),
                "direction": "internal",
                "origin": "rule",
                "status": "error" if fails else "complete",
                "source": action.get("source"),
                "destination": action.get("destination"),
                "rule_id": data["rule_id"],
                "rule_execution_id": data["id"],
                "error_code": "INSUFFICIENT_FUNDS" if fails else None,
                "created_at": _iso(now),
                "completed_at": None if fails else _iso(now),
            }
            ids.append(transfer_id)
            failed += fails
            completed += not fails
        data.update(
            status=outcome,
            transfers_attempted=len(ids),
            transfers_completed=completed,
            transfers_failed=failed,
            transfer_ids=ids,
            error_message="Insufficient funds in the source account."
            if outcome == "failed"
            else None,
        )

    def visible_execution(self, execution_id: str) -> _Execution | None:
        """
        Return the execution if it exists and is visible yet.
        """
        execution = self.executions.get(execution_id)
        if execution is None or execution.visible_at > self.clock():
            return None
        return execution

    def list_executions(self, query: Mapping[str, str]) -> list[tuple[int, Any]]:
        """
        Return the visible executions matching *query*, newest first.
        """
        rule_id = query["rule_id"]
        status = enum_param(query, "status", EXECUTION_STATUSES)
        trigger_type = enum_param(query, "trigger_type", EXECUTION_TRIGGER_TYPES)
        start, end = _when(query, "from"), _when(query, "to")
        now = self.clock()
        out = []
        for execution in reversed(self._by_rule.get(rule_id, [])):
            data = execution.data
            if (
                execution.visible_at > now
                or (status and data["status"] != status)
                or (trigger_type and data["trigger_type"] != trigger_type)
                or not _between(data["created_at"], start, end)
            ):
                continue
            out.append((execution.seq, data))
        return out

    # -- transfers ---------------------------------------------------------

    def list_transfers(self, query: Mapping[str, str]) -> list[tuple[int, Any]]:
        """
        Return the transfers of ``account_id`` matching *query*, newest first.
        """
        account_id = query["account_id"]
        role = enum_param(query, "account_role", ACCOUNT_ROLES) or "either"
        direction = enum_param(query, "direction", DIRECTIONS)
        origin = enum_param(query, "origin", ORIGINS)
        status = enum_param(query, "status", TRANSFER_STATUSES)
        start, end = _when(query, "from"), _when(query, "to")
        out = []
        for transfer_id, transfer in reversed(self.transfers.items()):
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
                or not _between(transfer["created_at"], start, end)
            ):
                continue
            out.append((self._transfer_seq[transfer_id], transfer))
        return out

    def create_transfer(
        self, permissions: tuple[Permission, ...], body: Any
    ) -> dict[str, Any]:
        """
        Create a manual transfer (``processing``, ``complete`` a moment later).

        Raises:
            ApiError: 400 for a bad body or unknown account, 403 when no
                ``MANUAL_TRANSFER`` entry allows the pair or the amount.
        """
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_request", "The request body must be a JSON object."
            )
        source, target = (
            body.get("source_account_id"),
            body.get("destination_account_id"),
        )
        amount = body.get("amount_in_cents")
        if not isinstance(source, str) or not isinstance(target, str):
            raise ApiError(
                400,
                "invalid_request",
                "source_account_id and destination_account_id are required strings.",
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ApiError(
                400, "invalid_request", "amount_in_cents must be a positive integer."
            )
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ApiError(400, "invalid_request", "description must be a string.")
        entries = [
            t
            for p in permissions
            if p.scope == "MANUAL_TRANSFER"
            for t in p.transfers
            if t.get("source") == source and t.get("target") == target
        ]
        if not entries:
            raise State.forbidden()
        if all(
            t.get("max_amount") is not None and amount > t["max_amount"]
            for t in entries
        ):
            raise ApiError(
                403,
                "maximum_amount_exceeded",
                "The amount exceeds this key's max_amount for this pair.",
            )
        for name, account_id in (("source", source), ("destination", target)):
            if account_id not in self.accounts:
                raise ApiError(
                    400,
                    f"transfer_{name}_not_found",
                    f"Account '{account_id}' was not found.",
                )
        now = self.clock()
        seq, transfer_id = self._next("txr")
        self._transfer_seq[transfer_id] = seq
        transfer = {
            "id": transfer_id,
            "amount_in_cents": amount,
            "direction": "internal",
            "origin": "user",
            "status": "processing",
            "source": _ref(self.accounts[source]),
            "destination": _ref(self.accounts[target]),
            "rule_id": None,
            "rule_execution_id": None,
            "error_code": None,
            "description": description,
            "created_at": _iso(now),
            "completed_at": None,
        }
        self.transfers[transfer_id] = transfer
        heapq.heappush(self._transfer_done, (now + 1.0, transfer_id))
        return transfer

    # -- accounts and cards ------------------------------------------------

    def account(self, account_id: str, *, with_balance: bool) -> dict[str, Any]:
        """
        Return one account (with its balance when asked), or raise 404.
        """
        account = self.accounts.get(account_id)
        if account is None:
            raise not_found("Account", account_id)
        if not with_balance:
            return account
        balance = self.balances.get(account_id)
        return account | {
            "balance": None
            if balance is None
            else {
                "balance_in_cents": balance,
                "available_balance_in_cents": balance,
                "balance_last_updated_at": _iso(self.clock()),
                "error": None,
            }
        }

    def card_transactions_of(
        self, card_id: str, query: Mapping[str, str]
    ) -> list[tuple[int, Any]]:
        """
        Return a card's transactions matching *query*, newest first.
        """
        direction = enum_param(query, "direction", CARD_DIRECTIONS)
        start, end = _when(query, "from"), _when(query, "to")
        rows = [
            t
            for t in self.card_transactions
            if t["card_id"] == card_id
            and (not direction or t["direction"] == direction)
            and _between(t["created_at"], start, end)
        ]
        rows.sort(key=lambda t: (t["created_at"], t["id"]), reverse=True)
        return [(len(rows) - n, t) for n, t in enumerate(rows)]


def _ref(account: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": account["id"],
        "type": account.get("type"),
        "name": account.get("name"),
    }


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
        raise ApiError(
            400, "invalid_request", f"{name} must be one of: {', '.join(allowed)}."
        )
    return value


def _when(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"{name} must be an ISO 8601 timestamp."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _between(stamp: str, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    when = datetime.fromisoformat(stamp)
    return (start is None or when >= start) and (end is None or when <= end)
