"""
The fake server's endpoints: one aiohttp handler per route of either API.

Owns ``ROUTES`` (``/api/v1``) and ``PLATFORM_ROUTES`` (``/platform/v1``):
method, path, route name, handler; a route shared by both has one name and
one handler. Each handler checks the key's scope and resource list, reads
the path and query (already in api-v1's names: ``pipeline.QUERY``), asks
``State`` and answers with a ``Reply``, paged by cursor or page number as
the dialect says; the pipeline has already authenticated the key and read
the body, and wraps the reply in its envelope.

May import: ``testing.activity``, ``testing.api``, ``testing.paging``,
``testing.pipeline``, ``testing.state``, ``testing.seed``.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .activity import card_transactions_of, platform_card_transaction
from .api import (
    ACCOUNT_TYPES,
    CARD_STATUSES,
    CARD_TYPES,
    enum_param,
    forbidden,
    invalid,
    invalid_rule,
    not_found,
    required,
)
from .paging import numbered, page
from .pipeline import BODY, CONTEXT, PERMISSIONS, QUERY, Reply
from .seed import Permission
from .state import State


def _state(request: web.Request) -> State:
    return request.app[CONTEXT].state


def _query(request: web.Request) -> dict[str, str]:
    query: dict[str, str] = request[QUERY]
    return query


def _platform(request: web.Request) -> bool:
    return request.app[CONTEXT].dialect.platform


def _require(request: web.Request, scope: str, resource_id: str | None = None) -> None:
    State.require(
        request[PERMISSIONS],
        scope,
        resource_id,
        scope_of=request.app[CONTEXT].dialect.scope,
    )


def _paged(request: web.Request, rows: list[tuple[int, Any]]) -> Reply:
    # A page of a paged list: by cursor, or by page number on Platform.
    query = _query(request)
    return Reply(200, *(numbered if _platform(request) else page)(rows, query))


def _whole(request: web.Request, items: list[Any]) -> Reply:
    # A list api-v1 gives whole; Platform pages every list.
    if _platform(request):
        return Reply(200, *numbered(items, _query(request)))
    return Reply(200, items)


async def list_accounts(request: web.Request) -> Reply:
    """
    ``GET /accounts``: every account, or those of one ``type``.
    """
    _require(request, "LIST_ACCOUNTS")
    kind = enum_param(_query(request), "type", ACCOUNT_TYPES)
    accounts = _state(request).accounts.values()
    return _whole(request, [a for a in accounts if not kind or a["type"] == kind])


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
    source_id = _query(request).get("source_id")
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
                "is_supported": rule.get("is_supported", True),
                "created_at": rule.get("created_at"),
                "updated_at": rule.get("updated_at"),
            }
        )
    return _whole(request, out)


async def get_rule(request: web.Request) -> Reply:
    """
    ``GET /rules/{id}``: one rule.
    """
    rule_id = request.match_info["id"]
    _require(request, "READ_RULES", rule_id)
    rule = _state(request).rules.get(rule_id)
    if rule is None:
        raise not_found("Rule", rule_id)
    if rule.get("is_supported") is False:
        raise invalid_rule(rule_id)
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
    ``GET /rule-executions?rule_id=`` (``/rules/{rule_id}/executions``).

    A page of a rule's visible executions; Platform lists ``LIVE`` ones
    unless ``executionMode`` says otherwise.
    """
    query = _query(request)
    rule_id = request.match_info.get("rule_id") or required(query, "rule_id")
    _require(request, "READ_RULE_EXECUTIONS", rule_id)
    if _platform(request):
        if rule_id not in _state(request).rules:
            raise not_found("Rule", rule_id)
        query = {"execution_mode": "live", **query, "rule_id": rule_id}
    return _paged(request, _state(request).list_executions(query))


async def get_rule_execution(request: web.Request) -> Reply:
    """
    ``GET /rule-executions/{id}``: one visible execution.
    """
    execution_id = request.match_info["id"]
    _require(request, "READ_RULE_EXECUTIONS")
    execution = _state(request).visible_execution(execution_id)
    rule_id = request.match_info.get("rule_id")
    if execution is None or rule_id not in (None, execution.data["rule_id"]):
        raise not_found("Rule execution", execution_id)
    _require(request, "READ_RULE_EXECUTIONS", execution.data["rule_id"])
    return Reply(200, execution.data)


