"""The rooms metrics each server reports on ``/metrics``, as deltas over the run.

What the server itself saw complements what the clients measured: how long group commits
took and how many batches each carried, publish-to-queue fan-out latency, slow consumers
closed, gaps filled from PostgreSQL. Servers without Blendtune's metrics (the baselines) are
skipped. Histogram quantiles are bucket upper bounds ("at most").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class ServerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Deltas over the window; fan-out: publish to the socket write of one sampled member."""

    url: str
    commits: int
    batches_committed: int
    batches_per_commit: float
    commit_mean_ms: float
    commit_p50_ms_at_most: float
    commit_p99_ms_at_most: float
    fanout_count: int
    fanout_mean_ms: float
    fanout_p99_ms_at_most: float
    slow_consumer_disconnects: int
    gap_fills: int
    rejected: dict[str, int]
    # Rooms committed per path (``fast``, ``locked``; empty for servers without the metric).
    commit_paths: dict[str, int] = {}


def scrape(url: str) -> Samples | None:
    """The ``blendtune_room_*`` samples of one server, or None if it has none."""
    try:
        response = httpx.get(url.rstrip("/") + "/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or "blendtune_room_" not in response.text:
        return None
    samples: Samples = {}
    with contextlib.suppress(ValueError):
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name.startswith("blendtune_room_"):
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    samples[key] = float(sample.value)
    return samples or None


def delta(before: Samples, after: Samples) -> Samples:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def _quantile(samples: Samples, name: str, q: float) -> float:
    """Upper bound (ms) of the bucket holding the q-quantile of histogram ``name``."""
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (n, labels), value in samples.items()
        if n == name + "_bucket"
    )
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    total = buckets[-1][1]
    for bound, cumulative in buckets:
        if cumulative >= q * total:
            return bound * 1e3
    return buckets[-1][0] * 1e3


# Publish on any process to a member's socket here (older servers: to the queue).
FANOUT_NAMES = ("blendtune_room_publish_to_send_seconds", "blendtune_room_fanout_latency_seconds")


def summarize(url: str, d: Samples) -> ServerMetrics:
    commits = _total(d, "blendtune_room_commit_seconds_count")
    batches = _total(d, "blendtune_room_commit_batches_sum")
    fanout = next(
        (n for n in FANOUT_NAMES if any(k[0] == n + "_count" for k in d)), FANOUT_NAMES[0]
    )
    fanouts = _total(d, fanout + "_count")
    rejected = {
        dict(labels).get("reason", "?"): int(v)
        for (n, labels), v in d.items()
        if n == "blendtune_room_rejected_total" and v > 0
    }
    return ServerMetrics(
        url=url,
        commits=int(commits),
        batches_committed=int(batches),
        batches_per_commit=round(batches / commits, 2) if commits else 0.0,
        commit_mean_ms=round(
            1e3 * _total(d, "blendtune_room_commit_seconds_sum") / commits if commits else 0.0, 3
        ),
        commit_p50_ms_at_most=_quantile(d, "blendtune_room_commit_seconds", 0.5),
        commit_p99_ms_at_most=_quantile(d, "blendtune_room_commit_seconds", 0.99),
        fanout_count=int(fanouts),
        fanout_mean_ms=round(
            1e3 * _total(d, fanout + "_sum") / fanouts if fanouts else 0.0,
            3,
        ),
        fanout_p99_ms_at_most=_quantile(d, fanout, 0.99),
        slow_consumer_disconnects=int(_total(d, "blendtune_room_slow_consumer_disconnects_total")),
        gap_fills=int(_total(d, "blendtune_room_gap_fills_total")),
        rejected=rejected,
        commit_paths={
            dict(labels).get("path", "?"): int(v)
            for (n, labels), v in d.items()
            if n == "blendtune_room_commits_total" and v > 0
        },
    )


class Scraper:
    """Scrapes every URL at the start and at the end of the window."""

    def __init__(self, urls: Iterable[str]) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.before: dict[str, Samples] = {}

    def start(self) -> None:
        for url in self.urls:
            samples = scrape(url)
            if samples is not None:
                self.before[url] = samples

    def stop(self) -> list[ServerMetrics]:
        out = []
        for url, before in self.before.items():
            after = scrape(url)
            if after is not None:
                out.append(summarize(url, delta(before, after)))
        return out
