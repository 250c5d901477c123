"""
The demo organization: payroll, pods, rules, a card and an all-powerful key.

Owns ``demo_seed``, what ``serve()`` runs with no seed, what the CLI's
``demo`` and ``serve`` show, and what the pytest plugin's server holds.

May import: ``testing.seed``.
"""

from __future__ import annotations

from .seed import DEMO_API_KEY, Behavior, Seed


def demo_seed(
    *, rules: int = 10, failure_rate: float = 0.04, median: float = 1.5
) -> Seed:
    """
    Return the demo organization: a payroll account, pods, rules and a card.

    Rules have realistic durations (log-normal around *median* seconds) and a
    few failures and partial runs. The demo key ``DEMO_API_KEY`` may do
    everything.
    """
    seed = Seed()
    payroll = seed.account(
        "Chase Checking ••4567",
        type="income_source",
        balance=50_000_000,
        institution_name="Chase",
    )
    pods = [
        seed.account(name, type="pod")
        for name in ("Taxes", "Emergency Fund", "Vacation", "Rent", "Investing")
    ]
    seed.account(
        "Amex Gold ••1234", type="external_account", institution_name="American Express"
    )
    names = {a["id"]: a["name"] for a in seed.accounts}
    for n in range(rules):
        seed.rule(
            f"Save to {names[pods[n % len(pods)]]} #{n + 1}",
            source=payroll,
            destinations=[
                (pods[n % len(pods)], 1_000 * (n + 1)),
                (pods[(n + 1) % len(pods)], 500),
            ],
            trigger=("MANUAL", "ON_FUNDS_TRANSFERRED", "SCHEDULED")[n % 3],
            behavior=Behavior(
                median=median,
                sigma=0.6,
                failure_rate=failure_rate,
                partial_rate=failure_rate / 2,
            ),
        )
    seed.card(pods[0])
    seed.api_key(DEMO_API_KEY)
    return seed
