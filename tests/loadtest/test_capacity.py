"""The capacity sweep's machinery (bench/capacity.py): the search, and one quick real search.

The search is checked against a rule whose answer is known; the real search runs against a
Blendtune process over a load-tester session kept across steps, and is checked for being
consistent with itself (the rate it reports passed, the next one tried failed, every verdict
follows from its step's figures), never for speed.
"""

from __future__ import annotations

import asyncio
import io

import msgspec
import pytest
from rich.console import Console

from bench import capacity
from bench.servers import Target
from loadtest import runner, seed
from tests.conftest import StartServer
from tests.support import Backends

KIND_ENV = {"BLENDTUNE_ROOM_KINDS": "loadtest.kind:LoadTestKind"}


@pytest.mark.parametrize("threshold", [0.07, 1.0, 3.3, 9.99, 37.0])
def test_the_search_brackets_the_highest_passing_rate(threshold: float) -> None:
    tried: list[float] = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return rate <= threshold

    passed, failed = capacity.search(
        passes, guess=2.0, low=0.05, high=40.0, factor=2.0, precision=0.1, max_steps=20
    )
    assert passed is not None and failed is not None
    assert passed <= threshold < failed
    assert failed / passed <= 1.1
    # Both ends were measured, and nothing was measured twice.
    assert passed in tried and failed in tried
    assert len(tried) == len(set(tried))


def test_the_search_stops_at_its_bounds_and_its_step_budget() -> None:
    # Everything passes: the top is reported as passed, nothing as failed.
    assert capacity.search(lambda r: True, 2.0, 0.5, 40.0, 2.0, 0.1, 20) == (40.0, None)
    # Everything fails: nothing passed, the bottom failed.
    assert capacity.search(lambda r: False, 2.0, 0.5, 40.0, 2.0, 0.1, 20) == (None, 0.5)
    tried: list[float] = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return rate <= 5.0

    passed, failed = capacity.search(passes, 2.0, 0.5, 40.0, 2.0, 0.001, 4)
    assert len(tried) == 4
    assert passed is not None and failed is not None and passed <= 5.0 < failed


async def test_a_quick_search_over_one_session_is_consistent(
    start_server: StartServer, backends: Backends
) -> None:
    server = await start_server(env=KIND_ENV)
    # One room of two. Blendtune refuses a connection's messages beyond 50 a second (its
    # token bucket holds a second's worth), so the rates this search climbs to fail whatever
    # the machine's speed: the search must find a failing step, and bracket the capacity.
    shape = capacity.Shape(
        name="tiny", label="tiny", rooms=1, members=2, guess=20.0, low=2.0, high=400.0
    )
    seeded = await seed.seed(backends.database_url, "loadtest", shape.rooms, shape.members)
    target = Target("blendtune", [server.url])
    timing = msgspec.structs.replace(
        capacity.QUICK, warmup=0.3, settle=0.2, duration=0.6, factor=4.0, precision=1.0, max_steps=4
    )
    # A generous latency bar: this test is about the search, not about this machine's speed.
    bar = capacity.Bar(p99_ms=1000.0)
    steps: list[capacity.Step] = []
    sweep = capacity.Sweep(
        timing=timing,
        bar=bar,
        pinning=capacity.Pinning(mode="none", servers=[], generator=[]),
        redis_port=0,
        on_step=steps.append,
    )
    options = capacity.options_for(target, shape, seeded, processes=1, redis_port=0)
    quiet = Console(file=io.StringIO())

    def run() -> capacity.Search:
        with runner.Session(options, quiet) as session:
            join = sweep.warm(session, target, shape)
            assert join.target == 2 and join.seconds > 0
            return sweep.find(session, target, shape, repeat=0)

    found = await asyncio.to_thread(run)

    assert found.steps == steps and 2 <= len(steps) <= 4
    for step in steps:
        # Every verdict is the bar applied to that step's own figures.
        assert step.passed == (not step.why)
        assert step.target == 2 and step.offered_per_s == pytest.approx(step.rate * 2)
        if step.passed:
            assert step.held == 2 and step.delivered_pct == 100.0 and step.p99_ms <= 1000.0
        assert step.cpu and step.cpu[-1].role == "generator"
    # The rate limit makes the climb fail somewhere: the capacity is bracketed.
    assert found.failed_above is not None
    above = [s for s in steps if s.rate == found.failed_above]
    assert above and not above[0].passed
    if found.capacity is not None:
        at = [s for s in steps if s.rate == found.capacity]
        assert at and at[0].passed
        assert found.capacity < found.failed_above
        # Stopped because the bracket was tight enough, or the steps ran out.
        assert found.failed_above / found.capacity <= 2.0 or len(steps) == 4
    summary = capacity.summarise(shape, "blendtune", [found], sweep.pinning)
    assert summary.median == pytest.approx((found.capacity or 0.0) * 2, abs=0.1)
    assert summary.bound  # says what the failing step ran into


def test_a_repeat_starts_at_the_boundary_the_earlier_searches_found() -> None:
    def earlier(found: float | None, failed_above: float | None) -> capacity.Search:
        return capacity.Search(
            server="bare",
            shape="small",
            repeat=0,
            capacity=found,
            failed_above=failed_above,
            steps=[],
        )

    timing = capacity.FULL
    # The rate that failed just above: measured again, so a capacity pulled down by one
    # unlucky step can climb back.
    assert capacity.restart_at([earlier(2.0, 2.4), earlier(3.0, 3.6)], timing) == 3.0
    # Nothing failed above (it passed at the top of the range): a step above it.
    assert capacity.restart_at([earlier(40.0, None)], timing) == 40.0 * timing.refine
    # Nothing passed, or no earlier search: from the shape's guess.
    assert capacity.restart_at([earlier(None, 0.05)], timing) is None
    assert capacity.restart_at([], timing) is None
