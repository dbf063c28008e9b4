"""The connection pool every query goes through: acquires time out and never nest.

asyncpg's ``Pool.acquire`` waits forever by default, and a task that holds a connection
while it asks for a second one can deadlock the whole process: with the pool's ten
connections held by ten such tasks, each waits for a connection that only the others can
give back, and every request behind them hangs (issue #11: ten blends woven at once did
exactly that). Two rules close this for good:

- an acquire waits at most ``timeout`` seconds, then raises ``TimeoutError``, which the REST
  layer answers with ``503 unavailable`` (server/problems.py), so a pool under pressure sheds
  load instead of hanging;
- a task that already holds a connection from this pool and asks for another gets
  ``NestedAcquire`` at once. It is a programming error (pass the connection you hold, or
  let go of it first), and failing loudly in every test beats a deadlock under load.

The check is per task: a task spawned while its parent holds a connection may acquire its
own (it does not wait on the parent).

On release, asyncpg resets the session (``CLOSE ALL; UNLISTEN *; RESET ALL;
pg_advisory_unlock_all()``): one more round trip on every release, which the rooms
committer, releasing after every group commit, waits for. A holder that changed no session
state (plain statements and transactions only: no ``SET``, ``LISTEN``, advisory lock or
cursor left open) acquires with ``clean=True`` (or ``acquire_clean``) and its release skips
the reset query. An open transaction is still rolled back in both cases (asyncpg does that
before calling ``reset``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# Set while a ``clean`` holder releases its connection: ``reset`` skips the reset query.
_clean_release: ContextVar[bool] = ContextVar("blendtune_pool_clean_release", default=False)

# The task that holds a connection in the current context (tasks inherit a copy of their
# parent's context, so the holder is compared with the current task, not just set or not).
_holder: ContextVar[asyncio.Task[Any] | None] = ContextVar("blendtune_pool_holder", default=None)


#: A connection of the pool, as repositories take it (asyncpg's stubs type its methods:
#: ``fetch`` returns ``list[Record]``, never ``Any``).
if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:  # the class is not generic at run time
    Connection = PoolConnectionProxy

NESTED_MESSAGE = (
    "nested database acquire: this task already holds a pool connection; pass it along, or"
    " release it before acquiring another (nested acquires can deadlock the pool)"
)
_log = logging.getLogger("blendtune.db")


async def reset(conn: asyncpg.Connection[Any]) -> None:
    """The pool's ``reset`` (``create_pool(reset=reset)``): asyncpg's reset query, unless the
    holder declared it left the session as it found it (``Pool.acquire(clean=True)``)."""
    if _clean_release.get():
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


class NestedAcquire(RuntimeError):
    """A task asked the pool for a connection while holding one (see the module docs)."""


class Pool:
    """asyncpg's pool with an acquire timeout and the no-nesting rule; the same methods."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], acquire_timeout: float) -> None:
        self.raw = pool
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, clean: bool = False) -> _Acquire:
        """A connection; ``clean``: the holder changes no session state (see the module
        docs), so its release needs no reset query."""
        return _Acquire(self, clean)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.acquire() as conn:
            result: str = await conn.execute(query, *args)
            return result

    async def executemany(self, query: str, args: Iterable[Sequence[object]]) -> None:
        async with self.acquire() as conn:
            await conn.executemany(query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args, column=column)

    def get_size(self) -> int:
        return int(self.raw.get_size())

    def get_idle_size(self) -> int:
        return int(self.raw.get_idle_size())


class _Acquire:
    """``async with pool.acquire() as conn``; a class rather than a generator because the
    rooms committer acquires on its hot path."""

    __slots__ = ("_clean", "_conn", "_pool", "_token")

    def __init__(self, pool: Pool, clean: bool = False) -> None:
        self._pool = pool
        self._clean = clean
        self._conn: Connection | None = None
        self._token: Token[asyncio.Task[Any] | None] | None = None

    async def __aenter__(self) -> Connection:
        task = asyncio.current_task()
        if task is not None and _holder.get() is task:
            # Logged as well as raised: a broad `except Exception` on the way up must not
            # hide it (the tests look for this line in every server's log).
            _log.error("%s", NESTED_MESSAGE, stack_info=True)
            raise NestedAcquire(NESTED_MESSAGE)
        self._conn = await self._pool.raw.acquire(timeout=self._pool.acquire_timeout)
        self._token = _holder.set(task)
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._token is not None and self._conn is not None
        _holder.reset(self._token)
        if not self._clean:
            await self._pool.raw.release(self._conn)
            return
        token = _clean_release.set(True)
        try:
            await self._pool.raw.release(self._conn)
        finally:
            _clean_release.reset(token)


def acquire_clean(pool: Any) -> Any:
    """``pool.acquire(clean=True)`` for our ``Pool``; a plain acquire for any other pool
    (an asyncpg pool in tests, which resets as usual)."""
    if isinstance(pool, Pool):
        return pool.acquire(clean=True)
    return pool.acquire()
