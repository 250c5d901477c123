"""
Paging, written once, and the rule-execution reads the poller shares.

Owns ``Paginator`` (lazy pages of any list endpoint, able to start from a
saved cursor, stopping on a last page, an empty page, a repeated cursor or
page, or ``max_pages``; cursors on ``api-v1``, page numbers on
``platform-v1``, as the requester's profile says) and the two execution reads,
``get_execution`` and ``list_executions``, used alike by
``client.rule_executions`` and by the poller, so there is one definition of
each request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Generic, TypeVar

from . import _convert, errors, models
from ._checks import check_count, check_text, query
from ._ratelimit import Priority
from ._requester import Requester
from ._wire import Envelope, next_cursor


T = TypeVar("T")
log = logging.getLogger("sequence_async")
_AGAIN = 3  # pages seen before, in a row, that end a list
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 10_000
# A cursor longer than this is no cursor (each is sent back in the next URL).
MAX_CURSOR_CHARS = 2048


class Paginator(Generic[T]):
    """
    An async iterator over every item of a paginated list.

    Pages are fetched lazily, one when the last item of the previous one has
    been used; ``pages()`` gives them one at a time instead. A page's
    ``page_info.end_cursor`` (on ``platform-v1``, its page number) can be
    saved and passed as ``start_after`` to resume the listing later.

    Paging stops at the last page, and also, with a WARNING, on a server
    that sends an empty page with more to come, repeats a cursor or a whole
    page (one that ignores the page number asked for), or has given
    ``max_pages`` pages: a broken server never loops the client.
    """

    __slots__ = (
        "_called_reason",
        "_max_pages",
        "_model",
        "_operation",
        "_page_size",
        "_params",
        "_path",
        "_priority",
        "_request_id",
        "_requester",
        "_start_after",
    )

    def __init__(
        self,
        requester: Requester,
        path: str,
        params: Mapping[str, str | tuple[str, ...]],
        model: type[T],
        *,
        operation: str,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        priority: Priority = Priority.OTHER,
        called_reason: str | None = None,
    ) -> None:
        self._requester = requester
        self._path = path
        self._params = dict(params)
        self._called_reason = called_reason
        self._model = model
        self._operation = operation
        self._page_size = (
            check_count(page_size, "page_size", minimum=1, allow_none=True)
            or DEFAULT_PAGE_SIZE
        )
        if self._page_size > DEFAULT_PAGE_SIZE:
            raise ValueError(f"page_size must be at most {DEFAULT_PAGE_SIZE}")
        self._start_after = check_text(start_after, "start_after")
        if self._start_after == "":  # (an unset variable: never sent as a cursor)
            raise ValueError("start_after must be a saved cursor, not empty")
        requester.profile.page_params(1, self._start_after)  # a bad cursor: now
        self._request_id = request_id
        self._max_pages = check_count(max_pages, "max_pages", minimum=1) or 1
        self._priority = priority

    def __repr__(self) -> str:
        return f"<Paginator {self._path} of {self._model.__name__}>"

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def pages(self) -> AsyncIterator[models.Page[T]]:
        """
        Yield the list one page at a time.
        """
        after = self._start_after
        profile = self._requester.profile
        seen: set[bytes] = set()  # fingerprints of the cursors given
        pages_seen: set[bytes] = set()  # fingerprints of the pages' contents
        again = 0  # pages in a row that came before
        for _ in range(self._max_pages):
            envelope = await self._requester.request(
                "GET",
                self._path,
                operation=self._operation,
                params=self._params | profile.page_params(self._page_size, after),
                request_id=self._request_id,
                priority=self._priority,
                called_reason=self._called_reason,
            )
            if profile.page_numbers and not isinstance(envelope.data, dict):
                shape = type(envelope.data).__name__  # not {items, pagination}
                raise errors.ResponseValidationError(
                    f"{self._path}: expected a page, got {shape}",
                    request_id=envelope.request_id,
                )
            data, page_info = profile.read_page(
                envelope.data, envelope.page_info, after
            )
            # More than asked for is no page (and a list of them, kept whole,
            # would be memory without end).
            if isinstance(data, list) and len(data) > self._page_size:
                raise errors.ResponseValidationError(
                    f"{self._path}: {len(data)} items in a page of at most "
                    f"{self._page_size}",
                    request_id=envelope.request_id,
                )
            fingerprint = _digest(repr(data))
            # A server that ignores the page asked for (page numbers leave no
            # cursor to repeat) would give a page, or a cycle of pages, for
            # ever. A page seen before is not given again, and _AGAIN of them
            # in a row end the list. (Fewer may be the list shifting under
            # new items: page 2 can be page 1 again.)
            repeated = bool(data) and fingerprint in pages_seen
            again = again + 1 if repeated else 0
            if again >= _AGAIN:
                log.warning("%s: the server sent pages again; stopped", self._path)
                return
            pages_seen.add(fingerprint)
            items = _convert.structure_list(
                data, self._model, request_id=envelope.request_id, profile=profile
            )
            page_info = page_info or {}
            if not repeated:
                yield models.Page(
                    items=items,
                    page_info=_convert.structure(page_info, models.PageInfo),
                    request_id=envelope.request_id,
                    retry_after=envelope.retry_after,
                )
            after = next_cursor(page_info, items=len(items), page_size=self._page_size)
            if after is None:
                if page_info.get("has_next_page") is True:
                    log.warning(
                        "%s: the server said more pages follow but sent no "
                        "cursor; stopped paging",
                        self._path,
                    )
                return
            if len(after) > MAX_CURSOR_CHARS:
                raise errors.ResponseValidationError(
                    f"{self._path}: a cursor of {len(after)} characters",
                    request_id=envelope.request_id,
                )
            cursor = _digest(after)
            if not items or cursor in seen:
                log.warning(
                    "%s: the server sent %s; stopped paging",
                    self._path,
                    "an empty page with more to come"
                    if not items
                    else "a cursor again",
                )
                return
            seen.add(cursor)
        log.warning("%s: stopped paging after %d pages", self._path, self._max_pages)


def _digest(text: str) -> bytes:
    # What paging remembers of a page or a cursor: 16 bytes, whatever its size.
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


async def get_execution(
    requester: Requester,
    execution_id: str,
    *,
    rule_id: str | None = None,
    request_id: str | None = None,
    priority: Priority = Priority.OTHER,
    deadline: float | None = None,
    called_reason: str | None = None,
) -> models.RuleExecution:
    """
    ``GET /rule-executions/{id}`` (``/rules/{ruleId}/executions/{id}``).
    """
    snapshot, _ = await read_execution(
        requester,
        execution_id,
        rule_id=rule_id,
        request_id=request_id,
        priority=priority,
        deadline=deadline,
        called_reason=called_reason,
    )
    return snapshot


async def read_execution(
    requester: Requester,
    execution_id: str,
    *,
    rule_id: str | None = None,
    request_id: str | None = None,
    priority: Priority = Priority.OTHER,
    deadline: float | None = None,
    called_reason: str | None = None,
) -> tuple[models.RuleExecution, float | None]:
    """
    ``get_execution``, with the answer's ``Retry-After`` hint (seconds).
    """
    envelope: Envelope = await requester.request(
        "GET",
        requester.profile.execution_path(rule_id, execution_id),
        operation="rule_executions.get",
        attributes={"sequence.execution_id": execution_id},
        request_id=request_id,
        priority=priority,
        deadline=deadline,
        called_reason=called_reason,
    )
    snapshot = _convert.structure(
        envelope.data,
        models.RuleExecution,
        request_id=envelope.request_id,
        profile=requester.profile,
    )
    if snapshot.id != execution_id:
        raise errors.ResponseValidationError(
            f"asked for execution {execution_id!r}, got {snapshot.id!r}",
            request_id=envelope.request_id,
        )
    if requester.profile.page_numbers and snapshot.rule_id != rule_id:
        # The path named the rule: an answer of another rule is not this one
        # (a handle built from it would poll the other rule).
        raise errors.ResponseValidationError(
            f"asked for execution {execution_id!r} of rule {rule_id!r}, "
            f"got one of {snapshot.rule_id!r}",
            request_id=envelope.request_id,
        )
    return snapshot, envelope.retry_after


def list_executions(
    requester: Requester,
    rule_id: str,
    *,
    status: str | None = None,
    trigger_type: str | None = None,
    from_: object = None,
    to: object = None,
    page_size: int | None = None,
    start_after: str | None = None,
    request_id: str | None = None,
    priority: Priority = Priority.OTHER,
    called_reason: str | None = None,
    execution_mode: str | None = None,
) -> Paginator[models.RuleExecution]:
    """
    ``GET /rule-executions?rule_id=…`` (``/rules/{ruleId}/executions``), newest first.
    """
    profile = requester.profile
    endpoint, params = profile.executions_list(rule_id)
    if execution_mode is not None:
        profile.require("simulation", "execution_mode")
    return Paginator(
        requester,
        endpoint,
        params
        | profile.query(
            query(
                status=status,
                trigger_type=trigger_type,
                execution_mode=execution_mode,
                from_=from_,
                to=to,
            )
        ),
        models.RuleExecution,
        operation="rule_executions.list",
        page_size=page_size,
        start_after=start_after,
        request_id=request_id,
        priority=priority,
        called_reason=called_reason,
    )
