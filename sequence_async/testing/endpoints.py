"""
The fake server's endpoints: one aiohttp handler per route of ``/api/v1``.

Owns ``ROUTES`` (method, path, route name, handler) and the handlers. Each
checks the key's scope and resource list, reads the path and query, asks
``State`` and answers with a ``Reply``; the pipeline has already
authenticated the key and read the body, and wraps the reply in its
envelope.

May import: ``testing.api``, ``testing.paging``, ``testing.pipeline``,
``testing.state``, ``testing.seed``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .api import (
    ACCOUNT_TYPES,
    CARD_STATUSES,
    CARD_TYPES,
    enum_param,
    forbidden,
    not_found,
    required,
)
from .paging import page
from .pipeline import BODY, CONTEXT, PERMISSIONS, Reply
from .seed import Permission
from .state import State


def _state(request: web.Request) -> State:
    return request.app[CONTEXT].state


def _require(request: web.Request, scope: str, resource_id: str | None = None) -> None:
    State.require(request[PERMISSIONS], scope, resource_id)


async def list_accounts(request: web.Request) -> Reply:
    """
    ``GET /accounts``: every account, or those of one ``type``.
    """
    _require(request, "LIST_ACCOUNTS")
    kind = enum_param(request.query, "type", ACCOUNT_TYPES)
    accounts = _state(request).accounts.values()
    return Reply(200, [a for a in accounts if not kind or a["type"] == kind])


async def get_account(request: web.Request) -> Reply:
    """
    ``GET /accounts/{id}``: one account with its balance.
    """
    account_id = request.match_info["id"]
    _require(request, "READ_ACCOUNTS", account_id)
    return Reply(200, _state(request).account(account_id, with_balance=True))


async def list_rules(request: web.Request) -> Reply:
    """
    ``GET /rules``: rule summaries, or those moving money from ``source_id``.
    """
    _require(request, "LIST_RULES")
    source_id = request.query.get("source_id")
    out = []
    for rule in _state(request).rules.values():
        actions = rule["steps"][0]["actions"] if rule["steps"] else []
        source = actions[0]["source"] if actions else None
        if source_id and (source or {}).get("id") != source_id:
            continue
        out.append(
            {
                "id": rule["id"],
                "nickname": rule.get("nickname"),
                "description": rule.get("description"),
                "status": rule.get("status"),
                "trigger_type": rule["trigger"].get("type"),
                "source": source,
                "created_at": rule.get("created_at"),
                "updated_at": rule.get("updated_at"),
            }
        )
    return Reply(200, out)


async def get_rule(request: web.Request) -> Reply:
    """
    ``GET /rules/{id}``: one rule.
    """
    rule_id = request.match_info["id"]
    _require(request, "READ_RULES", rule_id)
    rule = _state(request).rules.get(rule_id)
    if rule is None:
        raise not_found("Rule", rule_id)
    return Reply(200, rule)


async def trigger_rule(request: web.Request) -> Reply:
    """
    ``POST /rules/{id}/trigger``: start an execution (202).
    """
    rule_id = request.match_info["id"]
    _require(request, "TRIGGER_RULES", rule_id)
    key = request.headers.get("Idempotency-Key")
    started = _state(request).trigger(rule_id, request[BODY], idempotency_key=key)
    return Reply(202, started)


async def list_rule_executions(request: web.Request) -> Reply:
    """
    ``GET /rule-executions?rule_id=``: a page of a rule's visible executions.
    """
    rule_id = required(request.query, "rule_id")
    _require(request, "READ_RULE_EXECUTIONS", rule_id)
    rows = _state(request).list_executions(request.query)
    return Reply(200, *page(rows, request.query))


async def get_rule_execution(request: web.Request) -> Reply:
    """
    ``GET /rule-executions/{id}``: one visible execution.
    """
    execution_id = request.match_info["id"]
    _require(request, "READ_RULE_EXECUTIONS")
    execution = _state(request).visible_execution(execution_id)
    if execution is None:
        raise not_found("Rule execution", execution_id)
    _require(request, "READ_RULE_EXECUTIONS", execution.data["rule_id"])
    return Reply(200, execution.data)


async def list_transfers(request: web.Request) -> Reply:
    """
    ``GET /transfers?account_id=``: a page of an account's transfers.
    """
    account_id = required(request.query, "account_id")
    _require(request, "READ_TRANSFERS", account_id)
    rows = _state(request).ledger.matching(request.query)
    return Reply(200, *page(rows, request.query))


async def get_transfer(request: web.Request) -> Reply:
    """
    ``GET /transfers/{id}``: one transfer the key may read an end of.
    """
    transfer_id = request.match_info["id"]
    _require(request, "READ_TRANSFERS")
    transfer = _state(request).ledger.by_id.get(transfer_id)
    if transfer is None:
        raise not_found("Transfer", transfer_id)
    ends = [(transfer.get(side) or {}).get("id") for side in ("source", "destination")]
    permissions: tuple[Permission, ...] = request[PERMISSIONS]
    if not any(
        p.scope == "READ_TRANSFERS" and p.allows(end)
        for p in permissions
        for end in ends
        if end
    ):
        raise forbidden()
    return Reply(200, transfer)


async def create_transfer(request: web.Request) -> Reply:
    """
    ``POST /transfers``: a manual transfer (201).
    """
    _require(request, "MANUAL_TRANSFER")
    state = _state(request)
    return Reply(201, state.create_transfer(request[PERMISSIONS], request[BODY]))


async def list_cards(request: web.Request) -> Reply:
    """
    ``GET /cards?account_id=``: an account's cards, by ``status`` and ``type``.
    """
    account_id = required(request.query, "account_id")
    _require(request, "READ_CARDS", account_id)
    status = enum_param(request.query, "status", CARD_STATUSES)
    kind = enum_param(request.query, "type", CARD_TYPES)
    cards = [
        c
        for c in _state(request).cards.values()
        if c["account_id"] == account_id
        and (not status or c["status"] == status)
        and (not kind or c["type"] == kind)
    ]
    return Reply(200, cards)


def _card(request: web.Request) -> dict[str, Any]:
    card_id = request.match_info["id"]
    _require(request, "READ_CARDS")
    card = _state(request).cards.get(card_id)
    if card is None:
        raise not_found("Card", card_id)
    _require(request, "READ_CARDS", card["account_id"])
    return card


async def get_card(request: web.Request) -> Reply:
    """
    ``GET /cards/{id}``: one card.
    """
    return Reply(200, _card(request))


async def list_card_transactions(request: web.Request) -> Reply:
    """
    ``GET /cards/{id}/transactions``: a page of a card's transactions.
    """
    card = _card(request)
    rows = _state(request).card_transactions_of(card["id"], request.query)
    return Reply(200, *page(rows, request.query))


ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", "/api/v1/accounts", "list_accounts", list_accounts),
    ("GET", "/api/v1/accounts/{id}", "get_account", get_account),
    ("GET", "/api/v1/rules", "list_rules", list_rules),
    ("GET", "/api/v1/rules/{id}", "get_rule", get_rule),
    ("POST", "/api/v1/rules/{id}/trigger", "trigger_rule", trigger_rule),
    (
        "GET",
        "/api/v1/rule-executions",
        "list_rule_executions",
        list_rule_executions,
    ),
    ("GET", "/api/v1/rule-executions/{id}", "get_rule_execution", get_rule_execution),
    ("GET", "/api/v1/transfers", "list_transfers", list_transfers),
    ("GET", "/api/v1/transfers/{id}", "get_transfer", get_transfer),
    ("POST", "/api/v1/transfers", "create_transfer", create_transfer),
    ("GET", "/api/v1/cards", "list_cards", list_cards),
    ("GET", "/api/v1/cards/{id}", "get_card", get_card),
    (
        "GET",
        "/api/v1/cards/{id}/transactions",
        "list_card_transactions",
        list_card_transactions,
    ),
)
ROUTE_NAMES = tuple(name for _, _, name, _ in ROUTES)
