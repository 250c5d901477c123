"""
The fake server's rule executions: the record, the draw, the JSON, the list.

Owns what one execution is (its API JSON plus how and when it will end),
how a ``Behavior`` draws a duration and an outcome, the checks of a trigger
body, and the filters of ``GET /rule-executions``. ``State`` runs the
lifecycle with these.

May import: ``testing.api``, ``testing.seed``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .api import (
    EXECUTION_STATUSES,
    EXECUTION_TRIGGER_TYPES,
    between,
    enum_param,
    invalid,
    when,
)
from .seed import Behavior


@attrs.define(eq=False)
class Execution:
    """
    One rule execution: its API JSON (``data``) and how it will end.
    """

    seq: int
    data: dict[str, Any]
    rule: Mapping[str, Any]
    finish_at: float
    outcome: str
    visible_at: float
    amount: int | None
    idempotency_key: str | None = None
    settle_at: float | None = None  # set while its transfers settle


def manual_amount(body: Any) -> int | None:
    """
    Return a trigger body's ``manual_execute_amount`` (cents), if any.

    Raises:
        ApiError: 400 for a body that is not an object or a bad amount.
    """
    if body is None:
        return None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    amount = body.get("manual_execute_amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount < 0
    ):
        raise invalid("manual_execute_amount must be a non-negative integer (cents).")
    return amount


def draw(behavior: Behavior, rng: random.Random) -> tuple[float, str]:
    """
    Draw a run's duration (seconds, log-normal) and its outcome.
    """
    duration = (
        behavior.median * math.exp(rng.gauss(0, behavior.sigma))
        if behavior.sigma > 0
        else behavior.median
    )
    roll = rng.random()
    outcome = (
        "failed"
        if roll < behavior.failure_rate
        else "partial"
        if roll < behavior.failure_rate + behavior.partial_rate
        else "executed"
    )
    return duration, outcome


def execution_json(
    execution_id: str,
    rule: Mapping[str, Any],
    amount: int | None,
    created_at: str,
    *,
    simulation: bool = False,
) -> dict[str, Any]:
    """
    The API JSON of a manual run of *rule* that has just started.
    """
    return {
        "id": execution_id,
        "rule_id": rule["id"],
        "rule_name": rule.get("nickname"),
        "trigger_type": "manual",
        "status": "in_progress",
        "created_at": created_at,
        "trigger_details": {"type": "manual", "amount_in_cents": amount},
        "step_index_matched": None,
        "conditions_not_met": False,
        "transfers_attempted": 0,
        "transfers_completed": 0,
        "transfers_failed": 0,
        "transfers_pending": 0,
        "transfer_ids": [],
        "error_message": None,
        "execution_mode": "simulation" if simulation else "live",
        "next_attempt_at": None,
    }


def matching(
    newest_first: Iterable[Execution], query: Mapping[str, str], now: float
) -> list[tuple[int, Any]]:
    """
    Return the visible executions matching *query*, as ``(seq, data)``.
    """
    status = enum_param(query, "status", EXECUTION_STATUSES)
    trigger_type = enum_param(query, "trigger_type", EXECUTION_TRIGGER_TYPES)
    mode = enum_param(query, "execution_mode", ("live", "simulation", "all"))
    start, end = when(query, "from"), when(query, "to")
    return [
        (execution.seq, execution.data)
        for execution in newest_first
        if execution.visible_at <= now
        and (not status or execution.data["status"] == status)
        and (not trigger_type or execution.data["trigger_type"] == trigger_type)
        and (mode in (None, "all") or execution.data["execution_mode"] == mode)
        and between(execution.data["created_at"], start, end)
    ]
