"""
The fake server's memory and rules: what each endpoint means.

Owns the organization's data (accounts, rules, cards, keys, behaviours,
executions, the transfer ledger), permission checks, and the execution
lifecycle: ``in_progress``, then ``executed``/``partial``/``failed`` once
the clock passes a drawn duration, with transfers for executed steps (held
``in_progress`` with pending transfers for ``settlement`` seconds first, if
set; a test may push a run's next attempt later with ``retry_later``). No
HTTP here: ``endpoints`` turn requests into calls. What one execution is
lives in ``executions``, transfers in ``transfers``, idempotency keys in
``idempotency``. Judged against the API reference, not the client's code.

May import: ``testing.activity``, ``testing.api``, ``testing.executions``,
``testing.idempotency``, ``testing.seed``, ``testing.transfers``.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from .activity import Activity
from .api import (
    EXECUTION_STATUSES,
    ApiError,
    forbidden,
    invalid_rule,
    iso,
    not_found,
    unauthorized,
)
from .executions import Execution, draw, execution_json, manual_amount, matching
from .idempotency import Idempotency
from .seed import Behavior, Permission, Seed
from .transfers import (
    MANUAL_SETTLE_SECONDS,
    Ledger,
    account_ref,
    check_manual_transfer,
    rule_transfer,
)


class State:
    """
    The fake organization: its data, keys, executions and transfers.

    Args:
        seed: Starting data.
        clock: Epoch seconds (a ``ManualClock`` in deterministic tests).
        rng_seed: Seed of the random durations and outcomes.
        visibility_delay: Seconds a new execution answers 404 and is left
            out of lists (eventual consistency).
        settlement: Seconds a run that moved money stays ``in_progress``
            with pending transfers before it ends (ACH settlement).
    """

    def __init__(
        self,
        seed: Seed,
        *,
        clock: Callable[[], float] = time.time,
        rng_seed: int = 0,
        visibility_delay: float = 0.0,
        settlement: float = 0.0,
    ) -> None:
        self.clock = clock
        self.settlement = settlement
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
        self.executions: dict[str, Execution] = {}
        self._by_rule: dict[str, list[Execution]] = {}
        self.ledger = Ledger()
        self.transfers = self.ledger.by_id
        self._due: list[tuple[float, int, str]] = []
        self.idempotency = Idempotency(clock)
        self.activity = Activity(list(self.keys), clock)
        self._seq = 0

    @property
    def idempotency_keys(self) -> list[str]:
        """
        Every idempotency key that started a request, in order.
        """
        return self.idempotency.keys

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
            if execution.data["status"] != "in_progress":
                continue
            if execution.settle_at is not None:
                if execution.settle_at <= now:
                    self._settled(execution, execution.outcome)
            elif execution.finish_at <= now:  # else moved by retry_later
                self._finish(execution, execution.outcome)
        self.ledger.settle(now)

    # -- permissions -------------------------------------------------------

    def permissions(
        self, authorization: str | None, *, scheme: str = "ApiKey"
    ) -> tuple[Permission, ...]:
        """
        Return the permissions of the key in an ``Authorization`` header.

        Raises:
            ApiError: 401 for a missing, malformed or unknown key, or another
                scheme than *scheme* (``ApiKey``, or Platform's ``Bearer``).
        """
        given, _, key = (authorization or "").partition(" ")
        if given != scheme or key not in self.keys:
            raise unauthorized()
        return self.keys[key]

    @staticmethod
    def require(
        permissions: tuple[Permission, ...],
        scope: str,
        resource_id: str | None = None,
        *,
        scope_of: Callable[[str], str] = str,
    ) -> None:
        """
        Raise 403 unless some entry of *scope* covers *resource_id*.

        *scope_of* maps scopes to the dialect's (Platform's are coarser).
        """
        wanted = scope_of(scope)
        if not any(
            scope_of(p.scope) == wanted and p.allows(resource_id) for p in permissions
        ):
            raise forbidden()

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
        amount = manual_amount(body)
        simulation = isinstance(body, dict) and body.get("simulation") is True
        if rule.get("status") != "enabled":
            raise ApiError(403, "rule_deactivated", f"Rule '{rule_id}' is disabled.")
        if rule.get("is_supported") is False:
            raise invalid_rule(rule_id)
        now = self.clock()
        duration, outcome = draw(
            self.behaviors.get(rule_id, self.default_behavior), self.rng
        )
        seq, execution_id = self._next("rex")
        if rule["trigger"].get("type") != "MANUAL":
            amount = None
        execution = Execution(
            seq=seq,
            data=execution_json(
                execution_id, rule, amount, iso(now), simulation=simulation
            ),
            rule=rule,
            finish_at=now + duration,
            outcome=outcome,
            visible_at=now + self.visibility_delay,
            amount=amount,
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
        execution = self.executions.get(execution_id)
        if execution is None:
            raise ValueError(f"no execution {execution_id!r} was started")
        if execution.data["status"] != "in_progress":
            return
        if execution.settle_at is None:
            self._finish(execution, status, settle=False)
        self._settled(execution, status)

    def retry_later(self, execution_id: str, seconds: float) -> None:
        """
        Push a running execution's next attempt *seconds* away (``next_attempt_at``).
        """
        execution = self.executions.get(execution_id)
        if execution is None:
            raise ValueError(f"no execution {execution_id!r} was started")
        if execution.data["status"] != "in_progress" or execution.settle_at:
            raise ValueError(f"execution {execution_id} is not running its job")
        execution.finish_at = self.clock() + seconds
        execution.data["next_attempt_at"] = iso(execution.finish_at)
        heapq.heappush(self._due, (execution.finish_at, execution.seq, execution_id))

    def _settled(self, execution: Execution, outcome: str) -> None:
        # The end of settlement: pending transfers complete, the run ends.
        now = iso(self.clock())
        data = execution.data
        for transfer_id in data["transfer_ids"]:
            transfer = self.ledger.by_id[transfer_id]
            if transfer["status"] == "pending":
                transfer.update(status="complete", completed_at=now)
        data.update(
            status=outcome,
            transfers_completed=data["transfers_completed"] + data["transfers_pending"],
            transfers_pending=0,
        )

    def _finish(
        self, execution: Execution, outcome: str, *, settle: bool = True
    ) -> None:
        now = self.clock()
        steps = execution.rule.get("steps") or [{}]
        actions = steps[0].get("actions", [])
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
            self.ledger.add(
                seq,
                rule_transfer(
                    transfer_id, amount, action, data, failed=fails, now=iso(now)
                ),
            )
            ids.append(transfer_id)
            failed += fails
            completed += not fails
        data.update(
            status=outcome,
            transfers_attempted=len(ids),
            transfers_completed=completed,
            transfers_failed=failed,
            transfer_ids=ids,
            next_attempt_at=None,
            error_message="Insufficient funds in the source account."
            if outcome == "failed"
            else None,
        )
        if settle and self.settlement > 0 and completed and outcome != "failed":
            # The job is done and its transfers exist; they settle later.
            for transfer_id in ids:
                transfer = self.ledger.by_id[transfer_id]
                if transfer["status"] == "complete":
                    transfer.update(status="pending", completed_at=None)
            data.update(
                status="in_progress", transfers_completed=0, transfers_pending=completed
            )
            execution.settle_at = now + self.settlement
            heapq.heappush(
                self._due, (execution.settle_at, execution.seq, execution.data["id"])
            )

    def visible_execution(self, execution_id: str) -> Execution | None:
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
        newest_first = reversed(self._by_rule.get(query["rule_id"], []))
        return matching(newest_first, query, self.clock())

    def audit(
        self,
        authorization: str,
        *,
        path: str,
        route: str,
        request_id: str,
        error_code: str | None,
    ) -> None:
        """
        Add the audit-log entry of an answered request (Platform).
        """
        self.activity.record(
            authorization.partition(" ")[2],
            path=path,
            route=route,
            request_id=request_id,
            error_code=error_code,
        )

    # -- transfers ---------------------------------------------------------

    def create_transfer(
        self, permissions: tuple[Permission, ...], body: Any
    ) -> dict[str, Any]:
        """
        Create a manual transfer (``processing``, ``complete`` a moment later).

        Raises:
            ApiError: 400 for a bad body or unknown account, 403 when no
                ``MANUAL_TRANSFER`` entry allows the pair or the amount.
        """
        checked = check_manual_transfer(permissions, body, self.accounts)
        now = self.clock()
        seq, transfer_id = self._next("txr")
        transfer = {
            "id": transfer_id,
            "amount_in_cents": checked.amount,
            "direction": "internal",
            "origin": "user",
            "status": "processing",
            "source": account_ref(self.accounts[checked.source]),
            "destination": account_ref(self.accounts[checked.target]),
            "rule_id": None,
            "rule_execution_id": None,
            "error_code": None,
            "description": checked.description,
            "execution_mode": "simulation"
            if isinstance(body, dict) and body.get("simulation") is True
            else "live",
            "created_at": iso(now),
            "completed_at": None,
        }
        self.ledger.add(seq, transfer, complete_at=now + MANUAL_SETTLE_SECONDS)
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
                "balance_last_updated_at": iso(self.clock()),
                "error": None,
            }
        }
