"""
The exception tree of sequence-async.

A leaf module: it imports nothing from the package, so every other module may
import it without a cycle.

::

    SequenceError
    ├── APIConnectionError          could not talk to the server (DNS, connect, reset)
    │   └── APITimeoutError         an attempt ran past its timeout
    ├── APIStatusError              the server answered with an error status
    │   ├── BadRequestError         400, 422
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409
    │   ├── RateLimitError          429 (.retry_after)
    │   └── ServerError             5xx
    ├── ResponseValidationError     a body that does not parse, or a redirect
    │   └── ResponseTooLargeError   a body over ``max_response_bytes``
    ├── OutcomeUnknownError         a POST whose retries ran out: money may have moved
    ├── ExecutionFailedError        a rule execution ended ``failed``
    ├── WaitTimeoutError            a wait hit its deadline (carries the handle)
    ├── NotStartedError             a bulk item skipped after max_failures
    ├── NeedsReviewError            a journalled item no one can settle but a person
    ├── RecordedError               an item's error, as a journal recorded it
    ├── JournalError                a journal file that cannot be used
    ├── UnsupportedFeatureError     a feature the client's API lacks (a ValueError)
    ├── ClientClosedError           the client was used after ``aclose()``
    └── EventLoopError              the client was used from another event loop

Every error pickles (to cross a ``ProcessPoolExecutor``) with its attributes,
and none holds the API key: a ``WaitTimeoutError``'s handle pickles without
its client (wait on it again through ``client.execution_from_token``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from ._execution import Execution
    from .models import RuleExecution


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "EventLoopError",
    "ExecutionFailedError",
    "JournalError",
    "NeedsReviewError",
    "NotFoundError",
    "NotStartedError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecordedError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "SequenceError",
    "ServerError",
    "UnsupportedFeatureError",
    "WaitTimeoutError",
]


def _rebuild(
    cls: type[SequenceError], args: tuple[Any, ...], state: dict[str, Any]
) -> SequenceError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class SequenceError(Exception):
    """
    Base class of every error this package raises on purpose.

    Attributes:
        execution: The handle of an execution that did start, when this
            error ended its wait (``WaitTimeoutError``, or any error of
            ``trigger_and_wait`` once its trigger was accepted); wait on it
            again rather than trigger again. ``None`` otherwise.
    """

    execution: Execution | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        """
        Pickle from the message and the attributes (not ``cls(*args)``).
        """
        # The default reduce calls cls(*args), which keyword-only arguments
        # break, so errors crossing a process pool broke the pool.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class APIConnectionError(SequenceError):
    """
    The request did not get an HTTP answer (DNS, refused, reset, TLS).

    Attributes:
        request_id: The request's ``X-Request-ID``.
        sent: ``False`` when the request surely never reached the server (no
            connection could be made); ``True`` when it may have.
    """

    def __init__(
        self, message: str, *, request_id: str | None = None, sent: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.sent = sent


class APITimeoutError(APIConnectionError):
    """
    One attempt ran past the client's per-attempt timeout.
    """


class APIStatusError(SequenceError):
    """
    The server answered with a status of 400 or more.

    Attributes:
        status: The HTTP status.
        code: The envelope's ``error.code``, or ``None`` for a body that is
            not the envelope.
        message: The envelope's message, or the first 200 characters of the
            body.
        request_id: The request id (the server's echo when it sent one).
        idempotency_key: The idempotency key of a mutating request.
        retry_after: The server's ``Retry-After`` in seconds (capped at a
            minute), on a 429 or a 503 that sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code or 'error'}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """
    400 or 422: the request was malformed or failed validation.
    """


class AuthenticationError(APIStatusError):
    """
    401: the API key is missing or not valid.
    """


class PermissionDeniedError(APIStatusError):
    """
    403: the key lacks the scope, or the resource is outside its list.
    """


class NotFoundError(APIStatusError):
    """
    404: no such resource.
    """


class ConflictError(APIStatusError):
    """
    409: a request with the same idempotency key is still running.
    """


