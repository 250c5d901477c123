"""
The resource namespaces but the rules': accounts, transfers, cards.

Owns the base of every namespace (it holds the ``Requester`` of its client or
view, and turns envelopes into models), the endpoints' paths (built by
``_checks.path``: every id quoted and checked), query and body shapes, and
the local checks of arguments shared with ``_rules``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from . import _convert, errors, models
from ._checks import (
    MAX_CENTS,
    check_idempotency_key,
    check_request_id,
    check_text,
    path,
    query,
    segment,
)
from ._ids import new_id
from ._paging import Paginator
from ._requester import Requester


T = TypeVar("T")


def _id(value: object, name: str) -> str:
    segment(value, name)
    return value  # type: ignore[return-value]


def amount(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of cents")
    if not minimum <= value <= MAX_CENTS:
        raise ValueError(f"{name} must be from {minimum} to {MAX_CENTS} cents")
    return value


def idempotency_key_of(idempotency_key: object) -> str:
    return (
        new_id() if idempotency_key is None else check_idempotency_key(idempotency_key)
    )


@contextlib.contextmanager
def noted(key: str) -> Iterator[None]:
    """
    Name the idempotency key on a cancellation that interrupts a mutating call.

    The request may have been sent: trigger again with that key to learn
    what happened without moving money twice.
    """
    try:
        yield
    except asyncio.CancelledError as exc:
        exc.add_note(
            f"sequence-async: the request may have been sent; idempotency_key={key!r}"
        )
        raise


class Resource:
    """
    A namespace of endpoints; made by ``SequenceClient``, not for direct use.
    """

    __slots__ = ("_requester",)
    # The namespace's attribute on the client: operations are "NAME.VERB".
    name = "resource"

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _get(
        self,
        endpoint: str,
        model: type[T],
        *,
        params: dict[str, str] | None = None,
        request_id: str | None,
        expect_id: str | None = None,
    ) -> T:
        envelope = await self._requester.request(
            "GET",
            endpoint,
            operation=f"{self.name}.get",
            params=params,
            request_id=request_id,
        )
        found = _convert.structure(envelope.data, model, request_id=envelope.request_id)
        if expect_id is not None and getattr(found, "id", None) != expect_id:
            raise errors.ResponseValidationError(
                f"asked for {self.name} {expect_id!r}, got "
                f"{getattr(found, 'id', None)!r}",
                request_id=envelope.request_id,
            )
        return found

    async def _list(
        self,
        endpoint: str,
        model: type[T],
        *,
        params: dict[str, str] | None = None,
        request_id: str | None,
    ) -> list[T]:
        envelope = await self._requester.request(
            "GET",
            endpoint,
            operation=f"{self.name}.list",
            params=params,
            request_id=request_id,
        )
        return list(
            _convert.structure_list(
                envelope.data, model, request_id=envelope.request_id
            )
        )


class Accounts(Resource):
    """
    ``/accounts``: income sources, pods and external accounts.
    """

    __slots__ = ()
    name = "accounts"

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
            path("accounts", (account_id, "account_id")),
            models.Account,
            request_id=request_id,
            expect_id=account_id,
        )


class Transfers(Resource):
    """
    ``/transfers``: money movements, and manual transfers.
    """

    __slots__ = ()
    name = "transfers"

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
        start_after: str | None = None,
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
            start_after: A saved ``page_info.end_cursor``: start after it.
            request_id: Sent as ``X-Request-ID`` on every page.
        """
        _id(account_id, "account_id")
        return Paginator(
            self._requester,
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
            operation="transfers.list",
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
        )

    async def get(
        self, transfer_id: str, *, request_id: str | None = None
    ) -> models.Transfer:
        """
        Get one transfer.
        """
        return await self._get(
            path("transfers", (transfer_id, "transfer_id")),
            models.Transfer,
            request_id=request_id,
            expect_id=transfer_id,
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
            "amount_in_cents": amount(amount_in_cents, "amount_in_cents", minimum=1),
        }
        if check_text(description, "description") is not None:
            body["description"] = description
        key = idempotency_key_of(idempotency_key)
        if request_id is not None:
            check_request_id(request_id)
        with noted(key):
            envelope = await self._requester.request(
                "POST",
                "/transfers",
                operation="transfers.create",
                json=body,
                idempotency_key=key,
                request_id=request_id,
            )
        return _convert.structure(
            envelope.data, models.Transfer, request_id=envelope.request_id
        )


class Cards(Resource):
    """
    ``/cards`` (experimental: "coming soon" in Sequence's docs).
    """

    __slots__ = ()
    name = "cards"

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
            path("cards", (card_id, "card_id")),
            models.Card,
            request_id=request_id,
            expect_id=card_id,
        )

    def transactions(
        self,
        card_id: str,
        *,
        direction: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
    ) -> Paginator[models.CardTransaction]:
        """
        Iterate over a card's transactions, newest first.
        """
        return Paginator(
            self._requester,
            path("cards", (card_id, "card_id"), "transactions"),
            query(direction=direction, from_=from_, to=to),
            models.CardTransaction,
            operation="cards.transactions",
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
        )
