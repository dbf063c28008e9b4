"""A Redis Cluster of the test's own on loopback ports (issue #15).

Three masters and three replicas of Debian's ``redis-server`` (7.0+, for sharded pub/sub),
joined with ``redis-cli --cluster create``, with a short ``cluster-node-timeout`` so that a
killed master's replica is promoted within a couple of seconds. Everything lives in one
temporary directory and is killed and deleted by ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from tests.support import eventually, free_port, reachable

# How long a node may be silent before the others call it failed: a master killed with -9 is
# replaced by its replica within about this plus the election (~1 s).
NODE_TIMEOUT_MS = 1000


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        raise RuntimeError(
            f"{name} (Debian's redis-server 7+) is needed for the cluster tests: "
            "`./run setup` installs it"
        )
    return found


@dataclass
class Node:
    port: int
    bus_port: int  # set explicitly: the default port + 10000 may be taken or out of range
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class ClusterNode:
    """One line of CLUSTER NODES."""

    id: str
    port: int
    master: bool
    failed: bool
    master_id: str
    slots: int


class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each, all on 127.0.0.1."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.masters = masters
        self.replicas = replicas
        self.dir = Path(tempfile.mkdtemp(prefix="bt-cluster-"))
        self.nodes = [Node(free_port(), free_port()) for _ in range(masters * (1 + replicas))]
        self.slots: list[tuple[int, int, int]] = []  # (first, last, master port), cached

    @property
    def url(self) -> str:
        """The Blendtune URL: every node is a seed, so start-up works with any of them down."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def _spawn(self, node: Node) -> None:
        node.proc = subprocess.Popen(
            [
                binary("redis-server"),
                *("--port", str(node.port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-port", str(node.bus_port)),
                *("--cluster-config-file", str(self.dir / f"nodes-{node.port}.conf")),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                # Without persistence a restarted master would come back empty; nothing here
                # restarts one (a killed master stays dead), and Blendtune keeps nothing in
                # Redis that must survive.
                *("--save", "", "--appendonly", "no"),
                # Replicas sync at once (not after the default 5 s delay), and may always be
                # promoted: a master killed moments after start-up still fails over.
                *("--repl-diskless-sync-delay", "0"),
                *("--cluster-replica-validity-factor", "0"),
                *("--dir", str(self.dir), "--logfile", str(self.dir / f"{node.port}.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start the nodes and join them; on failure nothing is left running."""
        try:
            await self._start()
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:

            async def up(node: Node = node) -> bool:
                if not node.alive:
                    raise RuntimeError(f"redis-server on {node.port} exited:\n{self.log()}")
                return await asyncio.to_thread(reachable, "127.0.0.1", node.port)

            await eventually(up, within=10, what=f"redis-server on {node.port}")
        await self.cli(
            "--cluster",
            "create",
            *(node.address for node in self.nodes),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        )
        await self.wait_healthy()
        await eventually(self._replicas_synced, what="the replicas in sync")
        await self.refresh_slots()

    async def _replicas_synced(self) -> bool:
        replicas = [n for n in await self.topology() if not n.master]
        for replica in replicas:
            client = _client(replica.port)
            try:
                info = await client.info("replication")
            finally:
                await client.aclose()
            if info.get("master_link_status") != "up":
                return False
        return len(replicas) == self.masters * self.replicas

    async def cli(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            binary("redis-cli"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        text = out.decode(errors="replace")
        if process.returncode != 0 or "[ERR]" in text:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed:\n{text[-3000:]}")
        return text

    async def topology(self) -> list[ClusterNode]:
        """CLUSTER NODES as seen by the first live node."""
        for node in self.nodes:
            if not node.alive:
                continue
            client = _client(node.port)
            # The raw text: redis-py's parsed form drops the slots being migrated.
            client.set_response_callback("CLUSTER NODES", lambda response, **_: response)
            try:
                raw = await client.cluster("nodes")
            except (aioredis.RedisError, OSError):
                continue
            finally:
                await client.aclose()
            return [_parse_line(line) for line in raw.decode().splitlines() if line.strip()]
        raise RuntimeError("no live cluster node")

    async def healthy(self) -> bool:
        """Every live node says cluster_state:ok and agrees that the live masters hold all
        16384 slots."""
        for node in self.nodes:
            if not node.alive:
                continue
            client = _client(node.port)
            try:
                info = await client.cluster("info")
            except (aioredis.RedisError, OSError):
                return False
            finally:
                await client.aclose()
            if info.get("cluster_state") != "ok":
                return False
        live = {node.port for node in self.nodes if node.alive}
        masters = [n for n in await self.topology() if n.master and not n.failed]
        return sum(n.slots for n in masters if n.port in live) == 16384

    async def wait_healthy(self, within: float = 30.0) -> None:
        await eventually(self.healthy, within=within, what="a healthy cluster")

    async def refresh_slots(self) -> None:
        """Re-read the slot map that ``slot_owner`` and ``first_slots`` answer from."""
        client = _client(self._any_live().port)
        try:
            shards = await client.cluster("slots")
        finally:
            await client.aclose()
        self.slots = sorted((int(s[0]), int(s[1]), int(s[2][1])) for s in shards)

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving ``slot`` (as of the last ``refresh_slots``)."""
        return next(port for first, last, port in self.slots if first <= slot <= last)

    def first_slots(self, port: int, count: int) -> set[int]:
        """The ``count`` lowest slots of a master: those ``reshard`` moves first."""
        owned = [s for first, last, p in self.slots if p == port for s in range(first, last + 1)]
        return set(owned[:count])

    async def master_of(self, slot: int) -> ClusterNode:
        await self.refresh_slots()
        port = self.slot_owner(slot)
        return next(n for n in await self.topology() if n.port == port)

    async def shard_subscribers(self, port: int, channel: str) -> int:
        """PUBSUB SHARDNUMSUB on one node: its connections subscribed to ``channel``."""
        client = _client(port)
        try:
            reply = await client.pubsub_shardnumsub(channel)
        finally:
            await client.aclose()
        return int(dict(reply)[channel.encode()])

    async def commandstats(self, port: int) -> dict[str, dict[str, int]]:
        """INFO commandstats of one node: command name -> {"calls": ..., ...}."""
        client = _client(port)
        try:
            info = await client.info("commandstats")
        finally:
            await client.aclose()
        return {name.removeprefix("cmdstat_"): value for name, value in info.items()}

    def _any_live(self) -> Node:
        return next(node for node in self.nodes if node.alive)

    def kill(self, port: int) -> None:
        """SIGKILL one node: no goodbye to the cluster, its replica has to notice."""
        node = next(n for n in self.nodes if n.port == port)
        if node.proc is not None:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()
            node.proc = None

    async def reshard(self, source: ClusterNode, target: ClusterNode, slots: int) -> str:
        """Move ``slots`` slots (with their keys) from one master to another, live."""
        return await self.cli(
            "--cluster",
            "reshard",
            self._any_live().address,
            *("--cluster-from", source.id, "--cluster-to", target.id),
            *("--cluster-slots", str(slots), "--cluster-yes"),
            *("--cluster-pipeline", "100"),
        )

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                node.proc.kill()
                node.proc.wait()
                node.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                text = (self.dir / f"{node.port}.log").read_text(errors="replace")
                parts.append(f"--- {node.port}\n{text[-1500:]}")
        return "\n".join(parts)


def _client(port: int) -> aioredis.Redis:
    return aioredis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)


def _parse_line(line: str) -> ClusterNode:
    # <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot> ...
    fields = line.split()
    flags = fields[2].split(",")
    slots = 0
    for item in fields[8:]:
        if item.startswith("["):
            continue  # a slot being migrated or imported
        start, _, end = item.partition("-")
        slots += int(end or start) - int(start) + 1
    return ClusterNode(
        id=fields[0],
        port=int(fields[1].split("@")[0].rsplit(":", 1)[1]),
        master="master" in flags,
        failed="fail" in flags or "fail?" in flags,
        master_id=fields[3],
        slots=slots,
    )
