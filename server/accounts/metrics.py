"""Prometheus counters of accounts, on the app's registry (``/metrics``, per process).

Counts are aggregates: they never name an account, so publishing them reveals nothing about
who has one.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter

from server.metrics import Metrics


class AccountMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.registrations = Counter(
            "blendtune_accounts_registered_total",
            "Accounts created.",
            registry=registry,
        )
        self.logins = Counter(
            "blendtune_auth_logins_total",
            "Sign-in attempts by outcome (ok, failed: wrong password, unknown email or locked).",
            ["outcome"],
            registry=registry,
        )
        self.lockouts = Counter(
            "blendtune_auth_lockouts_total",
            "Accounts locked after too many failed sign-ins.",
            registry=registry,
        )
        self.rate_limited = Counter(
            "blendtune_auth_rate_limited_total",
            "Account requests refused by the rate limiter (429).",
            registry=registry,
        )
        self.emails = Counter(
            "blendtune_emails_total",
            "Outbox deliveries by result (sent, logged, failed).",
            ["result"],
            registry=registry,
        )


@functools.cache
def account_metrics(metrics: Metrics) -> AccountMetrics:
    """The accounts counters of an app (created on first use, once per registry)."""
    return AccountMetrics(metrics)
