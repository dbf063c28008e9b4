"""Taste sources: provider connections, imported top tracks and the member's own catalog plays.

Scores follow docs/blends.md: an entry's score is ``SOURCE_WEIGHTS[source] * rank_weight(rank)``
where rank is the position in a provider's top list for that time range, or the position in
the member's own plays of catalog tracks ordered by play count.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from db.pool import Connection
from db.rows import returned, row_as, rows_as
from server.blends import schemas
from server.blends.crypto import TokenCipher, associated_data
from server.blends.weave import SOURCE_WEIGHTS, MemberTaste, TasteEntry, rank_weight

# Catalog plays beyond this many per member add little and cost a weave time.
MAX_PLAYS_PER_MEMBER = 100

_CONNECTION_COLUMNS = """
    provider::text AS provider, provider_user_id,
    refresh_token_encrypted IS NOT NULL AS has_refresh_token, token_expires_at,
    provider_metadata AS metadata, last_sync_at, created_at, updated_at
"""


def connection_view(row: asyncpg.Record) -> schemas.Connection:
    return row_as(schemas.Connection, row, json=("metadata",))


async def upsert_connection(
    conn: Connection,
    cipher: TokenCipher,
    user_id: uuid.UUID,
    provider: str,
    body: schemas.ConnectProvider,
) -> schemas.Connection:
    ad = associated_data(user_id, provider)
    access = cipher.encrypt(body.access_token, ad)
    refresh = cipher.encrypt(body.refresh_token, ad) if body.refresh_token else None
    row = await conn.fetchrow(
        f"""
        INSERT INTO provider_connections AS c (user_id, provider, provider_user_id,
            access_token_encrypted, refresh_token_encrypted, token_expires_at, provider_metadata)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
        ON CONFLICT (user_id, provider) DO UPDATE SET
            provider_user_id = EXCLUDED.provider_user_id,
            access_token_encrypted = EXCLUDED.access_token_encrypted,
            refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
            token_expires_at = EXCLUDED.token_expires_at,
            provider_metadata = EXCLUDED.provider_metadata,
            updated_at = now()
        RETURNING {_CONNECTION_COLUMNS}
        """,
        user_id,
        provider,
        body.provider_user_id,
        access,
        refresh,
        body.token_expires_at,
        msgspec.json.encode(body.metadata).decode(),
    )
    return connection_view(returned(row))


async def list_connections(conn: Connection, user_id: uuid.UUID) -> list[schemas.Connection]:
    rows = await conn.fetch(
        f"SELECT {_CONNECTION_COLUMNS} FROM provider_connections WHERE user_id = $1"
        " ORDER BY provider",
        user_id,
    )
    return [connection_view(r) for r in rows]


async def provider_tokens(
    conn: Connection, cipher: TokenCipher, user_id: uuid.UUID, provider: str
) -> tuple[str, str | None] | None:
    """The decrypted (access, refresh) tokens, for server-side provider calls only."""
    row = await conn.fetchrow(
        "SELECT access_token_encrypted, refresh_token_encrypted FROM provider_connections"
        " WHERE user_id = $1 AND provider = $2",
        user_id,
        provider,
    )
    if row is None:
        return None
    ad = associated_data(user_id, provider)
    refresh = row["refresh_token_encrypted"]
    return (
        cipher.decrypt(bytes(row["access_token_encrypted"]), ad),
        cipher.decrypt(bytes(refresh), ad) if refresh is not None else None,
    )


async def delete_connection(conn: Connection, user_id: uuid.UUID, provider: str) -> bool:
    """Forget a connection (its top tracks go with it); whether there was one."""
    gone = await conn.fetchval(
        "DELETE FROM provider_connections WHERE user_id = $1 AND provider = $2 RETURNING id",
        user_id,
        provider,
    )
    return gone is not None


async def connection_id(conn: Connection, user_id: uuid.UUID, provider: str) -> uuid.UUID | None:
    value: uuid.UUID | None = await conn.fetchval(
        "SELECT id FROM provider_connections WHERE user_id = $1 AND provider = $2",
        user_id,
        provider,
    )
    return value


async def replace_top_tracks(
    conn: Connection, connection: uuid.UUID, time_range: str, tracks: Sequence[schemas.TopTrackIn]
) -> None:
    await conn.execute(
        "DELETE FROM user_top_tracks WHERE connection_id = $1 AND time_range = $2",
        connection,
        time_range,
    )
    await conn.executemany(
        """
        INSERT INTO user_top_tracks (connection_id, track_id, track_name, artist_name,
            album_name, album_art_url, duration_ms, isrc, time_range, rank)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """,
        [(connection, *t.columns(), time_range, rank) for rank, t in enumerate(tracks, start=1)],
    )
    await conn.execute(
        "UPDATE provider_connections SET last_sync_at = now(), updated_at = now() WHERE id = $1",
        connection,
    )


async def top_tracks(
    conn: Connection, connection: uuid.UUID, time_range: str
) -> list[schemas.TopTrack]:
    rows = await conn.fetch(
        """
        SELECT rank, time_range::text AS time_range, track_id, track_name AS name,
               artist_name AS artist, album_name AS album, album_art_url, duration_ms, isrc,
               fetched_at
        FROM user_top_tracks WHERE connection_id = $1 AND time_range = $2 ORDER BY rank
        """,
        connection,
        time_range,
    )
    return rows_as(schemas.TopTrack, rows)


async def load_tastes(conn: Connection, member_ids: Sequence[uuid.UUID]) -> list[MemberTaste]:
    """Every member's taste entries, in ``member_ids`` order."""
    entries: dict[uuid.UUID, list[TasteEntry]] = {m: [] for m in member_ids}
    top = await conn.fetch(
        """
        SELECT c.user_id, c.provider::text AS source, t.time_range::text AS time_range,
               t.rank, t.track_id, t.track_name AS name, t.artist_name AS artist,
               t.album_name AS album, t.album_art_url, t.duration_ms, t.isrc
        FROM user_top_tracks t JOIN provider_connections c ON c.id = t.connection_id
        WHERE c.user_id = ANY($1::uuid[])
        ORDER BY c.user_id, c.provider, t.time_range, t.rank
        """,
        list(member_ids),
    )
    for r in top:
        entries[r["user_id"]].append(
            row_as(
                TasteEntry,
                r,
                extra={"score": SOURCE_WEIGHTS[r["time_range"]] * rank_weight(r["rank"])},
            )
        )
    plays = await conn.fetch(
        """
        SELECT user_id, rank, id::text AS track_id, title AS name, artist,
               cover_art_url AS album_art_url, duration * 1000 AS duration_ms, isrc,
               'catalog' AS source
        FROM (
            SELECT p.user_id, tr.id, tr.title, coalesce(tr.artist, '') AS artist,
                   tr.cover_art_url, tr.duration, tr.isrc,
                   row_number() OVER (PARTITION BY p.user_id
                                      ORDER BY p.play_count DESC, p.last_played_at DESC, tr.id)
                       AS rank
            FROM track_plays p JOIN tracks tr ON tr.id = p.track_id
            WHERE p.user_id = ANY($1::uuid[]) AND p.play_count > 0
        ) ranked
        WHERE rank <= $2
        ORDER BY user_id, rank
        """,
        list(member_ids),
        MAX_PLAYS_PER_MEMBER,
    )
    for r in plays:
        entries[r["user_id"]].append(
            row_as(
                TasteEntry,
                r,
                extra={"score": SOURCE_WEIGHTS["plays"] * rank_weight(r["rank"])},
            )
        )
    return [MemberTaste(member_id=m, entries=entries[m]) for m in member_ids]
