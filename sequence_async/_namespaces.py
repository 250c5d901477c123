"""
The client's resource namespaces: ``client.accounts``, ``client.rules``, ...

Owns ``Namespaces``, the base of ``SequenceClient`` that makes one namespace
per API area over the client's (or view's) ``Requester`` and shows each as a
documented property (so they appear in ``help()`` and ``dir()``).
"""

from __future__ import annotations

from ._activity import AuditLogs, CardTransactions, ExternalTransactions
from ._requester import Requester
from ._resources import Accounts, Cards
from ._rules import RuleExecutions, Rules
from ._transfers import Transfers


class Namespaces:
    """
    The resource namespaces of a client or view.
    """

    def _mount(self, requester: Requester) -> None:
        self._accounts = Accounts(requester)
        self._rules = Rules(requester)
        self._rule_executions = RuleExecutions(requester)
        self._transfers = Transfers(requester)
        self._cards = Cards(requester)
        self._external_transactions = ExternalTransactions(requester)
        self._card_transactions = CardTransactions(requester)
        self._audit_logs = AuditLogs(requester)

    @property
    def accounts(self) -> Accounts:
        """
        ``/accounts``: income sources, pods and external accounts.
        """
        return self._accounts

    @property
    def rules(self) -> Rules:
        """
        ``/rules``: read rules and trigger them.
        """
        return self._rules

    @property
    def rule_executions(self) -> RuleExecutions:
        """
        ``/rule-executions``: the history and state of rule runs.
        """
        return self._rule_executions

    @property
    def transfers(self) -> Transfers:
        """
        ``/transfers``: money movements, and manual transfers.
        """
        return self._transfers

    @property
    def cards(self) -> Cards:
        """
        ``/cards`` (experimental, "coming soon" in Sequence's docs; api-v1 only).
        """
        return self._cards

    @property
    def external_transactions(self) -> ExternalTransactions:
        """
        ``/external-transactions`` (platform-v1 only).
        """
        return self._external_transactions

    @property
    def card_transactions(self) -> CardTransactions:
        """
        ``/card-transactions`` (experimental; platform-v1 only).
        """
        return self._card_transactions

    @property
    def audit_logs(self) -> AuditLogs:
        """
        ``/audit-logs`` (platform-v1 only).
        """
        return self._audit_logs
