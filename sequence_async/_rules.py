"""
The rule namespaces: ``client.rules`` and ``client.rule_executions``.

Owns the trigger: its checks (``trigger_request``), its idempotency key (a
new one when none is given, reused by every retry), and its request and the
``Execution`` handle built from its answer, or ``OutcomeUnknownError`` with
the key when the answer is unusable (``send_trigger``, for ``Rules.trigger``
and the bulk run's items alike).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

from . import errors, models
from ._checks import check_request_id, path, query, segment
from ._execution import Execution
from ._paging import Paginator, get_execution, list_executions
from ._profiles import Profile
from ._ratelimit import Priority
from ._requester import Requester
from ._resources import (
    Resource,
    add_key_note,
    amount,
    called_reason_of,
    idempotency_key_of,
    simulation_of,
)


class Rules(Resource):
    """
    ``/rules``: read rules and trigger them.
    """

    __slots__ = ()
    name = "rules"

    async def list(
        self,
        *,
        source_id: str | None = None,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> list[models.RuleSummary]:
        """
        List every rule of the organization (scope ``LIST_RULES``).
        """
        return await self._list(
            "/rules",
            models.RuleSummary,
            params=query(source_id=source_id),
            request_id=request_id,
            called_reason=called_reason,
        )

    async def get(
        self,
        rule_id: str,
        *,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> models.Rule:
        """
        Get a whole rule: trigger, steps, conditions, actions (``READ_RULES``).
        """
        return await self._get(
            path("rules", (rule_id, "rule_id")),
            models.Rule,
            request_id=request_id,
            expect_id=rule_id,
            called_reason=called_reason,
        )

    async def trigger(
        self,
        rule_id: str,
        *,
        manual_execute_amount: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        simulation: bool | None = None,
        called_reason: str | None = None,
    ) -> Execution:
        """
        Start a rule now and return the handle of its execution.

        The request always carries an idempotency key (a new uuid4 when none
        is given), reused on every retry, so a lost answer never runs the rule
        twice.

        Args:
            rule_id: The rule (scope ``TRIGGER_RULES``).
            manual_execute_amount: For ``MANUAL`` rules, the amount in cents
                (sent as ``executeAmount`` on ``platform-v1``).
            idempotency_key: Your key for this trigger (1 to 255 printable
                ASCII characters; on ``platform-v1`` 1 to 36 characters of
                ``[A-Za-z0-9._:/|-]``); the same key within 24 h returns the
                first execution instead of starting another.
            request_id: Sent as ``X-Request-ID``.
            simulation: A dry run (``platform-v1`` only).
            called_reason: Sent as ``x-called-reason`` (``platform-v1`` only).

        Raises:
            errors.OutcomeUnknownError: The trigger may have run, but no
                usable answer says so (retries ran out on network or server
                errors, or the answer named no execution); trigger again with
                its ``idempotency_key``.
            errors.UnsupportedFeatureError: ``simulation`` or
                ``called_reason`` on ``api-v1``; nothing was sent.
        """
        return await self._trigger(
            rule_id,
            manual_execute_amount=manual_execute_amount,
            idempotency_key=idempotency_key,
            request_id=request_id,
            simulation=simulation,
            called_reason=called_reason,
        )

    async def _trigger(
        self,
        rule_id: str,
        *,
        idempotency_key: str | None,
        called_reason: str | None,
        deadline: float | None = None,
        **options: Any,
    ) -> Execution:
        # ``trigger``, and ``trigger_and_wait``'s, whose retries never sleep
        # past its *deadline* (``time.monotonic()`` seconds).
        profile = self._requester.profile
        return await send_trigger(
            self._requester,
            rule_id,
            key=idempotency_key_of(idempotency_key, profile),
            called_reason=None
            if called_reason is None
            else called_reason_of(called_reason, profile),
            deadline=deadline,
            **options,
        )


async def send_trigger(
    requester: Requester,
    rule_id: str,
    *,
    key: str,
    manual_execute_amount: int | None = None,
    request_id: str | None = None,
    simulation: bool | None = None,
    called_reason: str | None = None,
    deadline: float | None = None,
) -> Execution:
    """
    Check and send a trigger with its checked *key*; return its handle.

    The one home of a trigger's request and of reading its answer:
    ``Rules.trigger`` (its key from ``idempotency_key_of``) and the bulk
    run's items (their keys checked, or made, once by the run's ``Keys``).
    """
    endpoint, body = trigger_request(
        requester.profile,
        rule_id,
        manual_execute_amount=manual_execute_amount,
        request_id=request_id,
        simulation=simulation,
    )
    triggered_at = datetime.now(UTC)
    try:
        envelope = await requester.request(
            "POST",
            endpoint,
            operation="rules.trigger",
            attributes={"sequence.rule_id": rule_id},
            json=body,
            idempotency_key=key,
            request_id=request_id,
            priority=Priority.TRIGGER,
            deadline=deadline,
            called_reason=called_reason,
        )
    except asyncio.CancelledError as exc:
        add_key_note(exc, key)
        raise
    data = envelope.data
    wire_name = requester.profile.wire("execution_id")
    execution_id = data.get(wire_name) if isinstance(data, dict) else None
    try:
        segment(execution_id, "execution_id")
    except (TypeError, ValueError):
        # The server acted (2xx) but the answer is unusable: keep the key.
        raise errors.OutcomeUnknownError(
            f"POST {endpoint} was accepted, but the answer names no execution",
            idempotency_key=key,
        ) from errors.ResponseValidationError(
            f"trigger answer has no execution_id: {str(data)[:200]!r}",
            request_id=envelope.request_id,
        )
    return Execution(
        id=execution_id,  # type: ignore[arg-type]
        rule_id=rule_id,
        request_id=envelope.request_id,
        idempotency_key=key,
        triggered_at=triggered_at,
        requester=requester,
    )


@functools.lru_cache(maxsize=1024)
def _trigger_path(rule_id: str) -> str:
    # A rule's trigger endpoint, checked: a bulk run triggers a few rules many
    # times. (An id that fails its check raises, and is not kept.)
    return path("rules", (rule_id, "rule_id"), "trigger")


def trigger_request(
    profile: Profile,
    rule_id: object,
    *,
    manual_execute_amount: object = None,
    request_id: object = None,
    simulation: object = None,
) -> tuple[str, dict[str, Any]]:
    """
    Return a trigger's endpoint and body, every value checked.

    The one home of those checks: ``Rules.trigger`` and a journalled run's
    plan (which must refuse an item before recording it, not after).

    Raises:
        TypeError, ValueError: The rule id, amount, request id or
            ``simulation`` is malformed.
        errors.UnsupportedFeatureError: ``simulation`` on ``api-v1``.
    """
    endpoint = (
        _trigger_path(rule_id)
        if type(rule_id) is str  # (hashable; an id is checked once, not per item)
        else path("rules", (rule_id, "rule_id"), "trigger")
    )
    body: dict[str, Any] = {}  # the common case: no options
    if manual_execute_amount is not None or simulation is not None:
        body = profile.body(
            {
                "manual_execute_amount": None
                if manual_execute_amount is None
                else amount(manual_execute_amount, "manual_execute_amount", minimum=0),
                "simulation": simulation_of(simulation, profile),
            }
        )
    if request_id is not None:
        check_request_id(request_id)
    return endpoint, body


class RuleExecutions(Resource):
    """
    ``/rule-executions``: the history and state of rule runs.
    """

    __slots__ = ()
    name = "rule_executions"

    def list(
        self,
        *,
        rule_id: str,
        status: models.ExecutionStatus | str | None = None,
        trigger_type: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        execution_mode: models.ExecutionMode | str | None = None,
        called_reason: str | None = None,
    ) -> Paginator[models.RuleExecution]:
        """
        Iterate over a rule's executions, newest first (``READ_RULE_EXECUTIONS``).

        Args:
            rule_id: Required by the API.
            status: ``in_progress``, ``executed``, ``partial`` or ``failed``.
            trigger_type: ``manual``, ``scheduled`` or ``on_funds_transferred``.
            from_: Created at or after (sent as ``from``).
            to: Created at or before.
            page_size: Items per request, 1 to 100 (sent as ``first``).
            start_after: A saved ``page_info.end_cursor`` (a page number on
                ``platform-v1``): start after it.
            request_id: Sent as ``X-Request-ID`` on every page.
            execution_mode: ``live``, ``simulation`` or ``all``
                (``platform-v1`` only).
            called_reason: Sent as ``x-called-reason`` (``platform-v1`` only).
        """
        return list_executions(
            self._requester,
            rule_id,
            status=status,
            trigger_type=trigger_type,
            from_=from_,
            to=to,
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            execution_mode=execution_mode,
            called_reason=called_reason_of(called_reason, self._profile),
        )

    async def get(
        self,
        execution_id: str,
        *,
        rule_id: str | None = None,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> models.RuleExecution:
        """
        Get one execution with its outcome and transfer ids.

        Args:
            execution_id: The execution.
            rule_id: Its rule: required on ``platform-v1``, whose path names
                it (``/rules/{ruleId}/executions/{id}``); ignored on ``api-v1``.
            request_id: Sent as ``X-Request-ID``.
            called_reason: Sent as ``x-called-reason`` (``platform-v1`` only).
        """
        return await get_execution(
            self._requester,
            execution_id,
            rule_id=rule_id,
            request_id=request_id,
            called_reason=called_reason_of(called_reason, self._profile),
        )
