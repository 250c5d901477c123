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

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from . import _convert, errors, models
from ._checks import (
    MAX_CENTS,
    check_text,
    path,
    query,
    segment,
)
from ._execution import Execution
from ._ids import new_id
from ._paging import Paginator
from ._profiles import Profile
from ._requester import Requester


T = TypeVar("T")


def checked_id(value: object, name: str) -> str:
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


def add_key_note(exc: BaseException, key: str) -> None:
    """
    Name the idempotency key on a cancellation that interrupts a mutating call.

    The request may have been sent: trigger again with that key to learn
    what happened without moving money twice.
    """
    exc.add_note(
        f"sequence-async: the request may have been sent; idempotency_key={key!r}"
    )


async def wait_triggered(
    execution: Execution,
    timeout: float | None,
    *,
    deadline: float | None,
    **options: Any,
) -> models.RuleExecution:
    """
    Wait on a just-triggered *execution*: ``trigger_and_wait``'s second half.

    With a *deadline* (``time.monotonic()`` seconds, *timeout* after the
    call began), the wait gets what the trigger left of it; when nothing is
    left, ``WaitTimeoutError`` at once, with no last look. Any other error
    says the execution started (``_triggered``).
    """
    try:
        rest = timeout
        if deadline is not None:
            rest = deadline - time.monotonic()
            if rest <= 0:
                raise errors.WaitTimeoutError(  # noqa: TRY301 (noted below too)
                    execution, timeout=timeout or 0.0, last_status=None
                )
        return await execution.wait(rest, **options)
    except errors.WaitTimeoutError as exc:  # it says the caller's timeout
        if exc.timeout == timeout:
            raise
        raise errors.WaitTimeoutError(
            execution, timeout=timeout or 0.0, last_status=exc.last_status
        ) from None
    except BaseException as exc:
        _triggered(exc, execution)  # a 403 on reads, a close, a cancel...
        raise


def _triggered(exc: BaseException, execution: Execution) -> None:
    """
    Say on *exc*, which ended a wait, that *execution* did start.

    So that no error of the wait (a 403 on reads, a close, a cancel) reads
    as "nothing ran": a ``SequenceError`` also carries the handle as
    ``execution``; wait on it again (or ``to_token()`` it), never trigger
    again under a new key. A ``WaitTimeoutError`` (the handle) or an
    ``ExecutionFailedError`` (the result) already says it.
    """
    if isinstance(exc, errors.WaitTimeoutError | errors.ExecutionFailedError):
        return
    exc.add_note(
        f"sequence-async: the rule was triggered (execution {execution.id!r}, "
        f"idempotency_key={execution.idempotency_key!r}); wait on it again, "
        "do not trigger it again"
    )
    if isinstance(exc, errors.SequenceError):
        exc.execution = execution


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

    def _pages(
        self,
        endpoint: str,
        model: type[T],
        *,
        wire_params: Mapping[str, str | tuple[str, ...]],
        filters: Mapping[str, str],
        page_size: int | None,
        start_after: str | None,
        request_id: str | None,
        called_reason: str | None,
    ) -> Paginator[T]:
        # ``wire_params`` are already in the profile's names; ``filters`` (from
        # ``_checks.query``) are translated here, then the reason is checked.
        profile = self._profile
        params = {**wire_params, **profile.query(filters)}
        return Paginator(
            self._requester,
            endpoint,
            params,
            model,
            operation=f"{self.name}.list",
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason_of(called_reason, profile),
        )

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
        checked_id(account_id, "account_id")
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
