"""One load-generating process: its share of the members, an open-loop timetable, counters.

The parent (``loadtest.runner``) starts several of these with multiprocessing (one Python
process cannot generate the load) and merges what they report. A worker:

1. opens its members' connections (bounded concurrency) and joins their rooms;
2. reports ready and waits for the common start time;
3. sends presence and op batches on a fixed timetable per member (a random phase each, so
   sends spread evenly): a send due at time T carries T, and every latency is measured from
   T, so a server that stalls is charged for the whole stall (no coordinated omission);
4. after the run, keeps receiving for a drain period, then reports.

A worker runs *steps*: the parent (``loadtest.runner.Session``) sends a ``StepPlan`` (rates,
when to start, how long to settle, measure and drain) through the worker's command queue, and
gets one ``Result`` per step, over the same connections. A one-off run is one step; the
capacity sweep (``bench.capacity``) changes the rate from step to step without reconnecting.
A step's figures count only sends scheduled inside its measured window (after the settle
time), and a delivery belongs to the step whose window holds its scheduled send time, which
every frame carries. Members the server closed between steps are reconnected (resumed)
before the next one starts.

All clocks are ``time.time()``: the processes of one machine share it, which is what lets a
receiver in one process measure a send made by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec

from loadtest import modes
from loadtest.client import WsClient, connect
from loadtest.stats import Counters, Histogram, SparseHistogram, Timeline

PRESENCE_KIND = 0
OP_KIND = 1


class WorkerPlan(msgspec.Struct, kw_only=True):
    """What a worker is for, for its whole life: its members and how to talk to them."""

    index: int
    mode: str
    kind: str = "loadtest"  # room kind (blendtune mode)
    members: list[modes.Member]
    payload_bytes: int = 178
    compression: bool = False
    connect_concurrency: int = 64
    connect_timeout: float = 30.0
    reconnect: bool = True  # reconnect (and resume) members the server closed during a step
    progress_interval: float = 0.5


class StepPlan(msgspec.Struct, tag="step", kw_only=True):
    """One measured step: send at these rates from ``start``; measure after ``settle``."""

    number: int
    start: float  # unix time the timetable starts
    settle: float  # seconds sent at the rate but not measured (the server reaches its pace)
    duration: float  # measured seconds after the settle time
    drain: float  # seconds of receiving after the last send
    presence_rate: float  # Hz per member
    op_rate: float  # Hz per member
    churn_rate: float = 0.0  # reconnects per second (this worker's share)


class ReconnectPlan(msgspec.Struct, tag="reconnect"):
    """Before a step: reconnect (resume) every member the server closed, then say so."""

    number: int  # the step it prepares


class StopPlan(msgspec.Struct, tag="stop"):
    """Close every connection and exit."""


Command = StepPlan | ReconnectPlan | StopPlan


class Progress(msgspec.Struct, tag="progress", kw_only=True):
    worker: int
    phase: str
    counters: Counters
    presence: SparseHistogram  # latencies since the previous progress message
    ops: SparseHistogram
    acks: SparseHistogram
    frames: int = 0  # text frames received since the worker started, counted or not
    pending_ops: int = 0  # op batches sent and not acknowledged yet, whatever the step


class Result(msgspec.Struct, tag="result", kw_only=True):
    worker: int
    step: int
    counters: Counters
    close_codes: dict[str, int]
    presence: SparseHistogram
    ops: SparseHistogram
    acks: SparseHistogram
    connect: SparseHistogram
    reconnect: SparseHistogram
    lag: SparseHistogram
    presence_timeline: dict[int, SparseHistogram]
    ops_timeline: dict[int, SparseHistogram]
    acks_timeline: dict[int, SparseHistogram]
    # Per whole second since the start: counts, for throughput over time.
    presence_sent_per_s: dict[int, int]
    presence_received_per_s: dict[int, int]
    ops_acked_per_s: dict[int, int]
    held_at_end: int  # connections open when the measured window ended
    cpu_seconds: float  # this process's CPU time during the measured window
    errors: list[str]


class Failed(msgspec.Struct, tag="failed", kw_only=True):
    worker: int
    error: str


class Reconnected(msgspec.Struct, tag="reconnected", kw_only=True):
    worker: int
    step: int
    held: int


Message = Progress | Result | Failed | Reconnected


def make_mode(plan: WorkerPlan) -> modes.Mode:
    return make_mode_named(plan.mode, plan.kind, plan.payload_bytes)


def make_mode_named(name: str, kind: str = "loadtest", payload_bytes: int = 178) -> modes.Mode:
    if name == "simple":
        return modes.SimpleMode(payload_bytes)
    from loadtest.blendtune import BlendtuneMode

    return BlendtuneMode(kind, payload_bytes)


class Samples:
    """Latency samples since the last flush, folded into histograms in bulk (numpy)."""

    __slots__ = ("at", "interval", "latency", "timeline", "total")

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.at: list[float] = []
        self.total = Histogram()
        self.interval = Histogram()
        self.timeline = Timeline()

    def flush(self) -> None:
        if not self.latency:
            return
        self.total.record_many(self.latency)
        self.interval.record_many(self.latency)
        self.timeline.record_many(self.at, self.latency)
        self.latency = []
        self.at = []

    def take_interval(self) -> SparseHistogram:
        sparse = self.interval.to_sparse()
        self.interval = Histogram()
        return sparse


class Conn:
    """The generator's side of one member: its connection and what it has seen."""

    __slots__ = (
        "client",
        "closing",
        "generation",
        "held",
        "joined",
        "last_seq",
        "member",
        "n_op",
        "n_presence",
        "pending_ops",
        "ready",
        "resuming",
        "seen_presence",
        "worker",
    )

    def __init__(self, worker: Worker, member: modes.Member) -> None:
        self.worker = worker
        self.member = member
        self.client: WsClient | None = None
        self.ready: asyncio.Future[None] | None = None
        self.joined = False
        self.held = False  # counted in connections_held
        self.generation = 0  # which connection of this member is current (churn reconnects)
        self.closing = False
        self.resuming = False  # this connect sent the last seq seen (a resume)
        self.last_seq = -1  # last op seq seen in this member's room (-1: not joined yet)
        self.n_presence = 0
        self.n_op = 0
        self.pending_ops: dict[int, float] = {}  # batch number -> scheduled send time
        # Last presence counter seen from each other member of the room.
        self.seen_presence = [-1] * member.room_size

    def on_text(self, data: bytes) -> None:
        self.worker.frames += 1
        self.worker.on_event(self, self.worker.mode.parse(data))

    def on_close(self, code: int | None, reason: str) -> None:
        self.worker.on_close(self, code, reason)


