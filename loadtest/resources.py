"""Server CPU and memory while a run is under way, where this machine can see them.

For every URL whose host is this machine, the processes listening on its port (and their
children: uvicorn workers) are sampled with psutil once a second; ``watch_ports`` adds
others (Redis), ``watch_pids`` any process by id (PostgreSQL backends). Processes of other
machines are simply not reported. Each CPU of the machine is sampled too: a busy core that
none of the watched processes account for is someone else's load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import psutil

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


class ProcessUsage(msgspec.Struct, frozen=True):
    pid: int
    name: str
    port: int  # 0: watched by pid
    cpu_mean_pct: float  # percent of one core, averaged over the run
    cpu_max_pct: float
    rss_max_mib: float
    rss_start_mib: float


def local_port(url: str) -> int | None:
    parts = urlsplit(url)
    if (parts.hostname or "") not in LOCAL_HOSTS:
        return None
    return parts.port or (443 if parts.scheme in ("https", "wss") else 80)


def listeners(port: int) -> list[psutil.Process]:
    """Processes listening on ``port`` here, plus their children."""
    found: dict[int, psutil.Process] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return []
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(c.pid)
                found[process.pid] = process
                for child in process.children(recursive=True):
                    found[child.pid] = child
    return list(found.values())


class Sampler:
    """Samples CPU and RSS of the server processes on a background thread."""

    def __init__(
        self,
        urls: Iterable[str],
        watch_ports: Iterable[int] = (),
        watch_pids: Mapping[str, int] | None = None,
    ) -> None:
        ports = {p for p in (local_port(u) for u in urls) if p is not None}
        self.watch_ports = set(watch_ports) - ports
        ports.update(watch_ports)
        self.procs: list[tuple[int, psutil.Process]] = []
        self.labels: dict[int, str] = {}
        seen: set[int] = set()
        for port in sorted(ports):
            for process in listeners(port):
                if process.pid not in seen:
                    seen.add(process.pid)
                    self.procs.append((port, process))
        for label, pid in (watch_pids or {}).items():
            with contextlib.suppress(psutil.Error):
                if pid not in seen:
                    seen.add(pid)
                    self.procs.append((0, psutil.Process(pid)))
                    self.labels[pid] = label
        # (time, percent busy of each CPU since the previous sample)
        self.cpus: list[tuple[float, list[float]]] = []
        # (time, CPU percent since the previous sample, RSS MiB) per process
        self.samples: dict[int, list[tuple[float, float, float]]] = {
            p.pid: [] for _, p in self.procs
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rss_start: dict[int, float] = {}

    def start(self) -> None:
        psutil.cpu_percent(None, percpu=True)  # prime, like the processes
        for _, process in self.procs:
            with contextlib.suppress(psutil.Error):
                process.cpu_percent(None)  # prime: the next call measures from now
                self._rss_start[process.pid] = process.memory_info().rss / 2**20
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            self.cpus.append((now, psutil.cpu_percent(None, percpu=True)))
            for _, process in self.procs:
                with contextlib.suppress(psutil.Error):
                    sample = (now, process.cpu_percent(None), process.memory_info().rss / 2**20)
                    self.samples[process.pid].append(sample)

    def stop(self, window: tuple[float, float] | None = None) -> list[ProcessUsage]:
        """Stop sampling; usage per process over ``window`` (unix times; None: all)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)
        return self.usage(window)

    def usage(self, window: tuple[float, float] | None = None) -> list[ProcessUsage]:
        """Usage per process, over the samples that fall in ``window`` (unix times); the
        sampling goes on."""
        usage = []
        for port, process in self.procs:
            samples = _within(list(self.samples[process.pid]), window)
            cpu = [s[1] for s in samples]
            rss = [s[2] for s in samples]
            try:
                name = self.labels.get(process.pid) or (
                    " ".join(process.cmdline()[:4])[:80] or process.name()
                )
            except psutil.Error:
                name = "?"
            usage.append(
                ProcessUsage(
                    pid=process.pid,
                    name=name,
                    port=port,
                    cpu_mean_pct=round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
                    cpu_max_pct=round(max(cpu), 1) if cpu else 0.0,
                    rss_max_mib=round(max(rss), 1) if rss else 0.0,
                    rss_start_mib=round(self._rss_start.get(process.pid, 0.0), 1),
                )
            )
        return usage

    def cpu_busy(self, window: tuple[float, float] | None = None) -> list[float]:
        """Mean percent busy of each CPU of the machine over ``window``, whoever used it."""
        samples = _within(list(self.cpus), window)
        if not samples:
            return []
        return [
            round(sum(s[1][i] for s in samples) / len(samples), 1)
            for i in range(len(samples[0][1]))
        ]

    def watch(self, label: str, pid: int) -> None:
        """Sample one more process from now on (e.g. a database backend opened later)."""
        if pid in self.samples:
            return
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            process.cpu_percent(None)
            self.samples[pid] = []
            self.labels[pid] = label
            self.procs.append((0, process))

    @property
    def found(self) -> int:
        return len(self.procs)

    def profile(self, prefix: str, seconds: float) -> list[tuple[str, subprocess.Popen[bytes]]]:
        """Start ``py-spy record`` on every server process (not on watched extras such as
        Redis, which py-spy cannot read); returns (output path, py-spy process) pairs."""
        exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(exe):
            return []
        started = []
        for port, process in self.procs:
            if port in self.watch_ports:
                continue
            path = f"{prefix}-{port}-{process.pid}.txt"
            command = [exe, "record", "--pid", str(process.pid), "--duration"]
            command += [str(max(1, int(seconds))), "--format", "raw", "--output", path]
            command += ["--nonblocking", "--rate", "100"]
            started.append(
                (
                    path,
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                )
            )
        return started


Sample = TypeVar("Sample", bound=tuple[Any, ...])  # (time, ...)


def _within(samples: list[Sample], window: tuple[float, float] | None) -> list[Sample]:
    """The samples that fall in ``window``: a sample covers the second before it was taken."""
    if window is None:
        return samples
    return [s for s in samples if window[0] + 0.5 <= s[0] <= window[1] + 0.5]
