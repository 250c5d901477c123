"""
What the SDK lets operators see: hooks, raw answers, logs, OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import attrs
import pytest
import pytest_asyncio
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from sequence_async import (
    APIConnectionError,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    SequenceClient,
    capture_responses,
)
from sequence_async.testing import Behavior, FakeSequence

from .conftest import FAST_POLL, NO_WAIT_RETRIES
from .redis_server import free_port


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider writing to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def metrics() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    """A meter provider read from memory."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


@pytest_asyncio.fixture
async def traced(
    server: FakeSequence,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    metrics: tuple[MeterProvider, InMemoryMetricReader],
) -> AsyncIterator[SequenceClient]:
    """A client of the fake server recording spans and metrics in memory."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    async with SequenceClient(
        server.api_key,
        base_url=server.url,
        poll=FAST_POLL,
        retry=NO_WAIT_RETRIES,
        tracer_provider=spans[0],
        meter_provider=metrics[0],
    ) as client:
        yield client


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans called *name*."""
    return [s for s in exporter.get_finished_spans() if s.name == name]


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every metric's data points, by metric name."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_hooks_see_requests_answers_and_retries(server: FakeSequence) -> None:
    """Sync and async hooks get typed events; Authorization is redacted."""
    seen: list[object] = []

    async def later(event: object) -> None:
        seen.append(event)

    server.set_faults("list_rules", errors_next=1)
    hooks: dict[str, list[Callable[[Any], object]]] = {
        "request": [seen.append],
        "response": [later],
        "retry": [seen.append],
    }
    async with SequenceClient(
        server.api_key, base_url=server.url, retry=NO_WAIT_RETRIES, event_hooks=hooks
    ) as client:
        await client.rules.list()

    kinds = [type(e).__name__ for e in seen]
    first = seen[0]
    assert [
        "RequestEvent",
        "ResponseEvent",
        "RetryEvent",
        "RequestEvent",
        "ResponseEvent",
    ] == kinds
    assert isinstance(first, RequestEvent)
    assert ("rules.list", "GET", "/rules", 1) == (
        first.operation,
        first.method,
        first.path,
        first.attempt,
    )
    assert "<redacted>" == first.headers["Authorization"]
    assert [503, 200] == [e.status for e in seen if isinstance(e, ResponseEvent)]
    assert isinstance(seen[2], RetryEvent)


async def test_a_raising_hook_is_logged_and_never_breaks_the_request(
    server: FakeSequence, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged at ERROR; the call still succeeds."""

    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    async with SequenceClient(
        server.api_key, base_url=server.url, event_hooks={"response": [broken]}
    ) as client:
        rules = await client.rules.list()

    assert rules
    assert any("hook raised" in r.getMessage() for r in caplog.records)


def test_unknown_hook_kinds_are_refused() -> None:
    """A misspelt hook kind is a ValueError at construction."""
    with pytest.raises(ValueError, match="unknown event hooks"):
        SequenceClient("sk_test", event_hooks={"requests": [print]})


async def test_raw_answers_are_captured_per_task(server: FakeSequence) -> None:
    """capture_responses() sees this block's answers only, retries included."""
    server.set_faults("list_accounts", errors_next=1)
    async with SequenceClient(
        server.api_key, base_url=server.url, retry=NO_WAIT_RETRIES
    ) as client:
        other = asyncio.create_task(client.rules.list())
        with capture_responses() as answers:
            accounts = await client.accounts.list()
        await other

    assert accounts
    assert [503, 200] == [a.status for a in answers]
    assert {"accounts.list"} == {a.operation for a in answers}
    assert answers[-1].request_id == answers[-1].headers["X-Request-ID"]
    assert all(a.elapsed >= 0 for a in answers)


async def test_log_lines_carry_structured_fields(
    live: SequenceClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The DEBUG line of each attempt has its fields as record attributes."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")

    await live.accounts.list()

    (record,) = [r for r in caplog.records if r.getMessage().startswith("GET")]
    fields = ("operation", "method", "path", "status", "attempt", "request_id")
    assert ("accounts.list", "GET", "/accounts", 200, 1) == tuple(
        getattr(record, f) for f in fields[:5]
    )
    assert getattr(record, "elapsed_ms") >= 0  # noqa: B009 (set by extra=)


async def test_attempts_without_an_answer_and_retries_are_logged_with_their_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection has its DEBUG line per attempt; a retry, its fields."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")
    refused = f"http://127.0.0.1:{free_port()}/api/v1"

    async with SequenceClient(
        "sk_logs", base_url=refused, retry=attrs.evolve(NO_WAIT_RETRIES, max_retries=1)
    ) as client:
        with pytest.raises(APIConnectionError):
            await client.accounts.list()
    records = [r for r in caplog.records if r.name == "sequence_async"]
    fields = ("levelname", "operation", "method", "path", "status", "attempt")

    assert [
        ("DEBUG", "accounts.list", "GET", "/accounts", None, 1),
        ("INFO", "accounts.list", "GET", "/accounts", None, 1),
        ("DEBUG", "accounts.list", "GET", "/accounts", None, 2),
    ] == [tuple(getattr(r, f) for f in fields) for r in records]
    assert 1 == len({getattr(r, "request_id") for r in records})  # noqa: B009
    assert "failed (APIConnectionError)" in records[0].getMessage()


