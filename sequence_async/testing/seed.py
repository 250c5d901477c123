"""
Seed data for the fake server: accounts, rules, cards and API keys.

Owns the builder users write their fixtures with and the JSON form of a seed
(``sequence-async serve --seed FILE``), checked on reading so the server can
serve every record. Everything is plain wire-shaped data, checked against the
API reference, not against the client's models.

May import: nothing from the package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs


ALL_SCOPES = (
    "LIST_ACCOUNTS",
    "READ_ACCOUNTS",
    "LIST_RULES",
    "READ_RULES",
    "TRIGGER_RULES",
    "READ_RULE_EXECUTIONS",
    "READ_TRANSFERS",
    "MANUAL_TRANSFER",
    "READ_CARDS",
    "READ_AUDIT_LOGS",
)
DEMO_API_KEY = "sk_demo_fake_sequence_key"
_TS = "2024-01-15T10:00:00Z"


def seconds(_: object, field: attrs.Attribute[float], value: object) -> None:
    """
    An attrs validator: a finite number of seconds, 0 or more.
    """
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{field.name} must be a finite number >= 0, not {value!r}")


def rate(_: object, field: attrs.Attribute[float], value: object) -> None:
    """
    An attrs validator: a rate from 0 to 1.
    """
    if not (isinstance(value, int | float) and 0 <= value <= 1):
        raise ValueError(f"{field.name} must be from 0 to 1, not {value!r}")


@attrs.frozen(kw_only=True)
class Behavior:
    """
    How a rule's executions play out on the fake server.

    Durations are log-normal: ``median`` seconds, spread ``sigma`` (0 gives
    exactly ``median``). Outcomes are drawn with the given rates; the rest
    end ``executed``.

    Raises:
        ValueError: A negative or non-finite time, or a rate outside 0..1.
    """

    median: float = attrs.field(default=2.0, validator=seconds)
    sigma: float = attrs.field(default=0.5, validator=seconds)
    failure_rate: float = attrs.field(default=0.0, validator=rate)
    partial_rate: float = attrs.field(default=0.0, validator=rate)


@attrs.frozen(kw_only=True)
class Permission:
    """
    One permission entry of an API key.

    ``resources`` is ``"*"`` or a list of ids; ``transfers`` holds the
    ``{source, target, max_amount?}`` sets of ``MANUAL_TRANSFER``.
    """

    scope: str
    resources: str | tuple[str, ...] = "*"
    transfers: tuple[Mapping[str, Any], ...] = ()

    def allows(self, resource_id: str | None) -> bool:
        """
        Whether the entry covers *resource_id* (``None``: the scope alone).
        """
        return (
            resource_id is None
            or self.resources == "*"
            or resource_id in self.resources
        )


@attrs.define
class Seed:
    """
    A builder of the fake server's starting data.
    """

    accounts: list[dict[str, Any]] = attrs.Factory(list)
    rules: list[dict[str, Any]] = attrs.Factory(list)
    cards: list[dict[str, Any]] = attrs.Factory(list)
    card_transactions: list[dict[str, Any]] = attrs.Factory(list)
    keys: dict[str, tuple[Permission, ...]] = attrs.Factory(dict)
    behaviors: dict[str, Behavior] = attrs.Factory(dict)
    balances: dict[str, int] = attrs.Factory(dict)

    def account(
        self,
        name: str,
        *,
        type: str = "pod",
        id: str | None = None,
        balance: int | None = 1_000_000,
        institution_name: str | None = None,
    ) -> str:
        """
        Add an account (``income_source``, ``pod`` or ``external_account``).
        """
        account_id = id or f"acc_{len(self.accounts) + 1:04d}"
        self.accounts.append(
            {
                "id": account_id,
                "name": name,
                "type": type,
                "description": None,
                "external_account_type": "DEPOSITORY"
                if type == "external_account"
                else None,
                "beneficiary_name": "Demo User",
                "institution_name": institution_name or "Sequence",
                "can_be_source": True,
                "can_be_destination": True,
                "account_number_mask": "••" + account_id[-4:],
                "routing_number_mask": "••0021",
                "created_at": _TS,
                "updated_at": _TS,
            }
        )
        if balance is not None:
            self.balances[account_id] = balance
        return account_id

    def rule(
        self,
        nickname: str,
        *,
        source: str,
        destinations: Sequence[tuple[str, int]],
        trigger: str = "MANUAL",
        id: str | None = None,
        status: str = "enabled",
        behavior: Behavior | None = None,
        supported: bool = True,
    ) -> str:
        """
        Add a rule moving fixed amounts (cents) from *source* to each destination.

        *trigger* is ``MANUAL``, ``ON_FUNDS_TRANSFERRED`` or ``SCHEDULED``. A
        rule not *supported* by the API is listed with ``is_supported: false``;
        getting or triggering it answers 403 ``invalid_rule`` (Platform:
        ``INVALID_RULE``).
        """
        rule_id = id or f"rule_{len(self.rules) + 1:04d}"
        names = {a["id"]: a for a in self.accounts}
        trigger_body: dict[str, Any] = {"type": trigger, "account_id": source}
        if trigger == "SCHEDULED":
            trigger_body |= {"schedule_type": "MONTHLY", "start_date": _TS}
        self.rules.append(
            {
                "id": rule_id,
                "nickname": nickname,
                "description": f"{nickname} (fake server)",
                "status": status,
                "trigger": trigger_body,
                "steps": [
                    {
                        "conditions": None,
                        "actions": [
                            {
                                "type": "FIXED",
                                "amount_in_cents": amount,
                                "source": _ref(names, source),
                                "destination": _ref(names, dest),
                                "group_index": 0,
                                "up_to_enabled": False,
                                "is_direct_deposit": False,
                                "limit": None,
                            }
                            for dest, amount in destinations
                        ],
                    }
                ],
                "created_at": _TS,
                "updated_at": _TS,
            }
        )
        if not supported:
            self.rules[-1]["is_supported"] = False
        if behavior is not None:
            self.behaviors[rule_id] = behavior
        return rule_id

    def card(
        self, account_id: str, *, id: str | None = None, transactions: int = 3
    ) -> str:
        """
        Add a debit card on *account_id* with a few transactions.
        """
        card_id = id or f"card_{len(self.cards) + 1:04d}"
        self.cards.append(
            {
                "id": card_id,
                "type": "physical",
                "status": "active",
                "last_four": f"{4242 + len(self.cards):04d}",
                "holder_name": "Demo User",
                "expiration_date": "09/28",
                "account_id": account_id,
                "created_at": _TS,
            }
        )
        for n in range(transactions):
            self.card_transactions.append(
                {
                    "id": f"ctx_{card_id[5:]}_{n + 1:03d}",
                    "card_id": card_id,
                    "direction": "credit" if n % 5 == 4 else "debit",
                    "amount_in_cents": 1_000 + 250 * n,
                    "description": f"Merchant {n + 1}",
                    "status": "complete",
                    "created_at": f"2024-02-{n % 28 + 1:02d}T12:00:00Z",
                }
            )
        return card_id

    def api_key(self, key: str, permissions: Iterable[Permission] | None = None) -> str:
        """
        Add an API key; with no permissions given it may do everything.
        """
        self.keys[key] = (
            tuple(permissions) if permissions is not None else self.full_access()
        )
        return key

    def full_access(self) -> tuple[Permission, ...]:
        """
        Every scope on every resource, and manual transfers between any pair.
        """
        ids = [a["id"] for a in self.accounts]
        pairs = tuple({"source": s, "target": t} for s in ids for t in ids if s != t)
        return tuple(
            Permission(scope=s, transfers=pairs if s == "MANUAL_TRANSFER" else ())
            for s in ALL_SCOPES
        )

    def to_json(self) -> str:
        """
        Return the seed as JSON (the format ``--seed FILE`` reads).
        """
        return json.dumps(
            {
                "accounts": self.accounts,
                "rules": self.rules,
                "cards": self.cards,
                "card_transactions": self.card_transactions,
                "balances": self.balances,
                "behaviors": {k: attrs.asdict(v) for k, v in self.behaviors.items()},
                "keys": {
                    k: [attrs.asdict(p) for p in perms]
                    for k, perms in self.keys.items()
                },
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Seed:
        """
        Read a seed from its JSON form.

        Raises:
            ValueError: The JSON does not describe a seed.
        """
        try:
            raw = json.loads(text)
            _check_fields(raw)
            seed = cls(
                accounts=list(raw.get("accounts", [])),
                rules=list(raw.get("rules", [])),
                cards=list(raw.get("cards", [])),
                card_transactions=list(raw.get("card_transactions", [])),
                balances=dict(raw.get("balances", {})),
                behaviors={
                    k: Behavior(**v) for k, v in raw.get("behaviors", {}).items()
                },
                keys={
                    k: tuple(
                        Permission(
                            scope=p["scope"],
                            resources=p.get("resources", "*")
                            if p.get("resources", "*") == "*"
                            else tuple(p["resources"]),
                            transfers=tuple(p.get("transfers", ())),
                        )
                        for p in perms
                    )
                    for k, perms in raw.get("keys", {}).items()
                },
            )
            _check_records(seed)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a fake-server seed: {exc}") from None
        except RecursionError:  # nested past the stack (JSON or its checks)
            raise ValueError("not a fake-server seed: nested too deep") from None
        return seed

    @classmethod
    def load(cls, path: str | Path) -> Seed:
        """
        Read a seed from a JSON file.
        """
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


# The fields the server reads from each kind of record, and their types.
_SHAPES: dict[str, dict[str, type]] = {
    "accounts": {"id": str, "type": str},
    "rules": {"id": str, "status": str, "trigger": dict, "steps": list},
    "cards": {"id": str, "account_id": str, "status": str, "type": str},
    "card_transactions": {"id": str, "card_id": str, "direction": str},
}


def _check_fields(raw: Any) -> None:
    # A misspelt field would be an empty one, silently.
    fields = attrs.fields_dict(Seed)  # (those of the JSON form, to_json)
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ValueError(f"unknown fields {unknown[:5]}; a seed has {sorted(fields)}")


def _check_records(seed: Seed) -> None:
    """
    Raise TypeError or ValueError unless the server can read every record.
    """
    for kind, shape in _SHAPES.items():
        for n, record in enumerate(getattr(seed, kind)):
            for name, kind_of in shape.items():
                if not isinstance(record, dict) or not isinstance(
                    record.get(name), kind_of
                ):
                    raise TypeError(f"{kind}[{n}] needs a {kind_of.__name__} {name}")
    for rule in seed.rules:
        for step in rule["steps"]:
            actions = step.get("actions") if isinstance(step, dict) else None
            if not isinstance(actions, list) or not all(map(_is_action, actions)):
                raise TypeError(f"rule {rule['id']}: a step needs a list of actions")
    for transaction in seed.card_transactions:
        datetime.fromisoformat(str(transaction.get("created_at")))
    for key in seed.keys:  # what an Authorization header can carry
        if not key or " " in key or not (key.isascii() and key.isprintable()):
            raise ValueError("every key must be printable ASCII, without spaces")
    for permissions in seed.keys.values():
        for entry in (t for p in permissions for t in p.transfers):
            if not isinstance(entry, dict) or not isinstance(
                entry.get("max_amount", 0), int | None
            ):
                raise TypeError(f"bad MANUAL_TRANSFER entry: {entry!r}")


def _is_action(action: Any) -> bool:
    return (
        isinstance(action, dict)
        and isinstance(action.get("amount_in_cents", 0), int)
        and "source" in action
        and all(
            isinstance(action.get(end), dict | None)
            for end in ("source", "destination")
        )
    )


def _ref(accounts: Mapping[str, Mapping[str, Any]], account_id: str) -> dict[str, Any]:
    account = accounts.get(account_id, {})
    return {"id": account_id, "type": account.get("type"), "name": account.get("name")}
