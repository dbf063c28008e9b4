"""Prometheus metrics of the rooms core, on the app's registry (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RoomMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "blendtune_room_connections", "Open room WebSocket connections.", registry=registry
        )
        self.active_rooms = Gauge(
            "blendtune_rooms_active", "Rooms with members on this process.", registry=registry
        )
        self.messages_in = Counter(
            "blendtune_room_messages_in_total",
            "Messages received from clients, by type.",
            ["type"],
            registry=registry,
        )
        self.messages_out = Counter(
            "blendtune_room_messages_out_total",
            "Messages queued to clients, by type.",
            ["type"],
            registry=registry,
        )
        self.rejected = Counter(
            "blendtune_room_rejected_total",
            "Op batches and messages refused, by error code.",
            ["reason"],
            registry=registry,
        )
        self.closes = Counter(
            "blendtune_room_closes_total",
            "Connections closed by the server, by close code.",
            ["code"],
            registry=registry,
        )
        self.slow_consumers = Counter(
            "blendtune_room_slow_consumer_disconnects_total",
            "Connections closed because their outgoing queue overflowed.",
            registry=registry,
        )
        self.publish_to_send = Histogram(
            "blendtune_room_publish_to_send_seconds",
            "From publish (commit or presence update) on any process to handing the message to"
            " a member's socket here; one member per message and process is timed.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_latency = Histogram(
            "blendtune_room_commit_seconds",
            "Duration of one group commit (all batches queued for a room) in PostgreSQL.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batches = Histogram(
            "blendtune_room_commit_batches",
            "Op batches per group commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        self.commit_paths = Counter(
            "blendtune_room_commits_total",
            "Rooms committed, by path: fast (the first statement), fast_retry (a later"
            " statement, after catching up with another process's batches) or locked (the"
            " row-locking transaction: still behind after the retries, or a re-sent op id).",
            ["path"],
            registry=registry,
        )
        self.fanout_errors = Counter(
            "blendtune_room_fanout_errors_total",
            "Redis commands dropped because Redis did not answer.",
            registry=registry,
        )
        self.gap_fills = Counter(
            "blendtune_room_gap_fills_total",
            "Batches read from PostgreSQL because pub/sub delivered them late or not at all.",
            registry=registry,
        )
        # Label children are cached: label lookup costs more than the increment.
        self._in: dict[str, Counter] = {}
        self._out: dict[str, Counter] = {}

    def count_in(self, type_: str) -> None:
        child = self._in.get(type_)
        if child is None:
            child = self._in[type_] = self.messages_in.labels(type_)
        child.inc()

    def count_out(self, type_: str, n: int = 1) -> None:
        child = self._out.get(type_)
        if child is None:
            child = self._out[type_] = self.messages_out.labels(type_)
        child.inc(n)