class _FailingProcessor(SimpleSpanProcessor):
    """A user's span processor that raises as spans start or end."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:  # noqa: ARG002
        if span.name == "sequence accounts.list":
            raise RuntimeError("on_start is down")

    def on_end(self, span: ReadableSpan) -> None:  # noqa: ARG002
        raise RuntimeError("on_end is down")


async def test_a_span_processor_that_raises_never_ends_a_call(
    server: FakeSequence, caplog: pytest.LogCaptureFixture
) -> None:
    """The accepted trigger's result (and key) comes back; the failure is logged."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    provider = TracerProvider()
    provider.add_span_processor(_FailingProcessor(InMemorySpanExporter()))

    async with SequenceClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, tracer_provider=provider
    ) as client:
        result = await client.trigger_and_wait("rule_0001", timeout=10)
        outcomes = await client.trigger_all(["rule_0002", "rule_0003"], timeout=10)
        accounts = await client.accounts.list()
    failures = [r for r in caplog.records if "span processor failed" in r.getMessage()]

    assert "executed" == result.status
    assert all(o.ok for o in outcomes)
    assert accounts
    assert {"to end a span", "to start a span"} <= {
        r.getMessage().rsplit(" failed ", 1)[1] for r in failures
    }


async def test_spans_for_calls_waits_and_bulk_runs(
    traced: SequenceClient,
    server: FakeSequence,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """One span per call (retries as events), per wait (polls as events), per run."""
    server.set_faults("trigger_rule", errors_next=1)
    exporter = spans[1]

    result = await traced.trigger_and_wait("rule_0001")
    await traced.trigger_all(["rule_0002", "rule_0003"])

    (trigger, *_) = named(exporter, "sequence rules.trigger")
    attributes = dict(trigger.attributes or {})
    assert "rule_0001" == attributes["sequence.rule_id"]
    assert 1 == attributes["http.request.resend_count"]
    assert 202 == attributes["http.response.status_code"]
    assert ["retry"] == [e.name for e in trigger.events]
    (wait, *_) = named(exporter, "sequence execution.wait")
    assert result.id == (wait.attributes or {})["sequence.execution_id"]
    assert "poll" in [e.name for e in wait.events]
    (bulk,) = named(exporter, "sequence trigger_many")
    assert 2 == (bulk.attributes or {})["sequence.succeeded"]
    children = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == bulk.context.span_id
    ]
    assert len(children) >= 2


async def test_metrics_show_requests_retries_polls_and_outcomes(
    traced: SequenceClient,
    server: FakeSequence,
    metrics: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """Requests, retries, polls, waits served, durations and bulk items are counted."""
    server.set_faults("trigger_rule", errors_next=1)

    await traced.trigger_all(["rule_0001", "rule_0002"])

    points = metric_points(metrics[1])
    assert {
        "sequence.client.requests",
        "sequence.client.retries",
        "sequence.client.polls",
        "sequence.client.poll.waits_served",
        "sequence.execution.duration",
        "sequence.bulk.items",
    } <= set(points)
    assert 2 == sum(p.value for p in points["sequence.bulk.items"])
    assert 1 == sum(p.value for p in points["sequence.client.retries"])


async def test_no_span_event_or_metric_holds_the_key(
    traced: SequenceClient,
    server: FakeSequence,
    spans: tuple[TracerProvider, InMemorySpanExporter],
    metrics: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """The API key is in no attribute, event or label."""
    server.set_faults("trigger_rule", errors_next=1)

    await traced.trigger_all(["rule_0001"])

    exported = [s.to_json() for s in spans[1].get_finished_spans()]
    data = metrics[1].get_metrics_data()
    dumped = json.dumps(exported) + (data.to_json() if data else "")
    assert server.api_key not in dumped
    assert "ApiKey" not in dumped


async def test_aiohttp_spans_nest_under_the_sdk_spans(
    server: FakeSequence, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """With the aiohttp instrumentation on, HTTP spans are children of ours."""
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=spans[0])
    try:
        async with SequenceClient(
            server.api_key, base_url=server.url, tracer_provider=spans[0]
        ) as client:
            await client.accounts.list()
    finally:
        instrumentor.uninstrument()

    (ours,) = named(spans[1], "sequence accounts.list")
    http = [s for s in spans[1].get_finished_spans() if s is not ours]
    assert http
    assert all(s.parent is not None for s in http)
    assert {ours.context.span_id} == {s.parent.span_id for s in http if s.parent}


def test_nothing_is_recorded_without_a_configured_provider() -> None:
    """With only the API's default no-op providers, the client skips telemetry."""
    from sequence_async import _otel

    assert _otel.telemetry() is None
    assert _otel.telemetry(tracer_provider=TracerProvider()) is not None
