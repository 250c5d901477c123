"""
The values of bulk triggering: what goes in, how it went, how far it is.

Owns ``TriggerRequest`` (one item, and reading any input as items: ``Source``
pulls it for the bulk run's workers), ``Keys`` (each item's idempotency key:
the caller's, checked and unique in the batch, or a new one),
``TriggerOutcome`` (how it ended; ``rejected`` for an item refused before
sending), ``InFlightItem`` (started, not finished), ``BulkProgress`` (the
counts given to ``on_progress``) and ``Tally`` (keeping those counts, and
the bulk-items metric).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import attrs

from . import errors, models
from ._checks import MAX_ID_CHARS
from ._execution import Execution
from ._ids import new_id
from ._otel import Telemetry
from ._profiles import Profile
from ._rules import trigger_request


log = logging.getLogger("sequence_async")


@attrs.frozen
class TriggerRequest:
    """
    One item of a bulk trigger.

    Args:
        rule_id: The rule to trigger.
        manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
        idempotency_key: Your key for this item; must be unique in a batch.
        request_id: Sent as ``X-Request-ID`` on the trigger.
    """

    rule_id: str
    manual_execute_amount: int | None = attrs.field(default=None, kw_only=True)
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)
    request_id: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(kw_only=True)
class TriggerOutcome:
    """
    How one bulk item ended.

    ``ok`` is true when the trigger succeeded and, when waiting, the
    execution ended ``executed`` or ``partial``. ``error`` holds what went
    wrong otherwise: an API error, ``OutcomeUnknownError``,
    ``ExecutionFailedError`` (with ``result`` set too), ``WaitTimeoutError``,
    ``NotStartedError``, or a ``ValueError``/``TypeError`` for an item
    rejected before sending. ``idempotency_key`` is the key the item was (or
    would have been) sent with: trigger it again with that key to learn what
    happened without moving money twice. ``from_journal`` marks an outcome
    a resumed run read from its journal instead of sending anything.
    """

    index: int
    request: TriggerRequest
    idempotency_key: str | None = None
    execution: Execution | None = None
    result: models.RuleExecution | None = None
    error: Exception | None = None
    from_journal: bool = False

    @property
    def ok(self) -> bool:
        """
        Whether the item succeeded.
        """
        return self.error is None


@attrs.frozen(kw_only=True)
class InFlightItem:
    """
    An item started but not finished: its key, and its handle once triggered.

    ``execution`` is ``None`` while the trigger request is in flight.
    """

    index: int
    request: TriggerRequest
    idempotency_key: str
    execution: Execution | None


@attrs.frozen(kw_only=True)
class BulkProgress:
    """
    Counts of a running bulk trigger, as given to ``on_progress``.

    ``triggering`` counts trigger requests in flight; ``waiting`` counts
    executions triggered and being waited on.
    """

    started: int
    triggering: int
    waiting: int
    succeeded: int
    failed: int
    not_started: int
    elapsed: float

    @property
    def finished(self) -> int:
        """
        Items with an outcome.
        """
        return self.succeeded + self.failed + self.not_started


class Tally:
    """
    The running counts of a bulk run, each change reported to ``on_progress``.
    """

    __slots__ = ("_on_progress", "_started_at", "_telemetry", "counts")

    def __init__(
        self,
        on_progress: Callable[[BulkProgress], None] | None,
        telemetry: Telemetry | None = None,
    ) -> None:
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be callable")
        if inspect.iscoroutinefunction(on_progress):  # it would never run
            raise TypeError("on_progress is called, never awaited: a plain function")
        self._on_progress = on_progress
        self._telemetry = telemetry
        self._started_at = time.monotonic()
        self.counts = dict.fromkeys(
            ("started", "triggering", "waiting", "succeeded", "failed", "not_started"),
            0,
        )

    def start(self) -> None:
        """
        Count one item started: its trigger is in flight.
        """
        counts = self.counts
        counts["started"] += 1
        counts["triggering"] += 1
        if self._on_progress is not None:
            self.report()

    def move(self, source: str | None, target: str) -> None:
        """
        Count one item out of *source* (if any) and into *target*.
        """
        if source is not None:
            self.counts[source] -= 1
        self.counts[target] += 1
        if self._on_progress is not None:
            self.report()

    def end(self, source: str | None, error: Exception | None) -> bool:
        """
        Count one item ended (out of *source*) with *error*; return whether failed.

        The item is counted in the ``sequence.bulk.items`` metric too, when
        telemetry records.
        """
        if self._telemetry is not None:
            kind = "ok" if error is None else type(error).__name__
            self._telemetry.bulk_items.add(1, {"outcome": kind})
        failed = error is not None and not isinstance(error, errors.NotStartedError)
        ended = "failed" if failed else "succeeded" if error is None else "not_started"
        self.move(source, ended)
        return failed

    def attributes(self) -> dict[str, int]:
        """
        The counts as span attributes (``sequence.started``, ...).
        """
        return {f"sequence.{k}": v for k, v in self.counts.items()}

    def report(self) -> None:
        """
        Give ``on_progress`` the counts now; an error it raises is logged.
        """
        if self._on_progress is None:
            return
        progress = BulkProgress(
            **self.counts, elapsed=time.monotonic() - self._started_at
        )
        try:
            self._on_progress(progress)
        except Exception:
            log.exception("on_progress raised; the bulk run goes on")


def check_requests(requests: object) -> None:
    """
    Raise unless *requests* is an iterable (sync or async) of items.
    """
    if not isinstance(requests, Iterable | AsyncIterable) or isinstance(
        requests, str | bytes
    ):
        raise TypeError("requests must be an iterable of rule ids or TriggerRequests")


def as_request(item: object) -> TriggerRequest:
    """
    *item* as a ``TriggerRequest`` (a rule id is one without options).
    """
    if type(item) is str and len(item) <= MAX_ID_CHARS:
        return _rule_request(item)
    if isinstance(item, TriggerRequest):
        return item
    if isinstance(item, str):
        return TriggerRequest(item)
    raise TypeError(
        f"trigger_many takes rule ids or TriggerRequests, not {type(item).__name__}"
    )


@functools.lru_cache(maxsize=1024)
def _rule_request(rule_id: str) -> TriggerRequest:
    # A rule id's request, made once: a bulk run triggers a few rules often,
    # and a frozen request may be shared by their items.
    return TriggerRequest(rule_id)


def rejected(
    index: int, item: object, error: Exception, *, key: str | None = None
) -> TriggerOutcome:
    """
    The outcome of an item refused before sending, for *error*.

    Its key is *key* (one planned for it) or else the caller's, if any.
    """
    request = item if isinstance(item, TriggerRequest) else TriggerRequest(_shown(item))
    if key is None and isinstance(request.idempotency_key, str):
        key = request.idempotency_key
    return TriggerOutcome(
        index=index, request=request, idempotency_key=key, error=error
    )


def _shown(item: object) -> str:
    # A refused item as its outcome names it: never its own error, nor a
    # whole megabyte of it.
    if isinstance(item, str):
        return item
    try:
        return str(item)[:200]
    except Exception:  # noqa: BLE001 (the item's __str__ is the caller's)
        return f"<unprintable {type(item).__name__}>"


class Keys:
    """
    The idempotency keys of one batch: the caller's, checked and unique, or new.
    """

    __slots__ = ("_profile", "_seen")

    def __init__(self, profile: Profile) -> None:
        self._profile = profile  # its check of a caller's key, and of the rest
        self._seen: set[str] = set()

    def claim(self, request: TriggerRequest) -> str:
        """
        Return the key *request* is sent with.

        Raises:
            ValueError: The caller's key is malformed, or already in the batch.
            TypeError: The caller's key is not a string.
        """
        if request.idempotency_key is None:
            return new_id()
        key = self._profile.check_idempotency_key(request.idempotency_key)
        if key in self._seen:
            raise ValueError(
                f"duplicate idempotency_key {key!r} in this batch; not sent"
            )
        self._seen.add(key)
        return key

    def checked(self, item: object) -> TriggerRequest:
        """
        *item* as a request, checked as its trigger will be; claim its key.

        For a journalled run's plan: an item that its trigger would refuse
        is refused before it is recorded, not recorded and then refused.

        Raises:
            TypeError, ValueError: The item, its rule id, amount, request id
                or key is malformed (or the key is already in the batch).
        """
        request = as_request(item)
        trigger_request(
            self._profile,
            request.rule_id,
            manual_execute_amount=request.manual_execute_amount,
            request_id=request.request_id,
        )
        if request.idempotency_key is not None:
            self.claim(request)
        return request


async def collect(requests: Iterable[Any] | AsyncIterable[Any]) -> list[Any]:
    """
    Any iterable, sync or async, as a list.
    """
    if isinstance(requests, AsyncIterable):
        return [item async for item in requests]
    return list(requests)


class Source:
    """
    A bulk run's input, pulled by every worker in turn.

    Its end, or an error it raises, stops the pulling for all of them; the
    error is kept in ``failure`` for the run to raise once the items already
    sent have ended.
    """

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._items = items
        # A plain (sync) input is pulled with take(), without awaiting.
        self.plain = not isinstance(items, AsyncIterable)
        self._sync: Iterator[Any] | None = None
        self._async: AsyncIterator[Any] | None = None
        self._lock = asyncio.Lock()
        self._index = -1
        self.done = False
        self.failure: BaseException | None = None

    def ended(self) -> bool:
        """
        Whether the input is done (or broken): nothing more to pull.
        """
        return self.done

    def take(self) -> tuple[int, Any] | None:
        """
        Return the next item of a plain input and its position, or ``None``.
        """
        if self.done:
            return None
        try:
            if self._sync is None:
                self._sync = iter(self._items)  # type: ignore[arg-type]
            raw = next(self._sync)
        except StopIteration:
            self.done = True
            return None
        except BaseException as exc:  # noqa: BLE001 (the input failed, whatever it raised)
            self._failed(exc)
            return None
        self._index += 1
        return self._index, raw

    async def pull(self) -> tuple[int, Any] | None:
        """
        Return the next item and its position, or ``None`` once done.
        """
        if self.plain:
            return self.take()
        try:
            async with self._lock:  # an async generator takes one caller
                if self.ended():  # while this worker waited for the lock
                    return None
                if self._async is None:
                    self._async = aiter(self._items)  # type: ignore[arg-type]
                raw = await anext(self._async)
        except StopAsyncIteration:
            self.done = True
            return None
        except BaseException as exc:  # the input failed, whatever it raised
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                raise  # the run itself is being stopped
            self._failed(exc)
            return None
        self._index += 1
        return self._index, raw

    def _failed(self, exc: BaseException) -> None:
        self.done = True
        self.failure = self.failure or exc
