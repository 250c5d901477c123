"""
The resource namespaces: one class per API area, one method per endpoint.

Owns paths, query and body shapes, local checks of arguments, and turning
envelopes into models. Resources get the client's request function (and, for
``rules.trigger``, its handle factory); they never import the client.

May import: ``_convert``, ``_ratelimit``, ``_wire``, ``models``, ``errors``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from . import _convert, models
from ._ids import new_id
from ._ratelimit import Priority
from ._wire import (
    Envelope,
    check_idempotency_key,
    check_page_size,
    next_cursor,
    query,
)
from .errors import ResponseValidationError


if TYPE_CHECKING:
    from ._execution import Execution


T = TypeVar("T")
_DEFAULT_PAGE_SIZE = 100


class RequestFn(Protocol):
    """
    The client's request function, as resources see it.
    """

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        priority: Priority = Priority.OTHER,
    ) -> Envelope: ...


class MakeExecution(Protocol):
    """
    Builds an ``Execution`` handle from a trigger's answer.
    """

    def __call__(
        self,
        *,
        execution_id: str,
        rule_id: str,
        request_id: str | None,
        idempotency_key: str,
        triggered_at: datetime,
    ) -> Execution: ...


def _id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _segment(value: object, name: str) -> str:
    return urllib.parse.quote(_id(value, name), safe="")


def _amount(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of cents")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum} cents")
    return value


class Paginator(Generic[T]):
    """
    An async iterator over every item of a cursor-paginated list.

    Pages are fetched lazily, one when the last item of the previous one has
    been used; ``pages()`` gives them one at a time instead.
    """

    __slots__ = ("_model", "_page_size", "_params", "_path", "_request", "_request_id")

    def __init__(
        self,
        request: RequestFn,
        path: str,
        params: dict[str, str],
        model: type[T],
        *,
        page_size: int | None,
        request_id: str | None,
    ) -> None:
        self._request = request
        self._path = path
        self._params = params
        self._model = model
        self._page_size = check_page_size(page_size) or _DEFAULT_PAGE_SIZE
        self._request_id = request_id

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
        after: str | None = None
        while True:
            params = {**self._params, "first": str(self._page_size)}
            if after is not None:
                params["after"] = after
            envelope = await self._request(
                "GET", self._path, params=params, request_id=self._request_id
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


class _Resource:
    __slots__ = ("_request",)

    def __init__(self, request: RequestFn) -> None:
        self._request = request

    async def _get(
        self,
        path: str,
        model: type[T],
        *,
        params: Mapping[str, str] | None = None,
        request_id: str | None,
    ) -> T:
        envelope = await self._request(
            "GET", path, params=params, request_id=request_id
        )
        return _convert.structure(envelope.data, model, request_id=envelope.request_id)

    async def _list(
        self,
        path: str,
        model: type[T],
        *,
        params: Mapping[str, str] | None = None,
        request_id: str | None,
    ) -> list[T]:
        envelope = await self._request(
            "GET", path, params=params, request_id=request_id
        )
        return list(
            _convert.structure_list(
                envelope.data, model, request_id=envelope.request_id
            )
        )


class Accounts(_Resource):
    """
    ``/accounts``: income sources, pods and external accounts.
    """

    __slots__ = ()

    async def list(
        self,
        *,
        type: models.AccountType | str | None = None,
        request_id: str | None = None,
    ) -> list[models.Account]:
        """
        List every account of the organization (scope ``LIST_ACCOUNTS``).
        """
        return await self._list(
            "/accounts", models.Account, params=query(type=type), request_id=request_id
        )

    async def get(
        self, account_id: str, *, request_id: str | None = None
    ) -> models.Account:
        """
        Get one account with its balance (scope ``READ_ACCOUNTS``).
        """
        return await self._get(
            f"/accounts/{_segment(account_id, 'account_id')}",
            models.Account,
            request_id=request_id,
        )


class Rules(_Resource):
    """
    ``/rules``: read rules and trigger them.
    """

    __slots__ = ("_make_execution",)

    def __init__(self, request: RequestFn, make_execution: MakeExecution) -> None:
        super().__init__(request)
        self._make_execution = make_execution

    async def list(
        self, *, source_id: str | None = None, request_id: str | None = None
    ) -> list[models.RuleSummary]:
        """
        List every rule of the organization (scope ``LIST_RULES``).
        """
        return await self._list(
            "/rules",
            models.RuleSummary,
            params=query(source_id=source_id),
            request_id=request_id,
        )

    async def get(self, rule_id: str, *, request_id: str | None = None) -> models.Rule:
        """
        Get a whole rule: trigger, steps, conditions, actions (``READ_RULES``).
        """
        return await self._get(
            f"/rules/{_segment(rule_id, 'rule_id')}", models.Rule, request_id=request_id
        )

    async def trigger(
        self,
        rule_id: str,
        *,
        manual_execute_amount: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Execution:
        """
        Start a rule now and return the handle of its execution.

        The request always carries an idempotency key (a new uuid4 when none
        is given), reused on every retry, so a lost answer never runs the rule
        twice.

        Args:
            rule_id: The rule (scope ``TRIGGER_RULES``).
            manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
            idempotency_key: Your key for this trigger (1 to 255 printable
                ASCII characters); the same key within 24 h returns the first
                execution instead of starting another.
            request_id: Sent as ``X-Request-ID``.

        Raises:
            errors.OutcomeUnknownError: Retries ran out on network or server
                errors; trigger again with its ``idempotency_key``.
        """
        path = f"/rules/{_segment(rule_id, 'rule_id')}/trigger"
        body: dict[str, Any] = {}
        if manual_execute_amount is not None:
            body["manual_execute_amount"] = _amount(
                manual_execute_amount, "manual_execute_amount", minimum=0
            )
        key = (
            new_id()
            if idempotency_key is None
            else check_idempotency_key(idempotency_key)
        )
        triggered_at = datetime.now(UTC)
        envelope = await self._request(
            "POST",
            path,
            json=body,
            idempotency_key=key,
            request_id=request_id,
            priority=Priority.TRIGGER,
        )
        data = envelope.data
        execution_id = data.get("execution_id") if isinstance(data, dict) else None
        if not isinstance(execution_id, str) or not execution_id:
            raise ResponseValidationError(
                f"trigger answer has no execution_id: {str(data)[:200]!r}",
                request_id=envelope.request_id,
            )
        return self._make_execution(
            execution_id=execution_id,
            rule_id=rule_id,
            request_id=envelope.request_id,
            idempotency_key=key,
            triggered_at=triggered_at,
        )


class RuleExecutions(_Resource):
    """
    ``/rule-executions``: the history and state of rule runs.
    """

    __slots__ = ()

    def list(
        self,
        *,
        rule_id: str,
        status: models.ExecutionStatus | str | None = None,
        trigger_type: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        request_id: str | None = None,
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
            request_id: Sent as ``X-Request-ID`` on every page.
        """
        _id(rule_id, "rule_id")
        return Paginator(
            self._request,
            "/rule-executions",
            query(
                rule_id=rule_id,
                status=status,
                trigger_type=trigger_type,
                from_=from_,
                to=to,
            ),
            models.RuleExecution,
            page_size=page_size,
            request_id=request_id,
        )

    async def get(
        self, execution_id: str, *, request_id: str | None = None
    ) -> models.RuleExecution:
        """
        Get one execution with its outcome and transfer ids.
        """
        return await self._get(
            f"/rule-executions/{_segment(execution_id, 'execution_id')}",
            models.RuleExecution,
            request_id=request_id,
        )


