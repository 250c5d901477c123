"""
The ``platform-v1``-only namespaces: external and card transactions, audit logs.

Owns ``client.external_transactions``, ``client.card_transactions`` and
``client.audit_logs``: their paths, queries and checks. On an ``api-v1``
client every method raises ``UnsupportedFeatureError`` naming the profile,
before anything is sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime

from . import models
from ._checks import query, segment
from ._paging import Paginator
from ._resources import Resource


# Ids in one query: more would pass a server's URL limit (each is sent).
MAX_ACCOUNT_IDS = 100


class ExternalTransactions(Resource):
    """
    ``/external-transactions``: money in and out of linked external accounts.
    """

    __slots__ = ()
    name = "external_transactions"

    def list(
        self,
        *,
        account_ids: Iterable[str],
        direction: models.TransferDirection | str | None = None,
        status: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> Paginator[models.ExternalTransaction]:
        """
        Iterate over the accounts' external transactions (``READ_TRANSFERS``).

        Args:
            account_ids: One or more accounts (required by the API).
            direction: ``money_in`` or ``money_out``.
            status: ``pending`` or ``complete``.
            from_: At or after (at most 90 days back; sent as ``from``).
            to: At or before.
            page_size: Items per request, 1 to 100.
            start_after: A saved page number: start after it.
            request_id: Sent as ``X-Request-ID`` on every page.
            called_reason: Sent as ``x-called-reason``.

        Raises:
            errors.UnsupportedFeatureError: On an ``api-v1`` client.
        """
        profile = self._profile
        profile.require("external_transactions", "client.external_transactions")
        if isinstance(account_ids, str):
            raise TypeError("account_ids must be a list of ids, not one str")
        ids = tuple(itertools.islice(account_ids, MAX_ACCOUNT_IDS + 1))
        if not 1 <= len(ids) <= MAX_ACCOUNT_IDS:
            raise ValueError(f"account_ids must name 1 to {MAX_ACCOUNT_IDS} accounts")
        for account_id in ids:
            segment(account_id, "account_ids")
        return self._pages(
            "/external-transactions",
            models.ExternalTransaction,
            wire_params={profile.wire("account_ids"): ids},
            filters=query(direction=direction, status=status, from_=from_, to=to),
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason,
        )


class CardTransactions(Resource):
    """
    ``/card-transactions``: purchases and refunds on a pod's cards (experimental).
    """

    __slots__ = ()
    name = "card_transactions"

    def list(
        self,
        *,
        account_id: str,
        card_id: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> Paginator[models.CardTransaction]:
        """
        Iterate over a pod's card transactions, newest first (``READ_TRANSFERS``).

        "Coming soon" in Sequence's description. On ``api-v1``, a card's
        transactions are ``client.cards.transactions(card_id)``.

        Args:
            account_id: The pod the cards draw on (required by the API).
            card_id: Only this card's transactions.
            from_: At or after (sent as ``from``).
            to: At or before.
            page_size: Items per request, 1 to 100.
            start_after: A saved page number: start after it.
            request_id: Sent as ``X-Request-ID`` on every page.
            called_reason: Sent as ``x-called-reason``.

        Raises:
            errors.UnsupportedFeatureError: On an ``api-v1`` client.
        """
        self._profile.require("card_transactions", "client.card_transactions")
        segment(account_id, "account_id")
        if card_id is not None:
            segment(card_id, "card_id")
        return self._pages(
            "/card-transactions",
            models.CardTransaction,
            wire_params={},
            filters=query(account_id=account_id, card_id=card_id, from_=from_, to=to),
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason,
        )


class AuditLogs(Resource):
    """
    ``/audit-logs``: the calls made with the organization's API keys.
    """

    __slots__ = ()
    name = "audit_logs"

    def list(
        self,
        *,
        api_key_id: str | None = None,
        action: str | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        page_size: int | None = None,
        start_after: str | None = None,
        request_id: str | None = None,
        called_reason: str | None = None,
    ) -> Paginator[models.AuditLogEntry]:
        """
        Iterate over audit-log entries, newest first (``READ_AUDIT_LOGS``).

        Args:
            api_key_id: Only this key's calls.
            action: Only this action (``TRIGGER_RULE``, ``GET_RULE``, ...).
            from_: At or after (at most 90 days back; the API's default).
            to: At or before (default now).
            page_size: Items per request, 1 to 100.
            start_after: A saved page number: start after it.
            request_id: Sent as ``X-Request-ID`` on every page.
            called_reason: Sent as ``x-called-reason``.

        Raises:
            errors.UnsupportedFeatureError: On an ``api-v1`` client.
        """
        self._profile.require("audit_logs", "client.audit_logs")
        return self._pages(
            "/audit-logs",
            models.AuditLogEntry,
            wire_params={},
            filters=query(api_key_id=api_key_id, action=action, from_=from_, to=to),
            page_size=page_size,
            start_after=start_after,
            request_id=request_id,
            called_reason=called_reason,
        )
