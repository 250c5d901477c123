"""
Journalled bulk runs: the plan of a (re)started run, and what it records.

Owns the plan (each input item: replay its recorded outcome, wait on its
execution, send it with its key, or reconcile it), the checks that the input
is the one the journal knows (raised before anything is sent), deterministic
keys (a UUIDv5 of the run id and the item's position: 36 characters), the
23-hour rule (Sequence forgets keys after 24 hours, so an item that may have
been sent earlier than that is never sent again, but matched against the
rule's executions or left for a person); ``_records.Recorder`` writes each step.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from . import _convert, errors, models
from ._checks import is_segment
from ._execution import Execution
from ._ids import uuid_text
from ._journal import ItemState, Journal, JournalEntry
from ._outcomes import TriggerOutcome, TriggerRequest, rejected
from ._paging import list_executions
from ._requester import Requester


log = logging.getLogger("sequence_async")
RESEND_WINDOW = 23 * 3600.0
RECONCILE_MARGIN = 300.0
LONG_RUN = 20 * 3600.0
# Sequence's documented limit, for the projection when no rate_limit is set.
API_RATE_PER_MINUTE = 100.0
_FINAL = (ItemState.TERMINAL, ItemState.REJECTED, ItemState.NEEDS_REVIEW)


class Action(enum.Enum):
    """What a journalled run does with an item."""

    SEND = "send"
    WAIT = "wait"
    REPLAY = "replay"
    RECONCILE = "reconcile"


@attrs.define(kw_only=True, eq=False)
class Planned:
    """
    One input item of a journalled run, and what to do with it.

    Never changed (not frozen: that costs more per item of a long input).
    """

    index: int
    request: TriggerRequest
    key: str
    identity: str
    action: Action
    entry: JournalEntry | None = None


@attrs.frozen
class Refused:
    """An input item refused before sending, with the reason."""

    item: object
    error: Exception


async def prepare(
    journal: Journal,
    claimed: set[str],
    raw: Sequence[object],
    *,
    check: Callable[[object], TriggerRequest],
    api: str,
    target: str,
    wait: bool,
    per_minute: float | None,
) -> list[Planned | Refused]:
    """
    Open *journal* (of runs against *api* and *target*) and plan *raw*.

    *check* turns an item into a request or raises ``TypeError``/
    ``ValueError``. Every execution the journal holds is added to *claimed*,
    so that no reconciliation takes another item's.

    Raises:
        ValueError: The input is not the one the journal recorded.
    """
    run_id, entries = await journal.open(api=api, target=target)
    try:
        requests: list[TriggerRequest | None] = []
        refused: dict[int, Exception] = {}
        for index, item in enumerate(raw):
            try:
                request: TriggerRequest | None = check(item)
            except (TypeError, ValueError) as exc:
                request, refused[index] = None, exc
            requests.append(request)
        planned = plan(
            requests, run_id=run_id, entries=entries, now=journal.clock(), wait=wait
        )
    except BaseException:
        await journal.close()
        raise
    warn_if_long(planned, per_minute=per_minute)
    claimed.update(e.execution_id for e in entries if e.execution_id)
    if not refused:  # (the plan is in input order)
        return list[Planned | Refused](planned)
    by_index: dict[int, Planned] = {p.index: p for p in planned}
    return [by_index.get(i) or Refused(raw[i], refused[i]) for i in range(len(raw))]


def derive_key(run_id: str, position: int) -> str:
    """
    The idempotency key of the item at *position* of run *run_id*.

    ``str(uuid.uuid5(uuid.UUID(run_id), f"item:{position}"))``, spelled out
    so that planning a long input costs little.
    """
    digest = hashlib.sha1(_namespace(run_id) + b"item:%d" % position)  # noqa: S324 (UUIDv5 is SHA-1)
    return uuid_text(digest.hexdigest(), 5)


@functools.lru_cache(maxsize=8)
def _namespace(run_id: str) -> bytes:
    return uuid.UUID(run_id).bytes


def plan(
    requests: Sequence[TriggerRequest | None],
    *,
    run_id: str,
    entries: Sequence[JournalEntry],
    now: float,
    wait: bool,
) -> list[Planned]:
    """
    Plan every item against the journal.

    ``None`` stands for an item refused before sending: it gets no plan.

    Raises:
        ValueError: The input is not the one the journal recorded (another
            rule, amount or key at a recorded position, or fewer items).
    """
    recorded = {entry.position: entry for entry in entries}
    if recorded and max(recorded) >= len(requests):
        raise ValueError(
            f"the journal has items up to position {max(recorded)}, the input "
            f"only {len(requests)}: not the same input; nothing was sent"
        )
    planned = []
    for index, request in enumerate(requests):
        if request is None:  # refused before sending, now and before
            if index in recorded:
                raise ValueError(
                    f"item {index} was recorded, and is not a valid request now:"
                    " not the same input; nothing was sent"
                )
            continue
        given = request.idempotency_key
        identity = f"key:{given}" if given is not None else f"position:{index}"
        entry = recorded.get(index)
        if entry is not None and (
            entry.identity != identity
            or entry.rule_id != request.rule_id
            or entry.amount != request.manual_execute_amount
        ):
            raise ValueError(
                f"item {index} differs from the journal (recorded {entry.identity},"
                f" {entry.rule_id}, amount {entry.amount}): not the same input;"
                " nothing was sent"
            )
        key = given if given is not None else derive_key(run_id, index)
        planned.append(
            Planned(
                index=index,
                request=request,
                key=key,
                identity=identity,
                action=Action.SEND if entry is None else _action(entry, now, wait),
                entry=entry,
            )
        )
    return planned


def expired(planned: Planned, now: float) -> bool:
    """
    Whether *planned*, to send again, may by *now* have been sent 23 h ago.

    A long resume outlives its plan: such an item is reconciled, not sent.
    """
    entry = planned.entry
    return entry is not None and _action(entry, now=now, wait=True) is Action.RECONCILE


def may_have_run(planned: Planned) -> bool:
    """
    Whether an earlier run may have sent *planned* (it has a record, not ``failed``).
    """
    entry = planned.entry
    return entry is not None and entry.state is not ItemState.FAILED


def earlier_send(planned: Planned) -> float | None:
    """
    When an earlier run may have sent *planned*, if it may have (else ``None``).
    """
    return planned.entry.sent_at if planned.entry and may_have_run(planned) else None


def not_started(index: int, item: Planned | object) -> TriggerOutcome:
    """
    The outcome of an item left unsent once ``max_failures`` is reached.

    ``NotStartedError``; but an item an earlier run may have sent is not
    known not to have run: ``OutcomeUnknownError``, with its key (resuming
    the journal settles it).
    """
    if not isinstance(item, Planned):
        return rejected(index, item, errors.NotStartedError("max_failures reached"))
    error: Exception = errors.NotStartedError("max_failures reached")
    if may_have_run(item):
        error = errors.OutcomeUnknownError(
            "max_failures reached before this item was sent again, and an "
            "earlier run may have sent it: resume the journal to settle it",
            idempotency_key=item.key,
        )
    return rejected(index, item.request, error, key=item.key)


def _action(entry: JournalEntry, now: float, wait: bool) -> Action:
    if entry.state is ItemState.FAILED:
        return Action.SEND
    if entry.state in _FINAL:
        return Action.REPLAY
    if entry.state is ItemState.ACCEPTED:
        return Action.WAIT if wait else Action.REPLAY
    # sending or unknown: the server may have it, under this key. A send time
    # ahead of now (the clock stepped back since) says nothing: reconcile.
    sent_at = entry.sent_at if entry.sent_at is not None else 0.0
    return Action.SEND if 0 <= now - sent_at < RESEND_WINDOW else Action.RECONCILE


def warn_if_long(planned: Sequence[Planned], *, per_minute: float | None) -> None:
    """
    Log a WARNING when the run would outlast 20 hours at the client's rate.
    """
    rate = per_minute or API_RATE_PER_MINUTE
    work = sum(p.action is not Action.REPLAY for p in planned)
    # About 1.2 requests per trigger-and-wait (see benchmarks/README.md).
    hours = work * 1.2 / rate / 60
    if hours * 3600 > LONG_RUN:
        log.warning(
            "this run needs about %.1f hours at %g requests a minute: Sequence "
            "forgets idempotency keys after 24 hours, so resume a crashed run "
            "promptly (items sent over 23 hours ago are never sent again)",
            hours,
            rate,
        )


def replayed(planned: Planned, requester: Requester) -> TriggerOutcome:
    """
    The outcome of an item the journal already settled; nothing is sent.
    """
    entry = planned.entry
    if entry is None:  # pragma: no cover (only recorded items are replayed)
        raise ValueError("no record to replay")
    try:
        result = (
            None
            if entry.result is None
            else _convert.structure(entry.result, models.RuleExecution)
        )
    except errors.ResponseValidationError as exc:
        raise errors.JournalError(
            f"the journal's record of item {planned.index} is corrupt: {exc}"
        ) from None
    execution = (
        None
        if entry.execution_id is None
        else handle(planned, entry.execution_id, requester, last=result)
    )
    error: Exception | None = None
    if entry.state is ItemState.REJECTED:
        error = errors.RecordedError(
            entry.error_message or "", error_type=entry.error_type or "Error"
        )
    elif entry.state is ItemState.NEEDS_REVIEW:
        error = needs_review(planned)
    elif result is not None and result.status == models.ExecutionStatus.FAILED:
        error = errors.ExecutionFailedError(result)
    return TriggerOutcome(
        index=planned.index,
        request=planned.request,
        idempotency_key=planned.key,
        execution=execution,
        result=result,
        error=error,
        from_journal=True,
    )


def handle(
    planned: Planned,
    execution_id: str,
    requester: Requester,
    *,
    last: models.RuleExecution | None = None,
) -> Execution:
    """
    The handle of a recorded execution, to wait on it.
    """
    sent_at = planned.entry.sent_at if planned.entry else None
    return Execution(
        id=execution_id,
        rule_id=planned.request.rule_id,
        request_id=None,
        idempotency_key=planned.key,
        triggered_at=datetime.fromtimestamp(sent_at or 0.0, UTC),
        requester=requester,
        last=last,
    )


async def reconcile(
    planned: Planned, requester: Requester, claimed: set[str]
) -> str | None:
    """
    Find the execution an old, unsettled send made, or ``None``.

    Lists the rule's executions created within five minutes of ``sent_at``
    and keeps the API-triggered ones of the item's amount that no other
    journalled item owns. Exactly one (with an id that is one) is a match;
    none or several are for a person to judge.
    """
    sent_at = planned.entry.sent_at if planned.entry else None
    if sent_at is None:
        return None
    middle = datetime.fromtimestamp(sent_at, UTC)
    margin = timedelta(seconds=RECONCILE_MARGIN)
    candidates = [
        execution.id
        async for execution in list_executions(
            requester,
            planned.request.rule_id,
            from_=middle - margin,
            to=middle + margin,
        )
        if execution.id not in claimed and _may_be(execution, planned.request)
    ]
    # An id that is not one (``..``) cannot be waited on: for a person too.
    if len(candidates) != 1 or not is_segment(candidates[0]):
        return None
    claimed.add(candidates[0])
    return candidates[0]


def _may_be(execution: models.RuleExecution, request: TriggerRequest) -> bool:
    # api-v1 says "manual"; Platform says MANUAL or SEQUENCE_API (its details).
    kind = execution.trigger_type or (execution.trigger_details or {}).get("type")
    if kind is not None and str(kind).lower() not in ("manual", "sequence_api"):
        return False
    # The amount an execution ran with: `amount_in_cents` in its details.
    wanted = request.manual_execute_amount
    details = execution.trigger_details or {}
    amount: Any = details.get("amount_in_cents", details.get("amountInCents"))
    return wanted is None or amount is None or amount == wanted


def needs_review(
    planned: Planned, sent_at: float | None = None
) -> errors.NeedsReviewError:
    if sent_at is None:
        sent_at = planned.entry.sent_at if planned.entry else None
    return errors.NeedsReviewError(
        f"item {planned.index} ({planned.request.rule_id}, key {planned.key}) may "
        "have been sent over 23 hours ago and matches no single execution: "
        "check the rule's executions and settle it by hand",
        idempotency_key=planned.key,
        rule_id=planned.request.rule_id,
        sent_at=sent_at or 0.0,
    )
