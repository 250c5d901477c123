r"""
Testing your own code against the fake server, with the pytest plugin.

Installing ``sequence-async`` with pytest and pytest-asyncio gives two
fixtures: ``sequence_server``, a fresh fake Sequence server per test whose
clock moves only when the test says so, and ``sequence_client``, a
``SequenceClient`` bound to it (polls every 10 ms, retries without
sleeping). This file runs in pytest-asyncio's *strict* mode, where async
tests need ``@pytest.mark.asyncio`` (here: for the whole module)::

    python -m pytest examples/test_payouts_with_plugin.py -p sequence_async \\
        -o asyncio_mode=strict

(``-p sequence_async`` loads the plugin even where plugin autoloading is off,
``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``: then add ``-p asyncio`` for
pytest-asyncio too; with autoloading on, both are loaded anyway.) ``python
examples/test_payouts_with_plugin.py`` does the same.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from sequence_async import ExecutionFailedError, SequenceClient
from sequence_async.testing import FakeSequence


pytestmark = pytest.mark.asyncio  # strict mode: every test here is asyncio's

RENT_RULE = "rule_0001"  # a MANUAL rule of the demo organization


# -- the code under test: yours ------------------------------------------------


async def pay_rent(client: SequenceClient, month: str, amount_cents: int) -> str:
    """
    Pay one month's rent exactly once; return the execution id.

    The key is made from the month, so paying the same month twice (a
    retry, a second worker) replays the first payment.
    """
    result = await client.trigger_and_wait(
        RENT_RULE,
        manual_execute_amount=amount_cents,
        idempotency_key=f"rent-{month}",
        timeout=30,
    )
    return result.id


# -- the tests -----------------------------------------------------------------


async def test_rent_is_paid(
    sequence_server: FakeSequence, sequence_client: SequenceClient
) -> None:
    """
    The rent is paid with the amount and the month's key.
    """
    payment = asyncio.create_task(pay_rent(sequence_client, "2026-11", 1_850_00))
    await sequence_server.wait_for_requests("trigger_rule")
    sequence_server.advance(60)  # the manual clock: the execution ends now

    execution_id = await payment

    (execution,) = sequence_server.executions()
    assert execution_id == execution["id"]
    assert "executed" == execution["status"]
    assert "rent-2026-11" == execution["idempotency_key"]
    assert 1_850_00 == execution["trigger_details"]["amount_in_cents"]


async def test_a_lost_answer_never_pays_twice(
    sequence_server: FakeSequence, sequence_client: SequenceClient
) -> None:
    """
    A lost answer is retried with the same key: one payment, not two.
    """
    # The first answer is lost after the server started the execution: the
    # client retries with the same key, and the server replays it.
    sequence_server.set_faults("trigger_rule", drops_next=1)
    payment = asyncio.create_task(pay_rent(sequence_client, "2026-12", 1_850_00))
    await sequence_server.wait_for_requests("trigger_rule", 2)
    sequence_server.advance(60)

    await payment

    assert 1 == len(sequence_server.executions())
    assert 2 == sequence_server.counts["trigger_rule"]


async def test_a_failed_payment_raises(
    sequence_server: FakeSequence, sequence_client: SequenceClient
) -> None:
    """
    A payment that fails raises, with the execution in the error.
    """
    execution = await sequence_client.rules.trigger(
        RENT_RULE, manual_execute_amount=1_850_00
    )
    sequence_server.finish(execution.id, "failed")

    with pytest.raises(ExecutionFailedError) as caught:
        await execution.wait(timeout=10)

    assert "failed" == caught.value.result.status


def main() -> int:
    """
    Run this file with pytest, in strict mode, with the plugin.

    In a fresh interpreter: this one has imported the SDK already, too early
    for pytest to rewrite the asserts of the plugin.
    """
    command = [sys.executable, "-m", "pytest", __file__, "-p", "sequence_async"]
    return subprocess.call([*command, "-o", "asyncio_mode=strict"])  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
