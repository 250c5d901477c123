"""
The ``Execution`` handle: what ``rules.trigger()`` returns, and its token.

Owns the handle (the last state seen, ``refresh``, ``wait`` through the
client's poller, until terminal or until only settlement is left), its
resume token (which records the API profile) and the checks of a token read
back. A handle belongs to the client or view that made it: its waits use that
view's settings. Pickled, it keeps its fields and last state but not its client;
resume it with ``client.execution_from_token(handle.to_token())``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import attrs

from . import errors, models
from ._checks import check_number, check_request_id, clamp
from ._paging import get_execution
from ._poller import CLOCK_SKEW, Watch
from ._profiles import API_V1
from ._ratelimit import Priority
from ._requester import Requester
from ._retry import PollPolicy


log = logging.getLogger("sequence_async")
TOKEN_VERSION = 1
MAX_TOKEN_CHARS = 4096
MAX_TOKEN_FIELD = 255  # a token's request id or key, at most


def token_field(value: object) -> str | None:
    """
    Return *value* if a token may carry it, else ``None``.

    That is 1 to ``MAX_TOKEN_FIELD`` printable characters: printed as they
    are, a token copies whole.
    """
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TOKEN_FIELD
        and value.isprintable()
    ):
        return value
    return None


Until = Literal["settled", "transfers_created"]
UNTIL: Final = ("settled", "transfers_created")


@attrs.define(eq=False, repr=False)
class Execution:
    """
    The handle of one rule execution: wait for it, refresh it, resume it.

    ``status`` and ``done`` reflect the last state seen. Cancelling a wait
    (or the task around it) stops polling; it never cancels the execution
    itself, and Sequence has no endpoint that could.
    """

    id: str
    rule_id: str
    request_id: str | None
    idempotency_key: str | None
    triggered_at: datetime
    _requester: Requester | None = attrs.field(alias="requester")
    _last: models.RuleExecution | None = attrs.field(default=None, alias="last")
    # The API profile of a handle unpickled without its client.
    _api: str = attrs.field(default=API_V1, alias="api", kw_only=True)
    # Unknown statuses already logged (a new set only once one is).
    _warned: frozenset[str] = attrs.field(default=frozenset(), init=False)

    def __attrs_post_init__(self) -> None:
        if self._last is not None:
            self._record(self._last)

    def __repr__(self) -> str:
        return (
            f"<Execution {self.id} of {self.rule_id}: {self.status or 'not seen yet'}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """
        Pickle the fields and the last state seen, never the client.
        """
        state = {
            "id": self.id,
            "rule_id": self.rule_id,
            "request_id": self.request_id,
            "idempotency_key": self.idempotency_key,
            "triggered_at": self.triggered_at,
            "last": self._last,
            "api": self._profile_name(),
        }
        return (_unpickle, (state,))

    @property
    def status(self) -> models.ExecutionStatus | str | None:
        """
        The last status seen, or ``None`` before the first look.
        """
        return self._last.status if self._last else None

    @property
    def done(self) -> bool:
        """
        Whether the last status seen is terminal.
        """
        return self._last is not None and self._last.done

    @property
    def result(self) -> models.RuleExecution | None:
        """
        The last state seen, or ``None``.
        """
        return self._last

    def age(self) -> float:
        """
        Seconds since the trigger, by the wall clock.

        0 for a trigger time ahead of this clock (a token from a host whose
        clock runs fast), so that such a wait is polled on time.
        """
        return max(0.0, (datetime.now(UTC) - self.triggered_at).total_seconds())

    def _oldest(self) -> datetime:
        last = self._last
        if last is not None and last.created_at is not None:
            return last.created_at
        # A trigger time near year 1 (a server's zero date, a custom
        # journal's) is brought inside first: a minute taken cannot overflow.
        return clamp(clamp(self.triggered_at) - CLOCK_SKEW)

    def _record(self, snapshot: models.RuleExecution) -> None:
        self._last = snapshot
        status = snapshot.status
        if isinstance(status, models.ExecutionStatus) or status in self._warned:
            return
        self._warned = self._warned | {status}
        log.warning(
            "execution %s has status %r, unknown to this version of "
            "sequence-async; waiting on until it is terminal or the wait times out",
            self.id,
            status,
        )

    def _attached(self) -> Requester:
        if self._requester is None:
            raise errors.ClientClosedError(
                "this handle was copied or unpickled without its client: resume "
                "it with client.execution_from_token(handle.to_token())"
            )
        return self._requester

    async def refresh(self, *, request_id: str | None = None) -> models.RuleExecution:
        """
        Fetch the execution's latest state now.

        Raises:
            errors.ResponseValidationError: The answer is about another
                execution.
        """
        snapshot = await get_execution(
            self._attached(),
            self.id,
            rule_id=self.rule_id,
            request_id=request_id,
            priority=Priority.POLL,
        )
        self._check(snapshot)
        self._record(snapshot)
        return snapshot

    def _check(self, snapshot: models.RuleExecution) -> None:
        if snapshot.id != self.id or snapshot.rule_id not in (None, self.rule_id):
            raise errors.ResponseValidationError(
                f"asked for execution {self.id} of {self.rule_id}, got "
                f"{snapshot.id!r} of {snapshot.rule_id!r}",
                request_id=snapshot.request_id,
            )

    async def wait(
        self,
        timeout: float | None = 300.0,
        *,
        raise_on_failure: bool = True,
        poll: PollPolicy | None = None,
        request_id: str | None = None,
        until: Until = "settled",
    ) -> models.RuleExecution:
        """
        Wait until the execution is terminal and return it.

        Polls are shared with the client's other waits on the same rule. At
        the deadline the wait takes one last look (a single request within
        the client's timeout) before giving up, so polls held back by the
        rate limiter never turn a finished execution into a timeout.

        Args:
            timeout: Seconds to wait; ``None`` waits for ever (ask for it
                explicitly).
            raise_on_failure: Raise ``ExecutionFailedError`` when the status
                is ``failed``. ``partial`` is always returned: whether it is
                good enough is the caller's decision.
            poll: The poll schedule; the client's by default.
            request_id: Sent as ``X-Request-ID`` on that last look.
            until: ``"settled"`` (the default) waits for a terminal status,
                which comes once the transfers have settled (ACH: maybe
                days). ``"transfers_created"`` returns as soon as the rule's
                job has finished and its transfers exist: a terminal
                execution, or one still ``in_progress`` that only waits for
                settlement (``result.settling``).

        Raises:
            errors.WaitTimeoutError: The deadline passed. The execution goes
                on; wait again on ``error.execution``.
            errors.ExecutionFailedError: The execution failed.
        """
        timeout = check_number(timeout, "timeout", allow_none=True)
        if request_id is not None:
            check_request_id(request_id)
        if poll is not None and not isinstance(poll, PollPolicy):
            raise TypeError("poll must be a PollPolicy")
        check_until(until)
        early = until == "transfers_created"
        requester = self._attached()
        result = self._last
        if result is None or not (result.done or (early and result.settling)):
            requester.shared.check_open()
            deadline = None if timeout is None else time.monotonic() + timeout
            telemetry = requester.shared.observer.telemetry
            span = (
                telemetry.span("execution.wait", self._attributes())
                if telemetry is not None
                else contextlib.nullcontext()
            )
            with span as recording:
                result = await self._wait(
                    requester,
                    poll,
                    timeout,
                    deadline=deadline,
                    request_id=request_id,
                    early=early,
                    event=recording.add_event if recording is not None else None,
                )
                if recording is not None:
                    recording.set_attribute("sequence.status", str(result.status))
            if telemetry is not None:
                telemetry.execution_duration.record(
                    self.age(), {"sequence.status": str(result.status)}
                )
        if raise_on_failure and result.status == models.ExecutionStatus.FAILED:
            raise errors.ExecutionFailedError(result)
        return result

    def _attributes(self) -> dict[str, str]:
        return {"sequence.execution_id": self.id, "sequence.rule_id": self.rule_id}

    async def _wait(
        self,
        requester: Requester,
        poll: PollPolicy | None,
        timeout: float | None,
        *,
        deadline: float | None,
        request_id: str | None,
        early: bool = False,
        event: Callable[[str, dict[str, str]], object] | None = None,
    ) -> models.RuleExecution:
        poller = requester.shared.poller
        if poller is None:  # pragma: no cover (the client always sets one)
            raise errors.ClientClosedError("this client has no poller")

        observe: Callable[[models.RuleExecution], None] = self._record
        if event is not None:

            def observe(snapshot: models.RuleExecution) -> None:
                self._record(snapshot)
                event("poll", {"sequence.status": str(snapshot.status)})

        watch = Watch(self.id, self.rule_id, observe, self.age, self._oldest, early)
        try:
            async with asyncio.timeout(timeout) as scope:
                return await poller.wait(
                    watch, requester, poll or requester.poll, deadline
                )
        except TimeoutError:
            if not scope.expired():
                raise
            result, failure = await self._last_look(requester, request_id, early=early)
            if result is None:
                raise errors.WaitTimeoutError(
                    self,
                    timeout=timeout or 0.0,
                    last_status=self.status,
                    failure=failure,
                ) from None
            return result

    async def _last_look(
        self, requester: Requester, request_id: str | None, *, early: bool
    ) -> tuple[models.RuleExecution | None, Exception | None]:
        try:
            async with asyncio.timeout(requester.timeout):
                snapshot = await get_execution(
                    requester.evolve(
                        retry=attrs.evolve(requester.retry, max_retries=0)
                    ),
                    self.id,
                    rule_id=self.rule_id,
                    request_id=request_id,
                    priority=Priority.OTHER,
                )
            self._check(snapshot)
        except errors.ClientClosedError:
            raise  # not "still running": closed, as every pending wait is
        except (errors.SequenceError, TimeoutError) as exc:
            return None, exc
        self._record(snapshot)
        ended = snapshot.done or (early and snapshot.settling)
        return (snapshot if ended else None), None

    def _profile_name(self) -> str:
        return self._api if self._requester is None else self._requester.profile.name

    def to_token(self) -> str:
        """
        Return a small JSON token from which ``execution_from_token`` resumes.
        """
        fields = {
            "v": TOKEN_VERSION,
            "api": self._profile_name(),
            "id": self.id,
            "rule_id": self.rule_id,
            # (a server's request id may be any string: left out when the
            # token could not carry it back)
            "request_id": token_field(self.request_id),
            "idempotency_key": self.idempotency_key,
            "triggered_at": self.triggered_at.isoformat(),
        }
        # Characters as they are (an id of 255 emoji, escaped, would pass
        # the token's length), and no request id if it still would.
        token = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        if len(token) > MAX_TOKEN_CHARS:
            fields["request_id"] = None
            token = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        return token


def check_until(until: object) -> None:
    """
    Raise ``ValueError`` unless *until* is ``"settled"`` or ``"transfers_created"``.
    """
    if until not in UNTIL:
        raise ValueError(f"until must be one of {', '.join(UNTIL)}, not {until!r}")


def _unpickle(state: dict[str, Any]) -> Execution:
    return Execution(**state, requester=None)
