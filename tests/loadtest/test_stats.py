"""The load tester's statistics: pure and fast (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.stats import (
    BUCKETS,
    Counters,
    Histogram,
    SeqTracker,
    Timeline,
    bucket_high,
    bucket_of,
    merge_counters,
    percentage,
    rate,
    summarize,
    timetable,
)


def nearest_rank(samples: np.ndarray, p: float) -> float:
    return float(np.percentile(samples, p, method="inverted_cdf"))


def test_buckets_are_ordered_and_tight() -> None:
    values = np.concatenate([np.arange(0, 5000), np.geomspace(5000, 2**40, 20000).astype(np.int64)])
    buckets = bucket_of(values)
    assert (np.diff(buckets) >= 0).all()
    assert buckets.max() < BUCKETS
    high = bucket_high(buckets)
    assert (high >= values).all()
    # At most 1/128 above the value (values below 256 are exact).
    assert (high - values <= values // 128).all()
    assert (high[values < 256] == values[values < 256]).all()
    # The previous bucket ends below the value: buckets do not overlap.
    previous = bucket_high(np.maximum(buckets - 1, 0))
    assert (previous[values > 0] < values[values > 0]).all()


def test_percentiles_match_the_samples_within_the_bucket_precision() -> None:
    samples = np.random.default_rng(7).lognormal(mean=-6, sigma=1.2, size=50_000)
    h = Histogram()
    h.record_many(samples)
    assert h.total == len(samples)
    for p in (50.0, 90.0, 99.0, 99.9):
        expected = nearest_rank(samples, p)
        got = h.percentile(p)
        assert expected - 1e-6 <= got <= expected * (1 + 1 / 128) + 1e-6, p
    assert h.percentile(100) == pytest.approx(samples.max(), abs=1e-6)
    assert h.max_us == round(samples.max() * 1e6)
    assert h.mean == pytest.approx(samples.mean(), rel=1e-3)


def test_merging_per_process_histograms_equals_one_histogram_of_everything() -> None:
    rng = np.random.default_rng(3)
    # Three "processes" with very different latencies: averaging their p99s would be wrong.
    parts = [rng.exponential(0.001, 10_000), rng.exponential(0.02, 500), rng.exponential(0.1, 50)]
    whole = Histogram()
    whole.record_many(np.concatenate(parts))
    merged = Histogram()
    for part in parts:
        h = Histogram()
        h.record_many(part)
        # Shipped between processes in sparse form.
        merged.merge(Histogram.from_sparse(h.to_sparse()))
    assert (merged.counts == whole.counts).all()
    assert merged.total == whole.total
    assert (merged.min_us, merged.max_us, merged.total_us) == (
        whole.min_us,
        whole.max_us,
        whole.total_us,
    )
    for p in (50.0, 99.0, 99.9):
        assert merged.percentile(p) == whole.percentile(p)
    mean_of_p99 = np.mean([np.percentile(part, 99) for part in parts])
    assert abs(merged.percentile(99) - mean_of_p99) > 0.01


def test_empty_and_degenerate_histograms() -> None:
    h = Histogram()
    assert h.percentile(99) == 0.0
    assert summarize(h).count == 0
    h.merge(Histogram())
    assert h.total == 0
    h.record_many([])
    assert h.total == 0
    # Negative latencies (clock skew between machines) count as zero, never crash.
    h.record_many([-0.5, 0.0])
    assert h.total == 2 and h.max_us == 0
    one = Histogram()
    one.record_many([0.0123])
    assert summarize(one).p50_ms == summarize(one).max_ms == 12.3


def test_timeline_buckets_by_second_and_merges() -> None:
    a, b = Timeline(), Timeline()
    a.record_many([0.1, 0.9, 1.5], [0.001, 0.002, 0.050])
    b.record_many([1.2, 3.0], [0.004, 0.008])
    a.merge(Timeline.from_sparse(b.to_sparse()))
    assert sorted(a.seconds) == [0, 1, 3]
    assert a.seconds[0].total == 2
    assert a.seconds[1].total == 2
    assert a.seconds[1].percentile(100) == pytest.approx(0.050)


def test_seq_tracker_counts_gaps_and_duplicates() -> None:
    t = SeqTracker()
    t.expect("room", 10)
    assert t.see("room", 11) == 0
    assert t.see("room", 14) == 2  # 12 and 13 missing
    assert t.see("room", 13) == 0  # late or duplicate: after 14 it is out of order
    assert t.see("room", 14) == 0
    assert (t.gaps, t.duplicates, t.seen) == (2, 2, 4)
    # A stream without expect starts where it is first seen.
    assert t.see("other", 100) == 0
    assert t.see("other", 101) == 0
    t.forget("other")
    assert t.see("other", 5) == 0
    assert (t.gaps, t.duplicates) == (2, 2)


def test_rates_and_percentages() -> None:
    assert rate(500, 2.0) == 250.0
    assert rate(5, 0.0) == 0.0
    assert percentage(99, 100) == 99.0
    assert percentage(0, 0) == 100.0


def test_counters_sum_across_processes_but_lag_is_a_maximum() -> None:
    a = Counters(presence_sent=10, presence_received=30, connections_held=5, send_lag_max_us=700)
    b = Counters(presence_sent=4, presence_received=12, connections_held=3, send_lag_max_us=200)
    total = merge_counters([a, b])
    assert total.presence_sent == 14
    assert total.presence_received == 42
    assert total.connections_held == 8
    assert total.send_lag_max_us == 700


def test_timetable_is_open_loop() -> None:
    times = timetable(start=100.0, rate_hz=4.0, phase=0.1, until=101.0)
    assert times == pytest.approx([100.1, 100.35, 100.6, 100.85])
    # The phase wraps within one period; a zero rate sends nothing.
    assert timetable(100.0, 4.0, 0.35, 100.5) == pytest.approx([100.1, 100.35])
    assert timetable(100.0, 0.0, 0.0, 200.0) == []
