"""
Cursor paging, written once, and the rule-execution reads the poller shares.

Owns ``Paginator`` (lazy pages of any list endpoint, able to start from a
saved cursor, stopping on a last page, an empty page, a repeated cursor or
``max_pages``) and the two execution reads, ``get_execution`` and
``list_executions``, used alike by ``client.rule_executions`` and by the
poller, so there is one definition of each request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Generic, TypeVar

from . import _convert, errors, models
from ._checks import check_count, check_text, path, query, segment
from ._ratelimit import Priority
from ._requester import Requester
from ._wire import next_cursor


T = TypeVar("T")
log = logging.getLogger("sequence_async")
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 10_000


class Paginator(Generic[T]):
    """
    An async iterator over every item of a cursor-paginated list.

    Pages are fetched lazily, one when the last item of the previous one has
    been used; ``pages()`` gives them one at a time instead. A page's
    ``page_info.end_cursor`` can be saved and passed as ``start_after`` to
    resume the listing later.

    Paging stops at the last page, and also, with a WARNING, on a server
    that sends an empty page with more to come, repeats a cursor, or has
    given ``max_pages`` pages: a broken server never loops the client.
    """

    __slots__ = (
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
        params: Mapping[str, str],
        model: type[T],
        *,
        operation: str,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        priority: Priority = Priority.OTHER,
    ) -> None:
        self._requester = requester
        self._path = path
        self._params = dict(params)
        self._model = model
        self._operation = operation
        self._page_size = (
            check_count(page_size, "page_size", minimum=1, allow_none=True)
            or DEFAULT_PAGE_SIZE
        )
        if self._page_size > DEFAULT_PAGE_SIZE:
            raise ValueError(f"page_size must be at most {DEFAULT_PAGE_SIZE}")
        self._start_after = check_text(start_after, "start_after")
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
        seen: set[str] = set()
        for _ in range(self._max_pages):
            params = {**self._params, "first": str(self._page_size)}
            if after is not None:
                params["after"] = after
            envelope = await self._requester.request(
                "GET",
                self._path,
                operation=self._operation,
                params=params,
                request_id=self._request_id,
                priority=self._priority,
            )
            items = _convert.structure_list(
                envelope.data, self._model, request_id=envelope.request_id
            )
            page_info = envelope.page_info or {}
            yield models.Page(
                items=items,
                page_info=_convert.structure(page_info, models.PageInfo),
                request_id=envelope.request_id,
            )
            after = next_cursor(page_info, items=len(items), page_size=self._page_size)
            if after is None:
                return
            if not items or after in seen:
                log.warning(
                    "%s: the server sent %s; stopped paging",
                    self._path,
                    "an empty page with more to come"
                    if not items
                    else "a cursor again",
                )
                return
            seen.add(after)
        log.warning("%s: stopped paging after %d pages", self._path, self._max_pages)


async def get_execution(
    requester: Requester,
    execution_id: str,
    *,
    request_id: str | None = None,
    priority: Priority = Priority.OTHER,
    deadline: float | None = None,
) -> models.RuleExecution:
    """
    ``GET /rule-executions/{id}``: one execution's current state.
    """
    envelope = await requester.request(
        "GET",
        path("rule-executions", (execution_id, "execution_id")),
        operation="rule_executions.get",
        attributes={"sequence.execution_id": execution_id},
        request_id=request_id,
        priority=priority,
        deadline=deadline,
    )
    found = _convert.structure(
        envelope.data, models.RuleExecution, request_id=envelope.request_id
    )
    if found.id != execution_id:
        raise errors.ResponseValidationError(
            f"asked for execution {execution_id!r}, got {found.id!r}",
            request_id=envelope.request_id,
        )
    return found


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
) -> Paginator[models.RuleExecution]:
    """
    ``GET /rule-executions?rule_id=…``: a rule's executions, newest first.
    """
    segment(rule_id, "rule_id")
    return Paginator(
        requester,
        "/rule-executions",
        query(
            rule_id=rule_id,
            status=status,
            trigger_type=trigger_type,
            from_=from_,
            to=to,
        ),
        models.RuleExecution,
        operation="rule_executions.list",
        page_size=page_size,
        start_after=start_after,
        request_id=request_id,
        priority=priority,
    )
