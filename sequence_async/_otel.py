"""
OpenTelemetry: spans and metrics, when ``opentelemetry-api`` is installed.

The only module that imports OpenTelemetry. Owns ``Telemetry``: the tracer
and meter of one client (the global providers, or the ones it was given) and
every instrument the SDK records. Without ``opentelemetry-api`` nothing is
imported, ``telemetry()`` returns ``None`` and the SDK records nothing.

Nothing is recorded, and nothing costs, unless providers were passed to the
client or set globally before the client was made.

Spans: one per logical API call (``sequence rules.trigger``; retries are its
events), one per wait (an event per poll that served it), one per bulk run.
Metrics: requests by operation and status, retries, 429s, time in the rate
limiter, polls and the waits each served, execution durations, bulk items by
outcome. No attribute, event or label ever holds the API key: only ids,
methods, statuses and counts are recorded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ._wire import VERSION


try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import Span, Status, StatusCode

    AVAILABLE = True
except ImportError:  # pragma: no cover (the extra is installed in the tests)
    AVAILABLE = False

Attributes = Mapping[str, str | int | float | bool]
log = logging.getLogger("sequence_async")


class Telemetry:
    """
    The tracer, the meter and the instruments of one client.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(
            "sequence_async", VERSION, tracer_provider=tracer_provider
        )
        meter = metrics.get_meter(
            "sequence_async", VERSION, meter_provider=meter_provider
        )
        self.requests = meter.create_counter(
            "sequence.client.requests",
            description="HTTP attempts, by operation and status",
        )
        self.retries = meter.create_counter(
            "sequence.client.retries", description="Retries, by operation"
        )
        self.throttled = meter.create_counter(
            "sequence.client.rate_limited", description="429 answers, by operation"
        )
        self.limiter_wait = meter.create_histogram(
            "sequence.client.rate_limiter.wait",
            unit="s",
            description="Time requests waited in the client's rate limiter",
        )
        self.polls = meter.create_counter(
            "sequence.client.polls", description="Poll requests, by rule"
        )
        self.waits_served = meter.create_histogram(
            "sequence.client.poll.waits_served",
            description="Waits one poll answered (the coalescing ratio)",
        )
        self.execution_duration = meter.create_histogram(
            "sequence.execution.duration",
            unit="s",
            description="From trigger to the terminal status a wait saw",
        )
        self.bulk_items = meter.create_counter(
            "sequence.bulk.items", description="Bulk items, by outcome"
        )

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[Span]:
        """
        A current span named ``sequence NAME``; an exception marks it failed.
        """
        span = self.start(name, attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            self.end(span)

    def start(self, name: str, attributes: Attributes) -> Span:
        """
        A span that is not made current (ended by the caller, with ``end``).

        A span processor that raises is logged, never the call's end: the
        call goes on without its span.
        """
        try:
            return self.tracer.start_span(
                f"sequence {name}",
                kind=trace.SpanKind.CLIENT,
                attributes=dict(attributes),
            )
        except Exception:
            log.exception("an OpenTelemetry span processor failed to start a span")
            return trace.INVALID_SPAN

    @staticmethod
    def end(span: Span) -> None:
        """
        End *span*, logging a span processor that raises (never raising it).

        A trigger the server accepted still ends with its key.
        """
        try:
            span.end()
        except Exception:
            log.exception("an OpenTelemetry span processor failed to end a span")

    @staticmethod
    @contextlib.contextmanager
    def current(span: Span) -> Iterator[None]:
        """
        Make *span* current in this task (its children nest under it).
        """
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)


def telemetry(
    tracer_provider: Any = None, meter_provider: Any = None
) -> Telemetry | None:
    """
    The client's telemetry, or ``None`` without ``opentelemetry-api``.

    Raises:
        TypeError: A provider that is none (no ``get_tracer``/``get_meter``).
    """
    for provider, name, method in (
        (tracer_provider, "tracer_provider", "get_tracer"),
        (meter_provider, "meter_provider", "get_meter"),
    ):
        if provider is not None and not callable(getattr(provider, method, None)):
            raise TypeError(
                f"{name} must be an OpenTelemetry provider (with {method}()), "
                f"not {type(provider).__name__}"
            )
    if not AVAILABLE:  # pragma: no cover
        return None
    if tracer_provider is None and meter_provider is None and not _configured():
        # Nothing would record: the API's default providers are no-ops, and
        # making no-op spans still costs every request (measured: +30 µs).
        return None
    return Telemetry(tracer_provider, meter_provider)


def _configured() -> bool:
    # Whether the application set a global tracer or meter provider (set it
    # before making clients: a client looks once, when it is made).
    tracing = not isinstance(
        trace.get_tracer_provider(),
        trace.ProxyTracerProvider | trace.NoOpTracerProvider,
    )
    meters = type(metrics.get_meter_provider()).__name__
    return tracing or meters not in ("_ProxyMeterProvider", "NoOpMeterProvider")


def current_span() -> Span | None:
    """
    The span current in this task, if OpenTelemetry is installed.
    """
    if not AVAILABLE:  # pragma: no cover
        return None
    return trace.get_current_span()
