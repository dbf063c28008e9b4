"""Pure statistics for the load tester: latency histograms, sequence tracking, rates.

Nothing here does I/O. Client processes record into these structures and ship them to the
parent process, which merges them; the report is computed from the merged result.

Latency histogram: HDR-style log-linear buckets over integer microseconds. Values below
256 us are exact; above, each power of two is split into 128 buckets, so a reported
percentile is at most 1/128 (< 0.8 %) above the true sample. Merging two histograms is an
element-wise sum, which is what makes percentiles across processes correct (averaging
per-process percentiles would not be).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import numpy as np
import numpy.typing as npt

SUB_BITS = 7  # 128 sub-buckets per power of two above the exact range
EXACT = 1 << (SUB_BITS + 1)  # 256: values below are their own bucket
HALF = 1 << SUB_BITS
MAX_SHIFT = 36  # top of range: 2**44 us, about 200 days
BUCKETS = EXACT + MAX_SHIFT * HALF

IntArray = npt.NDArray[np.int64]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def bucket_of(values_us: IntArray) -> IntArray:
    """Bucket index of each (non-negative, integer microsecond) value."""
    v = np.clip(values_us, 0, (1 << (MAX_SHIFT + SUB_BITS + 1)) - 1).astype(np.int64)
    # frexp is exact for integers below 2**53: v = mantissa * 2**exponent, exponent = bit length.
    _, bits = np.frexp(v.astype(np.float64))
    shift = np.maximum(bits.astype(np.int64) - (SUB_BITS + 1), 0)
    top = v >> shift  # in [128, 255] once shift > 0
    return np.where(v < EXACT, v, EXACT + (shift - 1) * HALF + (top - HALF))


def bucket_high(index: IntArray | int) -> IntArray:
    """Largest value that falls in each bucket (what HDR calls the highest equivalent)."""
    i = np.asarray(index, dtype=np.int64)
    shift = np.maximum((i - EXACT) // HALF + 1, 0)
    top = np.where(i < EXACT, i, (i - EXACT) % HALF + HALF)
    high: IntArray = np.where(i < EXACT, i, ((top + 1) << shift) - 1)
    return high


class Histogram:
    """Counts of latencies (seconds in, microsecond buckets inside), mergeable."""

    __slots__ = ("counts", "max_us", "min_us", "total", "total_us")

    def __init__(self) -> None:
        self.counts: IntArray = np.zeros(BUCKETS, dtype=np.int64)
        self.total = 0
        self.total_us = 0
        self.max_us = 0
        self.min_us = 0

    def record_many(self, seconds: Sequence[float] | npt.NDArray[np.float64]) -> None:
        if len(seconds) == 0:
            return
        us = np.maximum(np.rint(np.asarray(seconds, dtype=np.float64) * 1e6), 0).astype(np.int64)
        self.counts += np.bincount(bucket_of(us), minlength=BUCKETS)[:BUCKETS]
        low, high = int(us.min()), int(us.max())
        self.min_us = low if self.total == 0 else min(self.min_us, low)
        self.max_us = max(self.max_us, high)
        self.total += len(us)
        self.total_us += int(us.sum())

    def merge(self, other: Histogram) -> None:
        if other.total == 0:
            return
        self.counts += other.counts
        self.min_us = other.min_us if self.total == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.total += other.total
        self.total_us += other.total_us

    def percentile(self, p: float) -> float:
        """The p-th percentile in seconds (0 when empty); p=100 gives the exact maximum."""
        if self.total == 0:
            return 0.0
        if p >= 100.0:
            return self.max_us / 1e6
        # The sample at this rank (1-based), nearest-rank definition.
        rank = max(1, int(np.ceil(p / 100.0 * self.total)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        # Never report more than the exact maximum or less than the exact minimum.
        value = min(int(bucket_high(index)), self.max_us)
        return max(value, self.min_us) / 1e6

    @property
    def mean(self) -> float:
        return self.total_us / self.total / 1e6 if self.total else 0.0

    # Compact form for shipping between processes and into reports.
    def to_sparse(self) -> SparseHistogram:
        nz = np.flatnonzero(self.counts)
        return SparseHistogram(
            index=nz.tolist(),
            count=self.counts[nz].tolist(),
            total_us=self.total_us,
            min_us=self.min_us,
            max_us=self.max_us,
        )

    @classmethod
    def from_sparse(cls, sparse: SparseHistogram) -> Histogram:
        h = cls()
        if sparse.index:
            h.counts[np.asarray(sparse.index, dtype=np.int64)] = sparse.count
        h.total = int(sum(sparse.count))
        h.total_us = sparse.total_us
        h.min_us = sparse.min_us
        h.max_us = sparse.max_us
        return h


class SparseHistogram(msgspec.Struct, frozen=True):
    index: list[int]
    count: list[int]
    total_us: int
    min_us: int
    max_us: int


class LatencySummary(msgspec.Struct, frozen=True):
    """Percentiles in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def summarize(h: Histogram) -> LatencySummary:
    p50, p90, p99, p999 = (h.percentile(p) * 1e3 for p in PERCENTILES)
    return LatencySummary(
        count=h.total,
        mean_ms=round(h.mean * 1e3, 3),
        p50_ms=round(p50, 3),
        p90_ms=round(p90, 3),
        p99_ms=round(p99, 3),
        p999_ms=round(p999, 3),
        max_ms=round(h.max_us / 1e3, 3),
    )


