"""
Tracing to the console with the OpenTelemetry SDK.

Install the extra and the SDK (``pip install ".[otel]" opentelemetry-sdk`` in
a clone of the repository). The client records through the providers it is given
(``tracer_provider=``, ``meter_provider=``), or through the global ones when
none is given. Here both print to stdout as JSON, under a span of the program's own:

- a span per logical API call (``sequence rules.trigger``, with the rule,
  execution, request and idempotency-key ids, the HTTP method and status and
  the resend count; retries are its events);
- a span per wait (``sequence execution.wait``, an event per poll that
  served it, and the status it ended with);
- the metrics at exit: requests by operation and status, polls, execution
  durations, and so on.

The API key appears in no attribute, event or label. Try it::

    sequence-async serve --port 8799 &
    export SEQUENCE_BASE_URL=http://127.0.0.1:8799/api/v1
    export SEQUENCE_API_KEY=sk_demo_fake_sequence_key
    python examples/otel_console.py rule_0001
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from sequence_async import SequenceClient


async def trigger_and_wait(
    rule_id: str, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    """
    Trigger *rule_id* and wait for its end, traced by the given providers.
    """
    # A span of your own around the work: the SDK's spans nest under it, so
    # the trigger, the wait and its polls make one trace.
    tracer = tracer_provider.get_tracer("sequence-example")
    async with SequenceClient(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    ) as client:
        with tracer.start_as_current_span("pay rent"):
            result = await client.trigger_and_wait(rule_id, manual_execute_amount=25_00)
    # Spans went to stdout as they ended; this line goes to stderr so that
    # stdout stays pure JSON.
    print(f"{result.id} {result.status}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Set up console exporters, run one traced trigger-and-wait, flush.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    rule_id = args[0] if args else "rule_0001"
    resource = Resource.create({"service.name": "sequence-example"})
    tracer_provider = TracerProvider(resource=resource)
    # Simple: each span printed as it ends (use BatchSpanProcessor in production).
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    # Metrics are exported when the provider shuts down (and every minute).
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    try:
        asyncio.run(trigger_and_wait(rule_id, tracer_provider, meter_provider))
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