async def list_transfers(request: web.Request) -> Reply:
    """
    ``GET /transfers?account_id=`` (``/accounts/{account_id}/transfers``).

    A page of an account's transfers. Platform's ``GET /transfers`` takes
    ``accountIds[]`` (one or more) instead.
    """
    query = _query(request)
    if "account_id" in request.match_info:
        ids = [request.match_info["account_id"]]
    elif _platform(request):
        ids = request.query.getall("accountIds[]", []) or request.query.getall(
            "accountIds", []
        )
        if not ids:
            raise invalid("accountIds[] is required.")
    else:
        ids = [required(query, "account_id")]
    rows: list[tuple[int, Any]] = []
    for account_id in dict.fromkeys(ids):
        _require(request, "READ_TRANSFERS", account_id)
        rows += _state(request).ledger.matching(query | {"account_id": account_id})
    rows = sorted(dict(rows).items(), reverse=True)
    return _paged(request, rows)


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
    body = request[BODY]
    if _platform(request) and isinstance(body, dict):
        amount = body.get("amount_in_cents")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount < 100:
            raise invalid("amountInCents must be at least 100 ($1.00).")
        label = body.get("description")  # the ACH label: at most 10 of [a-zA-Z0-9 ]
        if isinstance(label, str) and not re.fullmatch(r"[a-zA-Z0-9 ]{0,10}", label):
            raise invalid("description must be at most 10 letters, digits or spaces.")
    return Reply(201, state.create_transfer(request[PERMISSIONS], body))


async def list_cards(request: web.Request) -> Reply:
    """
    ``GET /cards?account_id=``: an account's cards, by ``status`` and ``type``.
    """
    account_id = required(_query(request), "account_id")
    _require(request, "READ_CARDS", account_id)
    status = enum_param(_query(request), "status", CARD_STATUSES)
    kind = enum_param(_query(request), "type", CARD_TYPES)
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
    ``GET /cards/{id}/transactions`` (Platform: ``GET /card-transactions``).

    A page of one card's transactions; Platform's lists those of a pod's
    cards (``accountId``, required), or of one of them (``cardId``).
    """
    state, query = _state(request), _query(request)
    if not _platform(request):
        cards = {_card(request)["id"]}
        return _paged(
            request, card_transactions_of(state.card_transactions, cards, query)
        )
    account_id = required(query, "account_id")
    _require(request, "READ_CARDS", account_id)
    card_id = query.get("card_id")
    account = state.accounts.get(account_id, {})
    cards = {c["id"] for c in state.cards.values() if c["account_id"] == account_id}
    if card_id:
        cards &= {card_id}
    rows = card_transactions_of(state.card_transactions, cards, query)
    return _paged(
        request, [(n, platform_card_transaction(t, account)) for n, t in rows]
    )


async def list_external_transactions(request: web.Request) -> Reply:
    """
    ``GET /external-transactions?accountIds[]=`` (Platform): a page of them.
    """
    ids = request.query.getall("accountIds[]", []) or request.query.getall(
        "accountIds", []
    )
    if not ids:
        raise invalid("accountIds[] is required.")
    for account_id in ids:
        _require(request, "READ_TRANSFERS", account_id)
    rows = _state(request).activity.external_matching(ids, _query(request))
    return _whole(request, rows)


async def list_audit_logs(request: web.Request) -> Reply:
    """
    ``GET /audit-logs`` (Platform): a page of the audit log, newest first.
    """
    _require(request, "READ_AUDIT_LOGS")
    return _whole(request, _state(request).activity.audit_matching(_query(request)))


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
_P = "/platform/v1"
PLATFORM_ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", f"{_P}/accounts", "list_accounts", list_accounts),
    ("GET", f"{_P}/accounts/{{id}}", "get_account", get_account),
    (
        "GET",
        f"{_P}/accounts/{{account_id}}/transfers",
        "list_account_transfers",
        list_transfers,
    ),
    ("GET", f"{_P}/rules", "list_rules", list_rules),
    ("GET", f"{_P}/rules/{{id}}", "get_rule", get_rule),
    ("POST", f"{_P}/rules/{{id}}/trigger", "trigger_rule", trigger_rule),
    (
        "GET",
        f"{_P}/rules/{{rule_id}}/executions",
        "list_rule_executions",
        list_rule_executions,
    ),
    (
        "GET",
        f"{_P}/rules/{{rule_id}}/executions/{{id}}",
        "get_rule_execution",
        get_rule_execution,
    ),
    ("GET", f"{_P}/transfers", "list_transfers", list_transfers),
    ("GET", f"{_P}/transfers/{{id}}", "get_transfer", get_transfer),
    ("POST", f"{_P}/transfers", "create_transfer", create_transfer),
    (
        "GET",
        f"{_P}/external-transactions",
        "list_external_transactions",
        list_external_transactions,
    ),
    (
        "GET",
        f"{_P}/card-transactions",
        "list_card_transactions",
        list_card_transactions,
    ),
    ("GET", f"{_P}/audit-logs", "list_audit_logs", list_audit_logs),
)
ROUTE_NAMES = tuple(
    dict.fromkeys(name for _, _, name, _ in (*ROUTES, *PLATFORM_ROUTES))
)