class RateLimitError(APIStatusError):
    """
    429: too many requests; ``retry_after`` is the server's hint in seconds.
    """


class ServerError(APIStatusError):
    """
    5xx: the server failed.
    """


class ResponseValidationError(SequenceError):
    """
    A response whose body is not what the API documents.

    Also raised for a body larger than the client's ``max_response_bytes``
    (``ResponseTooLargeError``) and for a redirect, which an API client never
    follows.
    """

    def __init__(
        self, message: str, *, status: int = 0, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id


class ResponseTooLargeError(ResponseValidationError):
    """
    The answer's body (decompressed) passed the client's ``max_response_bytes``.
    """


class OutcomeUnknownError(SequenceError):
    """
    A mutating request may have been carried out, but no answer tells how.

    Raised when an attempt may have reached the server and the call then
    ended without a usable answer: retries ran out on network or server
    errors, the answer was unreadable, or the client was closed meanwhile.
    Money may have moved. Send the same request again with
    ``idempotency_key`` to learn the outcome without moving money twice; the
    cause is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, idempotency_key: str) -> None:
        super().__init__(f"{message} (retry with idempotency_key={idempotency_key!r})")
        self.idempotency_key = idempotency_key


class ExecutionFailedError(SequenceError):
    """
    A rule execution ended with status ``failed``; ``result`` holds it.
    """

    def __init__(self, result: RuleExecution) -> None:
        message = result.error_message  # whole in `result`; cut here
        reason = f": {message[:200]}" if message else ""
        super().__init__(f"rule execution {result.id} failed{reason}")
        self.result = result


class WaitTimeoutError(SequenceError):
    """
    A wait reached its deadline; the execution itself goes on.

    ``execution`` is the handle to wait on again (or ``to_token()`` it), and
    ``last_status`` the last status seen, if any.
    """

    execution: Execution

    def __init__(
        self,
        execution: Execution,
        *,
        timeout: float,
        last_status: str | None,
        failure: Exception | None = None,
    ) -> None:
        # (*failure*: why the last look found nothing, a server not reached)
        why = "" if failure is None else f"; the last look failed: {_said(failure)}"
        super().__init__(
            f"execution {execution.id} not finished after {timeout:g}s "
            f"(last status: {last_status or 'not seen yet'}{why}); it was not "
            "cancelled"
        )
        self.execution = execution
        self.timeout = timeout
        self.last_status = last_status


class NotStartedError(SequenceError):
    """
    A ``trigger_many`` item that was not sent because ``max_failures`` was hit.
    """


class NeedsReviewError(SequenceError):
    """
    A journalled item sent too long ago to send again, and not matched.

    Sequence forgets idempotency keys after 24 hours, so an item whose send
    may or may not have run more than 23 hours ago is never sent again
    blindly: a person checks ``rule_id`` around ``sent_at`` and decides.
    """

    def __init__(
        self, message: str, *, idempotency_key: str, rule_id: str, sent_at: float
    ) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.rule_id = rule_id
        self.sent_at = sent_at


class RecordedError(SequenceError):
    """
    An item's error as a journal recorded it (a resumed run replays it).

    ``error_type`` is the original exception's class name.
    """

    def __init__(self, message: str, *, error_type: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class JournalError(SequenceError):
    """
    A journal that cannot be used: not a journal, in use, or not writable.
    """


class UnsupportedFeatureError(SequenceError, ValueError):
    """
    A feature the client's API surface does not have; nothing was sent.

    ``api`` names the client's surface (``"api-v1"`` or ``"platform-v1"``).
    """

    def __init__(self, message: str, *, api: str) -> None:
        super().__init__(message)
        self.api = api


class ClientClosedError(SequenceError, RuntimeError):
    """
    The client was used after ``aclose()``, or closed while a wait was pending.
    """


class EventLoopError(SequenceError, RuntimeError):
    """
    The client was used from an event loop other than the one it first ran on.

    A ``SequenceClient`` belongs to one event loop (one ``asyncio.run()``):
    make a new client in each.
    """


def _said(error: Exception) -> str:
    # An error as one line: its type, and its message if it has one.
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
