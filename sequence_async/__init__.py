"""
sequence-async: an asyncio SDK for the Sequence money-automation API.

The whole public API is re-exported here; everything else is private.
"""

from ._bulk import BulkProgress, BulkRun, TriggerOutcome, TriggerRequest
from ._client import SequenceClient
from ._execution import Execution
from ._retry import PollPolicy
from ._wire import VERSION
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    ExecutionFailedError,
    NotFoundError,
    NotStartedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    SequenceError,
    ServerError,
    WaitTimeoutError,
)
from .models import (
    Account,
    AccountRef,
    AccountType,
    Balance,
    Card,
    CardTransaction,
    ExecutionStatus,
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
    TransferStatus,
)


__version__ = VERSION

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AccountRef",
    "AccountType",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BulkProgress",
    "BulkRun",
    "Card",
    "CardTransaction",
    "ClientClosedError",
    "ConflictError",
    "Execution",
    "ExecutionFailedError",
    "ExecutionStatus",
    "NotFoundError",
    "NotStartedError",
    "OutcomeUnknownError",
    "Page",
    "PageInfo",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "ResponseValidationError",
    "Rule",
    "RuleExecution",
    "RuleStatus",
    "RuleStep",
    "RuleSummary",
    "RuleTrigger",
    "SequenceClient",
    "SequenceError",
    "ServerError",
    "Transfer",
    "TransferDirection",
    "TransferStatus",
    "TriggerOutcome",
    "TriggerRequest",
    "WaitTimeoutError",
    "__version__",
]
