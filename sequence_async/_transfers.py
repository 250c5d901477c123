"""
``client.transfers``: money movements, and manual transfers.

Owns the transfer endpoints: listing an account's transfers (one path per
API), getting one (its id checked), and creating a manual transfer, always
with an idempotency key reused by every retry.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from . import _convert, errors, models
from ._checks import (
    check_request_id,
    path,
    query,
    segment,
)
from ._paging import Paginator
from ._resources import (
    Resource,
    add_key_note,
    amount,
    called_reason_of,
    checked_id,
    idempotency_key_of,
    simulation_of,
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
        endpoint, params = profile.transfers_list(checked_id(account_id, "account_id"))
        return self._pages(
            endpoint,
            models.Transfer,
            wire_params=params,
            filters=query(
                account_role=account_role,
                direction=direction,
                origin=origin,
                status=status,
                from_=from_,
                to=to,
            ),
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason,
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
                errors, or the 2xx answer is unusable; create again with its
                ``idempotency_key``.
            errors.UnsupportedFeatureError: ``simulation`` or
                ``called_reason`` on ``api-v1``; nothing was sent.
        """
        profile = self._profile
        body = profile.body(
            {
                "source_account_id": checked_id(source_account_id, "source_account_id"),
                "destination_account_id": checked_id(
                    destination_account_id, "destination_account_id"
                ),
                "amount_in_cents": amount(
                    amount_in_cents, "amount_in_cents", minimum=profile.min_transfer
                ),
                "description": profile.check_description(description),
                "simulation": simulation_of(simulation, profile),
            }
        )
        key = idempotency_key_of(idempotency_key, profile)
        reason = called_reason_of(called_reason, profile)
        if request_id is not None:
            check_request_id(request_id)
        try:
            envelope = await self._requester.request(
                "POST",
                "/transfers",
                operation="transfers.create",
                json=body,
                idempotency_key=key,
                request_id=request_id,
                called_reason=reason,
            )
        except asyncio.CancelledError as exc:
            add_key_note(exc, key)
            raise
        try:
            transfer = _convert.structure(
                envelope.data,
                models.Transfer,
                request_id=envelope.request_id,
                profile=profile,
            )
            # An id transfers.get would refuse finds nothing again.
            segment(transfer.id, "the transfer's id")
        except (errors.ResponseValidationError, TypeError, ValueError) as exc:
            # The server acted (2xx) but the answer is unusable: keep the key.
            raise errors.OutcomeUnknownError(
                f"POST /transfers was accepted, but the answer is unusable: {exc}",
                idempotency_key=key,
            ) from exc
        return transfer
