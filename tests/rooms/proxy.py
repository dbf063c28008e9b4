"""A TCP forwarder for fault tests: cut every connection through it and refuse new ones, or
stall (accept and hold everything, as a hung server does)."""

from __future__ import annotations

import asyncio


class Proxy:
    """A TCP proxy (in front of PostgreSQL or Redis) that can cut every connection and refuse
    new ones, or stall: connections stay open and are accepted, but nothing is forwarded."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.up = True
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def cut(self) -> None:
        self.up = False
        for writer in list(self.writers):
            writer.transport.abort()

    async def stop(self) -> None:
        self.resume()
        self.cut()
        if self.server is not None:
            self.server.close()


def database_url_through(proxy: Proxy, database_url: str) -> str:
    """``database_url`` reaching PostgreSQL through ``proxy`` (which must point at it)."""
    url = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != database_url, "this test needs PostgreSQL on 127.0.0.1:5432"
    return url
