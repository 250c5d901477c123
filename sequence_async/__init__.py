"""
sequence-async: an asyncio SDK for the Sequence money-automation API.

The whole public API is re-exported here; everything else is private.
"""

from ._activity import AuditLogs, CardTransactions, ExternalTransactions
from ._bulk import BulkRun
from ._checks import MAX_CENTS
from ._client import SequenceClient
from ._coordinator import Coordinator
from ._execution import Execution
from ._journal import ItemState, Journal, JournalEntry
from ._journal_file import JournalSummary, read_journal
from ._observe import (
    RawResponse,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    capture_responses,
)
from ._outcomes import BulkProgress, InFlightItem, TriggerOutcome, TriggerRequest
from ._paging import Paginator
from ._resources import Accounts, Cards
from ._retry import PollPolicy, RetryPolicy
from ._rules import RuleExecutions, Rules
from ._sqlite_journal import SqliteJournal
from ._transfers import Transfers
from ._wire import VERSION as _VERSION
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    EventLoopError,
    ExecutionFailedError,
    JournalError,
    NeedsReviewError,
    NotFoundError,
    NotStartedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    RecordedError,
    ResponseTooLargeError,
    ResponseValidationError,
    SequenceError,
    ServerError,
    UnsupportedFeatureError,
    WaitTimeoutError,
)
from .models import (
    Account,
    AccountRef,
    AccountType,
    AuditLogEntry,
    Balance,
    Card,
    CardTransaction,
    ExecutionMode,
    ExecutionStatus,
    ExternalTransaction,
    Page,
    PageInfo,
    Rule,
    RuleExecution,
    RuleStatus,
    RuleStep,
    RuleSummary,
    RuleTrigger,
    Transfer,
    TransferDirection,
    TransferOrigin,
    TransferStatus,
)


__version__ = _VERSION

__all__ = [
    "MAX_CENTS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AccountRef",
    "AccountType",
    "Accounts",
    "AuditLogEntry",
    "AuditLogs",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BulkProgress",
    "BulkRun",
    "Card",
    "CardTransaction",
    "CardTransactions",
    "Cards",
    "ClientClosedError",
    "ConflictError",
    "Coordinator",
    "EventLoopError",
    "Execution",
    "ExecutionFailedError",
    "ExecutionMode",
    "ExecutionStatus",
    "ExternalTransaction",
    "ExternalTransactions",
    "InFlightItem",
    "ItemState",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalSummary",
    "NeedsReviewError",
    "NotFoundError",
    "NotStartedError",
    "OutcomeUnknownError",
    "Page",
    "PageInfo",
    "Paginator",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "RawResponse",
    "RecordedError",
    "RequestEvent",
    "ResponseEvent",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryEvent",
    "RetryPolicy",
    "Rule",
    "RuleExecution",
    "RuleExecutions",
    "RuleStatus",
    "RuleStep",
    "RuleSummary",
    "RuleTrigger",
    "Rules",
    "SequenceClient",
    "SequenceError",
    "ServerError",
    "SqliteJournal",
    "Transfer",
    "TransferDirection",
    "TransferOrigin",
    "TransferStatus",
    "Transfers",
    "TriggerOutcome",
    "TriggerRequest",
    "UnsupportedFeatureError",
    "WaitTimeoutError",
    "__version__",
    "capture_responses",
    "read_journal",
]
