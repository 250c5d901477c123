"""
The resource namespaces but the rules': accounts, transfers, cards.

Owns the base of every namespace (it holds the ``Requester`` of its client or
view, and turns envelopes into models with its profile), the endpoints'
paths (built by ``_checks.path``, or the profile where the surfaces differ:
every id quoted and checked), query and body shapes, and the local checks of
arguments shared with ``_rules`` (idempotency keys by the profile's rules,
``x-called-reason``, surface-only features).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TypeVar

from . import _convert, errors, models
from ._checks import (
    MAX_CENTS,
    check_request_id,
    check_text,
    path,
    query,
    segment,
)
from ._ids import new_id
from ._paging import Paginator
from ._profiles import Profile
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


def idempotency_key_of(idempotency_key: object, profile: Profile) -> str:
    return (
        new_id()
        if idempotency_key is None
        else profile.check_idempotency_key(idempotency_key)
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


def called_reason_of(reason: object, profile: Profile) -> str | None:
    """
    Return a checked ``x-called-reason`` (Platform only), or ``None``.
    """
    if reason is None:
        return None
    profile.require("called_reason", "called_reason (x-called-reason)")
    text = check_text(reason, "called_reason")
    if not text or len(text) > 500 or not text.isprintable():
        raise ValueError("called_reason must be 1 to 500 printable characters")
    return text


def simulation_of(simulation: object, profile: Profile) -> bool | None:
    """
    Return *simulation* when this surface has dry runs (Platform), else raise.
    """
    if simulation is None:
        return None
    profile.require("simulation", "simulation=")
    if not isinstance(simulation, bool):
        raise TypeError("simulation must be a bool")
    return simulation


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

    @property
    def _profile(self) -> Profile:
        return self._requester.profile

    async def _get(
        self,
        endpoint: str,
        model: type[T],
        *,
        request_id: str | None,
        called_reason: str | None,
        expect_id: str | None = None,
    ) -> T:
        envelope = await self._requester.request(
            "GET",
            endpoint,
            operation=f"{self.name}.get",
            request_id=request_id,
            called_reason=called_reason_of(called_reason, self._profile),
        )
        found = _convert.structure(
            envelope.data, model, request_id=envelope.request_id, profile=self._profile
        )
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
        called_reason: str | None,
    ) -> list[T]:
        # A whole list on api-v1; every page of it on platform-v1.
        profile = self._profile
        reason = called_reason_of(called_reason, profile)
        params = profile.query(params or {})
        if profile.page_numbers:
            pages = Paginator(
                self._requester,
                endpoint,
                params,
                model,
                operation=f"{self.name}.list",
                request_id=request_id,
                called_reason=reason,
            )
            return [item async for item in pages]
        envelope = await self._requester.request(
            "GET",
            endpoint,
            operation=f"{self.name}.list",
            params=params,
            request_id=request_id,
        )
        return list(
            _convert.structure_list(
                envelope.data, model, request_id=envelope.request_id, profile=profile
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
        called_reason: str | None = None,
    ) -> list[models.Account]:
        """
        List every account of the organization (scope ``LIST_ACCOUNTS``).
        """
        return await self._list(
            "/accounts",
            models.Account,
            params=query(type=type),
            request_id=request_id,
            called_reason=called_reason,
        )

    async def get(
        self,
        account_id: str,
        *,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> models.Account:
        """
        Get one account with its balance (scope ``READ_ACCOUNTS``).
        """
        return await self._get(
            path("accounts", (account_id, "account_id")),
            models.Account,
            request_id=request_id,
            expect_id=account_id,
            called_reason=called_reason,
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
        called_reason: str | None = None,
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
            called_reason: Sent as ``x-called-reason`` (``platform-v1``).
        """
        profile = self._profile
        endpoint, params = profile.transfers_list(_id(account_id, "account_id"))
        return Paginator(
            self._requester,
            endpoint,
            params
            | profile.query(
                query(
                    account_role=account_role,
                    direction=direction,
                    origin=origin,
                    status=status,
                    from_=from_,
                    to=to,
                )
            ),
            models.Transfer,
            operation="transfers.list",
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason_of(called_reason, profile),
        )

    async def get(
        self,
        transfer_id: str,
        *,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> models.Transfer:
        """
        Get one transfer.
        """
        return await self._get(
            path("transfers", (transfer_id, "transfer_id")),
            models.Transfer,
            request_id=request_id,
            expect_id=transfer_id,
            called_reason=called_reason,
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
        simulation: bool | None = None,
        called_reason: str | None = None,
    ) -> models.Transfer:
        """
        Create a manual transfer (scope ``MANUAL_TRANSFER``); it runs async.

        Always sent with an idempotency key (a new uuid4 when none is given),
        reused on every retry.

        Args:
            source_account_id: Where the money comes from.
            destination_account_id: Where it goes.
            amount_in_cents: How much (``platform-v1``: at least 100).
            description: The ACH label.
            idempotency_key: Your key (``platform-v1``: 1 to 36 characters
                of ``[A-Za-z0-9._:/|-]``).
            request_id: Sent as ``X-Request-ID``.
            simulation: A dry run (``platform-v1`` only).
            called_reason: Sent as ``x-called-reason`` (``platform-v1`` only).

        Raises:
            errors.OutcomeUnknownError: Retries ran out on network or server
                errors; create again with its ``idempotency_key``.
            errors.UnsupportedFeatureError: ``simulation`` or
                ``called_reason`` on ``api-v1``; nothing was sent.
        """
        profile = self._profile
        body = profile.body(
            {
                "source_account_id": _id(source_account_id, "source_account_id"),
                "destination_account_id": _id(
                    destination_account_id, "destination_account_id"
                ),
                "amount_in_cents": amount(
                    amount_in_cents, "amount_in_cents", minimum=profile.min_transfer
                ),
                "description": check_text(description, "description"),
                "simulation": simulation_of(simulation, profile),
            }
        )
        key = idempotency_key_of(idempotency_key, profile)
        reason = called_reason_of(called_reason, profile)
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
                called_reason=reason,
            )
        return _convert.structure(
            envelope.data,
            models.Transfer,
            request_id=envelope.request_id,
            profile=profile,
        )


class Cards(Resource):
    """
    ``/cards`` (experimental: "coming soon" in Sequence's docs; ``api-v1`` only).
    """

    __slots__ = ()
    name = "cards"

    def _check(self) -> None:
        self._profile.require("cards", "client.cards")

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
        self._check()
        _id(account_id, "account_id")
        return await self._list(
            "/cards",
            models.Card,
            params=query(account_id=account_id, status=status, type=type),
            request_id=request_id,
            called_reason=None,
        )

    async def get(self, card_id: str, *, request_id: str | None = None) -> models.Card:
        """
        Get one card.
        """
        self._check()
        return await self._get(
            path("cards", (card_id, "card_id")),
            models.Card,
            request_id=request_id,
            expect_id=card_id,
            called_reason=None,
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
        self._check()
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
