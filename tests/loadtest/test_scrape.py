"""Deltas of the rooms metrics a server reports on /metrics (pure: parsed text in, figures out)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from loadtest.scrape import Samples, delta, summarize

BEFORE = """
blendtune_room_commit_seconds_bucket{le="0.005"} 10.0
blendtune_room_commit_seconds_bucket{le="0.05"} 10.0
blendtune_room_commit_seconds_bucket{le="+Inf"} 10.0
blendtune_room_commit_seconds_count 10.0
blendtune_room_commit_seconds_sum 0.02
blendtune_room_commit_batches_count 10.0
blendtune_room_commit_batches_sum 10.0
blendtune_room_rejected_total{reason="rate_limited"} 1.0
"""
AFTER = """
blendtune_room_commit_seconds_bucket{le="0.005"} 90.0
blendtune_room_commit_seconds_bucket{le="0.05"} 109.0
blendtune_room_commit_seconds_bucket{le="+Inf"} 110.0
blendtune_room_commit_seconds_count 110.0
blendtune_room_commit_seconds_sum 0.52
blendtune_room_commit_batches_count 110.0
blendtune_room_commit_batches_sum 310.0
blendtune_room_rejected_total{reason="rate_limited"} 4.0
blendtune_room_rejected_total{reason="bad_ops"} 0.0
blendtune_room_slow_consumer_disconnects_total 2.0
blendtune_room_publish_to_send_seconds_bucket{le="0.001"} 3.0
blendtune_room_publish_to_send_seconds_bucket{le="0.01"} 4.0
blendtune_room_publish_to_send_seconds_bucket{le="+Inf"} 4.0
blendtune_room_publish_to_send_seconds_count 4.0
blendtune_room_publish_to_send_seconds_sum 0.008
"""


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def test_deltas_over_the_window() -> None:
    m = summarize("http://x", delta(parse(BEFORE), parse(AFTER)))
    assert m.commits == 100
    assert m.batches_committed == 300
    assert m.batches_per_commit == 3.0
    assert m.commit_mean_ms == 5.0
    assert m.commit_p50_ms_at_most == 5.0  # 80 of 100 within 5 ms
    assert m.commit_p99_ms_at_most == 50.0  # the 99th is in the 50 ms bucket
    assert m.rejected == {"rate_limited": 3}
    assert m.slow_consumer_disconnects == 2
    assert (m.fanout_count, m.fanout_mean_ms, m.fanout_p99_ms_at_most) == (4, 2.0, 10.0)