class Worker:
    def __init__(self, plan: WorkerPlan, send: Callable[[Message], None]) -> None:
        self.plan = plan
        self.send_message = send
        self.mode = make_mode(plan)
        self.conns = [Conn(self, m) for m in plan.members]
        self.counters = Counters()
        self._fresh_figures()
        # Scheduled send times that count (the step's measured window); unbounded until the
        # first step sets it, so frames fed by hand are counted too.
        self.window = (float("-inf"), float("inf"))
        self.start = 0.0  # the measured window's start (unix seconds): the timeline's origin
        self.step_number = 0
        self.frames = 0  # every text frame received, in or out of a window (backlog drains)
        self.running = False  # a step is under way (sending or draining): reconnect on close
        self.reopening: set[asyncio.Task[bool]] = set()
        self.phase = "connecting"

    def _fresh_figures(self) -> None:
        """Everything a step reports, empty (the connections themselves carry over)."""
        self.close_codes: dict[str, int] = {}
        self.presence = Samples()
        self.ops = Samples()
        self.acks = Samples()
        self.connect_hist = Histogram()
        self.reconnect_hist = Histogram()  # connects during the step (churn, reconnects)
        self.lag = Histogram()
        self.lag_samples: list[float] = []
        self.presence_sent_per_s: dict[int, int] = {}
        self.presence_received_per_s: dict[int, int] = {}
        self.ops_acked_per_s: dict[int, int] = {}
        self.errors: list[str] = []
        self.held_at_end = 0
        self.cpu_seconds = 0.0

    def reset(self) -> None:
        """After a step's result: start the next step's figures from zero. Deliveries of
        the last step still in flight no longer count anywhere (an empty window)."""
        self.counters = Counters(connections_held=self.counters.connections_held)
        self._fresh_figures()
        self.window = (0.0, 0.0)

    # Receiving (called from data_received: keep it lean).

    def on_event(self, conn: Conn, event: modes.Event) -> None:
        kind = event[0]
        now = time.time()
        if kind == modes.PRESENCE:
            sender = event[1]
            assert isinstance(sender, int)
            if sender == conn.member.index:
                return  # our own update echoed back: not a delivery
            n = event[2]
            t = event[3]
            assert isinstance(n, int) and isinstance(t, float)
            counted = self.window[0] <= t < self.window[1]
            seen = conn.seen_presence
            if 0 <= sender < len(seen):
                last = seen[sender]
                if n <= last:
                    self.counters.presence_duplicates += 1
                    return
                if last >= 0 and n > last + 1 and counted:
                    self.counters.presence_skipped += n - last - 1
                seen[sender] = n
            if not counted:
                return  # sent outside the measured window (settling, or an earlier step)
            self.counters.presence_received += 1
            self.presence.latency.append(now - t)
            self.presence.at.append(now - self.start)
            second = int(now - self.start)
            per_s = self.presence_received_per_s
            per_s[second] = per_s.get(second, 0) + 1
        elif kind == modes.OP:
            seq = event[1]
            assert isinstance(seq, int)
            if not self._see_seq(conn, seq):
                return
            if event[2] == conn.member.index:
                # Our own batch, in the stream a resume replays: it was committed, and its
                # ack was lost with the old connection.
                n = event[4]
                if isinstance(n, int):
                    self._acked(conn, n, now)
                return
            t = event[3]
            if isinstance(t, float) and not self.window[0] <= t < self.window[1]:
                return  # sent outside the measured window
            self.counters.ops_received += 1
            if isinstance(t, float):
                self.ops.latency.append(now - t)
                self.ops.at.append(now - self.start)
        elif kind == modes.ACK:
            n = event[1]
            assert isinstance(n, int)
            seq = event[2]
            # A duplicate ack answers a re-sent batch with its original (older) seq.
            if isinstance(seq, int) and event[3] is not True:
                self._see_seq(conn, seq)
            self._acked(conn, n, now)
        elif kind == modes.READY:
            seq = event[1]
            assert isinstance(seq, int)
            if conn.resuming:
                conn.resuming = False
                if event[2] is True:
                    # The batches after our last seq follow: ordering continues from ours.
                    self.counters.resumes += 1
                else:
                    conn.last_seq = seq  # a fresh snapshot: start over from its seq
                    self.counters.resyncs += 1
                # Batches sent before the old connection went away may or may not have
                # been committed: send them again with the same op ids (never applied
                # twice: the server answers a duplicate with its original seq).
                client = conn.client
                for n, sent_at in sorted(conn.pending_ops.items()):
                    if client is not None:
                        client.send_text(self.mode.op(conn.member, n, sent_at))
            else:
                conn.last_seq = seq
            conn.joined = True
            if conn.ready is not None and not conn.ready.done():
                conn.ready.set_result(None)
        elif kind == modes.RESYNC:
            seq = event[1]
            assert isinstance(seq, int)
            conn.last_seq = seq
        elif kind == modes.REJECT:
            n = event[1]
            if isinstance(n, int) and conn.pending_ops.pop(n, None) is not None:
                self.counters.ops_rejected += 1
            self._note(f"op rejected: {event[2]}")
        elif kind == modes.ERROR:
            self._note(f"server error: {event[1]}")
        elif kind == modes.REPLY:
            frame = event[1]
            if conn.client is not None and isinstance(frame, bytes):
                conn.client.send_text(frame)

    def _acked(self, conn: Conn, n: int, now: float) -> None:
        sent_at = conn.pending_ops.pop(n, None)
        if sent_at is None:
            return  # not ours, or already counted (a duplicate ack after a resume)
        if not self.window[0] <= sent_at < self.window[1]:
            return  # sent outside the measured window
        self.counters.ops_acked += 1
        self.counters.expected_op_deliveries += conn.member.room_size - 1
        self.acks.latency.append(now - sent_at)
        self.acks.at.append(now - self.start)
        second = int(now - self.start)
        self.ops_acked_per_s[second] = self.ops_acked_per_s.get(second, 0) + 1

    def _see_seq(self, conn: Conn, seq: int) -> bool:
        """Track the room's order as this member sees it; False for a duplicate."""
        last = conn.last_seq
        if last < 0:
            conn.last_seq = seq
            return True
        if seq <= last:
            self.counters.ops_duplicates += 1
            return False
        if seq > last + 1:
            self.counters.ops_gaps += seq - last - 1
        conn.last_seq = seq
        return True

    def on_close(self, conn: Conn, code: int | None, reason: str) -> None:
        was_held = conn.held
        if was_held:
            self.counters.connections_held -= 1
        conn.held = conn.joined = False
        conn.client = None
        if conn.ready is not None and not conn.ready.done():
            conn.ready.set_exception(
                ConnectionError(f"closed with {code} {reason!r} before joining")
            )
        if was_held and not conn.closing:
            self.counters.disconnects += 1
            key = str(code)
            self.close_codes[key] = self.close_codes.get(key, 0) + 1
            self._note(f"closed by the server: {code} {reason}"[:200])
            if self.running and self.plan.reconnect:
                # As a client would: come back after a moment and resume.
                loop = asyncio.get_running_loop()
                loop.call_later(0.5 + random.random() / 2, self._reopen, conn)

    def _reopen(self, conn: Conn) -> None:
        if not self.running or conn.client is not None:
            return
        task = asyncio.get_running_loop().create_task(self.open(conn, resume=True))
        self.reopening.add(task)
        task.add_done_callback(self.reopening.discard)

    def _note(self, error: str) -> None:
        if len(self.errors) < 20 and error not in self.errors:
            self.errors.append(error)

    # Connecting.

    async def open(self, conn: Conn, resume: bool = False) -> bool:
        """Connect and join; ``resume``: send the last seq seen, as a reconnecting client
        does, so the server sends exactly the batches missed meanwhile."""
        member = conn.member
        began = time.perf_counter()
        conn.closing = False
        conn.joined = False
        last_seq = conn.last_seq if resume and conn.last_seq >= 0 else None
        conn.resuming = last_seq is not None
        if last_seq is None:
            conn.last_seq = -1
        conn.ready = asyncio.get_running_loop().create_future()
        generation = conn.generation = conn.generation + 1

        # Frames and closes of a connection the member has replaced are ignored.
        def on_text(data: bytes) -> None:
            if conn.generation == generation:
                conn.on_text(data)

        def on_close(code: int | None, reason: str) -> None:
            if conn.generation == generation:
                conn.on_close(code, reason)

        try:
            conn.client = await connect(
                self.mode.url(member),
                on_text,
                on_close,
                compression=self.plan.compression,
                headers=self.mode.headers(member),
                open_timeout=self.plan.connect_timeout,
            )
            for frame in self.mode.hello(member, last_seq):
                conn.client.send_text(frame)
            await asyncio.wait_for(conn.ready, self.plan.connect_timeout)
        except (TimeoutError, OSError, ConnectionError, Exception) as exc:
            self.counters.connect_failures += 1
            self._note(f"connect: {type(exc).__name__}: {exc}"[:300])
            if conn.client is not None:
                conn.closing = True
                conn.client.abort()
                conn.client = None
            return False
        self.counters.connections_opened += 1
        self.counters.connections_held += 1
        conn.held = True
        took = [time.perf_counter() - began]
        self.connect_hist.record_many(took)
        if self.running:
            self.reconnect_hist.record_many(took)
        return True

    async def open_all(self, conns: list[Conn] | None = None, resume: bool = False) -> None:
        gate = asyncio.Semaphore(self.plan.connect_concurrency)

        async def one(conn: Conn) -> None:
            async with gate:
                await self.open(conn, resume)

        await asyncio.gather(*(one(c) for c in (self.conns if conns is None else conns)))

    # Sending.

    async def schedule(self, step: StepPlan) -> None:
        """Send everything on the step's timetable, from its start to the end of its
        measured window; only sends due inside the window are counted."""
        rng = random.Random(self.plan.index)
        heap: list[tuple[float, int, int]] = []
        begin, measure_from, until = step.start, self.window[0], self.window[1]
        for i in range(len(self.conns)):
            if step.presence_rate > 0:
                heap.append((begin + rng.random() / step.presence_rate, PRESENCE_KIND, i))
            if step.op_rate > 0:
                heap.append((begin + rng.random() / step.op_rate, OP_KIND, i))
        heapq.heapify(heap)
        presence_period = 1.0 / step.presence_rate if step.presence_rate > 0 else 0.0
        op_period = 1.0 / step.op_rate if step.op_rate > 0 else 0.0
        mode = self.mode
        counters = self.counters
        lag_samples = self.lag_samples
        sent_per_s = self.presence_sent_per_s
        while heap:
            now = time.time()
            due = heap[0][0]
            if due >= until:
                break  # the timetable is ordered: nothing else falls in the window
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Everything already due goes out now, in timetable order.
            while heap and heap[0][0] <= now:
                due, kind, i = heapq.heappop(heap)
                if due >= until:
                    heap.clear()
                    break
                conn = self.conns[i]
                client = conn.client
                measured = due >= measure_from
                if measured:
                    lag_samples.append(now - due)
                if kind == PRESENCE_KIND:
                    heapq.heappush(heap, (due + presence_period, kind, i))
                    if client is None or not conn.joined:
                        continue
                    conn.n_presence += 1
                    client.send_text(mode.presence(conn.member, conn.n_presence, due))
                    if measured:
                        counters.presence_sent += 1
                        counters.expected_presence_deliveries += conn.member.room_size - 1
                        second = int(due - measure_from)
                        sent_per_s[second] = sent_per_s.get(second, 0) + 1
                else:
                    heapq.heappush(heap, (due + op_period, kind, i))
                    if client is None or not conn.joined:
                        continue
                    conn.n_op += 1
                    conn.pending_ops[conn.n_op] = due
                    client.send_text(mode.op(conn.member, conn.n_op, due))
                    if measured:
                        counters.ops_sent += 1
            # Let receiving run between bursts even when the timetable is behind.
            await asyncio.sleep(0)

    async def churn(self, step: StepPlan) -> None:
        """Close and reopen random members at ``churn_rate`` per second (open loop)."""
        period = 1.0 / step.churn_rate
        rng = random.Random(1000 + self.plan.index)
        due = step.start + rng.random() * period
        until = self.window[1]
        tasks: set[asyncio.Task[bool]] = set()
        while due < until:
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            due += period
            conn = rng.choice(self.conns)
            if conn.client is None:
                continue
            conn.closing = True
            conn.client.close()
            conn.client = None
            if conn.held:
                conn.held = conn.joined = False
                self.counters.connections_held -= 1
            task = asyncio.create_task(self.open(conn, resume=True))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # Reporting.

    def flush(self) -> None:
        self.presence.flush()
        self.ops.flush()
        self.acks.flush()
        if self.lag_samples:
            self.lag.record_many(self.lag_samples)
            self.counters.send_lag_max_us = self.lag.max_us
            self.lag_samples = []

    def progress(self) -> Progress:
        self.flush()
        return Progress(
            worker=self.plan.index,
            phase=self.phase,
            counters=msgspec.structs.replace(self.counters),
            presence=self.presence.take_interval(),
            ops=self.ops.take_interval(),
            acks=self.acks.take_interval(),
            frames=self.frames,
            pending_ops=sum(len(c.pending_ops) for c in self.conns),
        )

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.plan.progress_interval)
            self.send_message(self.progress())

    def result(self) -> Result:
        self.flush()
        return Result(
            worker=self.plan.index,
            step=self.step_number,
            counters=self.counters,
            close_codes=self.close_codes,
            presence=self.presence.total.to_sparse(),
            ops=self.ops.total.to_sparse(),
            acks=self.acks.total.to_sparse(),
            connect=self.connect_hist.to_sparse(),
            reconnect=self.reconnect_hist.to_sparse(),
            lag=self.lag.to_sparse(),
            presence_timeline=self.presence.timeline.to_sparse(),
            ops_timeline=self.ops.timeline.to_sparse(),
            acks_timeline=self.acks.timeline.to_sparse(),
            presence_sent_per_s=self.presence_sent_per_s,
            presence_received_per_s=self.presence_received_per_s,
            ops_acked_per_s=self.ops_acked_per_s,
            held_at_end=self.held_at_end,
            cpu_seconds=self.cpu_seconds,
            errors=self.errors,
        )

    async def run(self, next_command: Callable[[], Command]) -> None:
        """Connect everyone, then run the parent's steps until it says stop."""
        reporter = asyncio.create_task(self.report_progress())
        try:
            await self.open_all()
            self.phase = "ready"
            self.send_message(self.progress())
            while True:
                command = await asyncio.to_thread(next_command)
                if isinstance(command, StopPlan):
                    break
                if isinstance(command, ReconnectPlan):
                    await self.reconnect()
                    self.send_message(
                        Reconnected(
                            worker=self.plan.index,
                            step=command.number,
                            held=self.counters.connections_held,
                        )
                    )
                    continue
                await self.step(command)
                self.send_message(self.result())
                self.reset()
                self.phase = "ready"
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            self.phase = "done"
            for conn in self.conns:
                if conn.client is not None:
                    conn.closing = True
                    conn.client.close()

    async def reconnect(self) -> None:
        """As a client would: members the server closed since the last step come back (and
        resume). The parent waits for every worker to have done so before it times a step:
        a reconnect storm (a huge room's joins) must not eat into the step's timetable."""
        missing = [c for c in self.conns if c.client is None]
        if missing:
            self.phase = "reconnecting"
            await self.open_all(missing, resume=True)
            self.phase = "ready"

    async def step(self, step: StepPlan) -> None:
        self.step_number = step.number
        await self.reconnect()  # normally done already (ReconnectPlan): then nothing to do
        self.start = step.start + step.settle
        self.window = (self.start, self.start + step.duration)
        delay = step.start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.phase = "running"
        self.running = True
        jobs = [self.schedule(step), self.measure_cpu()]
        if step.churn_rate > 0:
            jobs.append(self.churn(step))
        await asyncio.gather(*jobs)
        self.held_at_end = self.counters.connections_held
        self.phase = "draining"
        await self.drain(self.window[1] + step.drain)
        self.running = False

    async def measure_cpu(self) -> None:
        """This process's CPU time over the measured window (ends with the window)."""
        delay = self.window[0] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        before = time.process_time()
        delay = self.window[1] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.cpu_seconds = time.process_time() - before

    async def drain(self, deadline: float) -> None:
        """Keep receiving until the deadline: deliveries of the last sends are in flight.

        A worker cannot know what other processes still expect, so it waits the whole drain.
        """
        delay = deadline - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


def worker_main(plan_bytes: bytes, queue: Any, commands: Any) -> None:
    """Process entry point (spawned by the runner): results go to ``queue``, commands
    (msgpack ``StepPlan``/``StopPlan``) come from ``commands``."""
    plan = msgspec.msgpack.decode(plan_bytes, type=WorkerPlan)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(Command)

    def send(message: Message) -> None:
        queue.put(encoder.encode(message))

    def next_command() -> Command:
        return decoder.decode(commands.get())

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    try:
        runner(Worker(plan, send).run(next_command))
    except Exception as exc:
        send(Failed(worker=plan.index, error=f"{type(exc).__name__}: {exc}"))
        raise
