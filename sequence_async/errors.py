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
    ├── ResponseValidationError     a 2xx body that does not parse
    ├── OutcomeUnknownError         a POST whose retries ran out: money may have moved
    ├── ExecutionFailedError        a rule execution ended ``failed``
    ├── WaitTimeoutError            a wait hit its deadline (carries the handle)
    ├── NotStartedError             a bulk item skipped after max_failures
    └── ClientClosedError           the client was used after ``aclose()``

May import: nothing from the package.
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
    "ExecutionFailedError",
    "NotFoundError",
    "NotStartedError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "SequenceError",
    "ServerError",
    "WaitTimeoutError",
]


class SequenceError(Exception):
    """
    Base class of every error this package raises on purpose.
    """


class APIConnectionError(SequenceError):
    """
    The request did not get an HTTP answer (DNS, refused, reset, TLS).
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


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
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code or 'error'}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.idempotency_key = idempotency_key


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

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """
    5xx: the server failed.
    """


class ResponseValidationError(SequenceError):
    """
    A successful response whose body is not what the API documents.
    """

    def __init__(
        self, message: str, *, status: int = 0, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id


class OutcomeUnknownError(SequenceError):
    """
    A mutating request's retries ran out on network or server errors.

    The server may have acted on it: money may have moved. Send the same
    request again with ``idempotency_key`` to learn the outcome without moving
    money twice.
    """

    def __init__(self, message: str, *, idempotency_key: str) -> None:
        super().__init__(f"{message} (retry with idempotency_key={idempotency_key!r})")
        self.idempotency_key = idempotency_key


class ExecutionFailedError(SequenceError):
    """
    A rule execution ended with status ``failed``; ``result`` holds it.
    """

    def __init__(self, result: RuleExecution) -> None:
        reason = f": {result.error_message}" if result.error_message else ""
        super().__init__(f"rule execution {result.id} failed{reason}")
        self.result = result


class WaitTimeoutError(SequenceError):
    """
    A wait reached its deadline; the execution itself goes on.

    ``execution`` is the handle to wait on again (or ``to_token()`` it), and
    ``last_status`` the last status seen, if any.
    """

    def __init__(
        self, execution: Execution, *, timeout: float, last_status: str | None
    ) -> None:
        super().__init__(
            f"execution {execution.id} not finished after {timeout:g}s "
            f"(last status: {last_status or 'not seen yet'}); it was not cancelled"
        )
        self.execution = execution
        self.timeout = timeout
        self.last_status = last_status


class NotStartedError(SequenceError):
    """
    A ``trigger_many`` item that was not sent because ``max_failures`` was hit.
    """


class ClientClosedError(SequenceError, RuntimeError):
    """
    The client was used after ``aclose()``, or closed while a wait was pending.
    """
