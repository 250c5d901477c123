"""
Answers that echo the key, run long, or are unusable after money moved.

Found by attacking the Platform and observability paths: a transfer's 2xx
whose body is unusable, the key echoed inside an execution's fields, huge
unknown statuses, and a 5xx whose body names an authorisation code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sequence_async import (
    ExecutionFailedError,
    OutcomeUnknownError,
    ResponseValidationError,
    ServerError,
    _convert,
    _wire,
    models,
)
from sequence_async._profiles import PROFILES
from sequence_async._secret import Secret
from sequence_async._transfers import Transfers
from sequence_async._wire import Response

from .conftest import API_KEY, FakeTransport, ok, requester, status


@pytest.mark.parametrize(
    "answer",
    [
        status(201, b""),
        ok(None, 201),
        ok({}, 201),
        ok({"id": 5, "amount_in_cents": 500}, 201),
        ok({"id": "t1", "amount_in_cents": "500"}, 201),
    ],
)
async def test_a_transfer_whose_2xx_is_unusable_keeps_its_key(answer: Response) -> None:
    """The server acted: OutcomeUnknownError with the key, never 'nothing ran'."""
    transfers = Transfers(requester(FakeTransport(answer)))

    with pytest.raises(OutcomeUnknownError) as raised:
        await transfers.create(
            source_account_id="acc_1",
            destination_account_id="acc_2",
            amount_in_cents=500,
            idempotency_key="pay-7",
        )

    assert "pay-7" == raised.value.idempotency_key


def test_a_key_echoed_in_a_success_body_reaches_no_field() -> None:
    """Redacted before the body is read: no model, message, log or span holds it."""
    secret = Secret(PROFILES["api-v1"].authorization(API_KEY))
    body = {
        "id": "rex_1",
        "status": "failed",
        "error_message": f"denied for ApiKey {API_KEY}",
    }
    response = Response(200, {}, json.dumps({"data": body}).encode())

    envelope = _wire.decode_response(response, request_id="r", secret=secret)

    assert API_KEY not in json.dumps(envelope.data)
    assert "denied for ApiKey <redacted>" == envelope.data["error_message"]


@pytest.mark.parametrize("unknown", ["x" * 65, "settling\x1b[2J", "a\nb"])
def test_an_unknown_status_must_be_a_name(unknown: str) -> None:
    """A status this version does not know is kept only if it is a short name."""
    execution = {"id": "rex_1", "status": unknown}

    with pytest.raises(ResponseValidationError, match="status"):
        _convert.structure(execution, models.RuleExecution)
    kept = _convert.structure(
        {"id": "rex_1", "status": "settling"}, models.RuleExecution
    )
    assert "settling" == kept.status


def test_a_failed_executions_error_message_is_cut_in_the_errors_text() -> None:
    """The whole message stays on `result`; the error's own text is short."""
    result = _convert.structure(
        {"id": "rex_1", "status": "failed", "error_message": "boom " * 10_000},
        models.RuleExecution,
    )

    error = ExecutionFailedError(result)

    assert len(str(error)) < 300
    assert result.error_message == error.result.error_message


@pytest.mark.parametrize("code", ["ACCESS_DENIED", "UNAUTHORIZED", "INVALID_RULE"])
def test_a_5xx_is_a_server_error_whatever_code_its_body_names(code: str) -> None:
    """A 500 saying ACCESS_DENIED is retried and never ends a wait as a 403 would."""
    body = {"requestId": "r", "error": {"code": code, "message": "m"}}
    response = Response(500, {}, json.dumps(body).encode())

    error = _wire.error_for(
        response,
        request_id="r",
        idempotency_key=None,
        now=datetime.now(UTC),
        profile=PROFILES["platform-v1"],
    )

    assert type(error) is ServerError
    assert 500 == error.status