class Transfers(_Resource):
    """
    ``/transfers``: money movements, and manual transfers.
    """

    __slots__ = ()

    def list(
        self,
        *,
        account_id: str,
        account_role: str | None = None,
        direction: models.TransferDirection | str | None = None,
        origin: str | None = None,
        status: models.TransferStatus | str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        request_id: str | None = None,
    ) -> Paginator[models.Transfer]:
        """
        Iterate over an account's transfers, newest first (``READ_TRANSFERS``).

        Args:
            account_id: Required by the API.
            account_role: ``source``, ``destination`` or ``either`` (default).
            direction: ``money_in``, ``money_out`` or ``internal``.
            origin: ``paycheck``, ``check_deposit``, ``cashback``,
                ``user_pull``, ``rule``, ``user`` or ``external_pull``.
            status: A transfer status such as ``complete``.
            from_: Created at or after (sent as ``from``).
            to: Created at or before.
            page_size: Items per request, 1 to 100 (sent as ``first``).
            request_id: Sent as ``X-Request-ID`` on every page.
        """
        _id(account_id, "account_id")
        return Paginator(
            self._request,
            "/transfers",
            query(
                account_id=account_id,
                account_role=account_role,
                direction=direction,
                origin=origin,
                status=status,
                from_=from_,
                to=to,
            ),
            models.Transfer,
            page_size=page_size,
            request_id=request_id,
        )

    async def get(
        self, transfer_id: str, *, request_id: str | None = None
    ) -> models.Transfer:
        """
        Get one transfer.
        """
        return await self._get(
            f"/transfers/{_segment(transfer_id, 'transfer_id')}",
            models.Transfer,
            request_id=request_id,
        )

    async def create(
        self,
        *,
        source_account_id: str,
        destination_account_id: str,
        amount_in_cents: int,
        description: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> models.Transfer:
        """
        Create a manual transfer (scope ``MANUAL_TRANSFER``); it runs async.

        Always sent with an idempotency key (a new uuid4 when none is given),
        reused on every retry.

        Raises:
            errors.OutcomeUnknownError: Retries ran out on network or server
                errors; create again with its ``idempotency_key``.
        """
        body: dict[str, Any] = {
            "source_account_id": _id(source_account_id, "source_account_id"),
            "destination_account_id": _id(
                destination_account_id, "destination_account_id"
            ),
            "amount_in_cents": _amount(amount_in_cents, "amount_in_cents", minimum=1),
        }
        if description is not None:
            body["description"] = description
        key = (
            new_id()
            if idempotency_key is None
            else check_idempotency_key(idempotency_key)
        )
        envelope = await self._request(
            "POST", "/transfers", json=body, idempotency_key=key, request_id=request_id
        )
        return _convert.structure(
            envelope.data, models.Transfer, request_id=envelope.request_id
        )


class Cards(_Resource):
    """
    ``/cards`` (experimental: "coming soon" in Sequence's docs).
    """

    __slots__ = ()

    async def list(
        self,
        *,
        account_id: str,
        status: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
    ) -> list[models.Card]:
        """
        List the cards of a pod (scope ``READ_CARDS``).
        """
        _id(account_id, "account_id")
        return await self._list(
            "/cards",
            models.Card,
            params=query(account_id=account_id, status=status, type=type),
            request_id=request_id,
        )

    async def get(self, card_id: str, *, request_id: str | None = None) -> models.Card:
        """
        Get one card.
        """
        return await self._get(
            f"/cards/{_segment(card_id, 'card_id')}", models.Card, request_id=request_id
        )

    def transactions(
        self,
        card_id: str,
        *,
        direction: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        request_id: str | None = None,
    ) -> Paginator[models.CardTransaction]:
        """
        Iterate over a card's transactions, newest first.
        """
        return Paginator(
            self._request,
            f"/cards/{_segment(card_id, 'card_id')}/transactions",
            query(direction=direction, from_=from_, to=to),
            models.CardTransaction,
            page_size=page_size,
            request_id=request_id,
        )


__all__ = [
    "Accounts",
    "Cards",
    "MakeExecution",
    "Paginator",
    "RequestFn",
    "RuleExecutions",
    "Rules",
    "Transfers",
]