class Timeline:
    """One histogram per whole second since the start, for latency-over-time plots."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: dict[int, Histogram] = {}

    def record_many(self, at: Sequence[float], seconds: Sequence[float]) -> None:
        """``at``: when each sample was taken (seconds since the start); ``seconds``: latency."""
        if len(at) == 0:
            return
        slots = np.floor(np.asarray(at, dtype=np.float64)).astype(np.int64)
        values = np.asarray(seconds, dtype=np.float64)
        for slot in np.unique(slots):
            h = self.seconds.get(int(slot))
            if h is None:
                h = self.seconds[int(slot)] = Histogram()
            h.record_many(values[slots == slot])

    def merge(self, other: Timeline) -> None:
        for slot, h in other.seconds.items():
            mine = self.seconds.get(slot)
            if mine is None:
                mine = self.seconds[slot] = Histogram()
            mine.merge(h)

    def to_sparse(self) -> dict[int, SparseHistogram]:
        return {slot: h.to_sparse() for slot, h in self.seconds.items()}

    @classmethod
    def from_sparse(cls, sparse: dict[int, SparseHistogram]) -> Timeline:
        t = cls()
        t.seconds = {int(k): Histogram.from_sparse(v) for k, v in sparse.items()}
        return t


class SeqTracker:
    """Per-stream ordering check: counts gaps (missing numbers) and duplicates.

    A stream is identified by a small integer (a receiver's room for ops, or a
    receiver/sender pair for presence). ``expect`` sets the last number already seen (the
    room's seq in a welcome); without it the first number seen starts the stream.
    Numbers at or below the last one seen are duplicates (or reordered, which the room
    contract forbids just the same).
    """

    __slots__ = ("duplicates", "gaps", "last", "seen")

    def __init__(self) -> None:
        self.last: dict[object, int] = {}
        self.gaps = 0
        self.duplicates = 0
        self.seen = 0

    def expect(self, stream: object, last: int) -> None:
        self.last[stream] = last

    def see(self, stream: object, number: int) -> int:
        """Record ``number`` on ``stream``; returns how many numbers it skipped (0 if none)."""
        self.seen += 1
        last = self.last.get(stream)
        if last is None:
            self.last[stream] = number
            return 0
        if number <= last:
            self.duplicates += 1
            return 0
        self.last[stream] = number
        skipped = number - last - 1
        self.gaps += skipped
        return skipped

    def forget(self, stream: object) -> None:
        """The stream restarts (a reconnect that resynchronises)."""
        self.last.pop(stream, None)


class Counters(msgspec.Struct, kw_only=True):
    """Monotonic counters a client process reports; summed across processes."""

    connections_opened: int = 0
    connections_held: int = 0  # currently open (a gauge, summed)
    connect_failures: int = 0
    disconnects: int = 0  # closed by the server or the network while running
    presence_sent: int = 0
    presence_received: int = 0
    presence_skipped: int = 0  # per-sender counter jumps (coalesced or lost)
    presence_duplicates: int = 0
    ops_sent: int = 0
    ops_acked: int = 0
    ops_rejected: int = 0
    ops_received: int = 0
    ops_gaps: int = 0
    ops_duplicates: int = 0
    resumes: int = 0  # reconnects the server resumed (missed batches followed)
    resyncs: int = 0  # reconnects answered with a fresh snapshot instead
    expected_presence_deliveries: int = 0
    expected_op_deliveries: int = 0
    send_lag_max_us: int = 0  # how late the generator itself was against its timetable

    def add(self, other: Counters) -> None:
        for name in self.__struct_fields__:
            if name == "send_lag_max_us":
                self.send_lag_max_us = max(self.send_lag_max_us, other.send_lag_max_us)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


def merge_counters(parts: Iterable[Counters]) -> Counters:
    total = Counters()
    for part in parts:
        total.add(part)
    return total


def rate(count: int, seconds: float) -> float:
    """Events per second over a window; 0 for an empty window."""
    return count / seconds if seconds > 0 else 0.0


def percentage(part: int, whole: int) -> float:
    """part/whole in percent, 100 when nothing was expected (nothing was missed)."""
    return 100.0 * part / whole if whole > 0 else 100.0


def timetable(start: float, rate_hz: float, phase: float, until: float) -> list[float]:
    """Open-loop send times: start + phase + k/rate for every k that falls before ``until``.

    Sends follow this fixed timetable whatever the server does, and latency is measured
    from the scheduled time, so a stalled server shows up as latency instead of silently
    lowering the offered load (no coordinated omission).
    """
    if rate_hz <= 0:
        return []
    period = 1.0 / rate_hz
    first = start + (phase % period)
    count = max(0, int(np.ceil((until - first) / period)))
    return [first + k * period for k in range(count)]
