"""The catalog in PostgreSQL: every statement of the catalog domain, typed rows out.

All SQL, and on purpose: the search is a keyset page over expression indexes and the
``tsvector`` (``build_search`` is pure; the plan test EXPLAINs what it returns), the children
are written generically from ``CHILDREN``, and a play is one upsert. Rows are converted with
``db/rows.py``; the detail's children arrive as ``jsonb`` aggregates.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast

import asyncpg
import msgspec

from db.pool import Connection
from db.rows import row_as
from server.catalog import schemas
from server.catalog.common import constraint_of, cursor_uuid, decode_cursor, encode_cursor
from server.problems import Problem

TRACK_COLUMNS: Final = """
    t.id, t.created_by, t.title, t.artist, t.duration, t.tempo, t.musical_key, t.scale,
    t.genre, t.subgenre, t.mood::text[] AS mood, t.tags::text[] AS tags, t.description,
    t.audio_filename, t.cover_art_url, t.catalog_number, t.isrc, t.release_date,
    t.popularity_score::float8 AS popularity_score, t.play_count, t.created_at, t.updated_at
"""

# The sort key of each (sort, order): NULLs sort last in both directions, so they are
# replaced by a sentinel; migrations/schema_0002_catalog.sql indexes exactly these
# expressions with the id as tiebreak.
SORT_EXPRESSIONS: Final[dict[tuple[str, str], str]] = {
    ("popularity", "asc"): "t.popularity_score",
    ("popularity", "desc"): "t.popularity_score",
    ("release_date", "asc"): "coalesce(t.release_date, DATE '9999-12-31')",
    ("release_date", "desc"): "coalesce(t.release_date, DATE '0001-01-01')",
    ("tempo", "asc"): "coalesce(t.tempo, 32767)",
    ("tempo", "desc"): "coalesce(t.tempo, -1)",
}
DEFAULT_ORDER: Final = {"popularity": "desc", "release_date": "desc", "tempo": "asc"}


def _cursor_key(sort: str, value: Any) -> Any:
    try:
        if sort == "popularity":
            return Decimal(str(value))
        if sort == "release_date":
            return dt.date.fromisoformat(str(value))
        if isinstance(value, int) and not isinstance(value, bool) and -1 <= value <= 32767:
            return value
    except (InvalidOperation, ValueError):
        pass
    raise Problem(400, "invalid_cursor", "The cursor is not valid.")


def build_search(query: schemas.TrackQuery, cursor: str | None) -> tuple[str, list[Any]]:
    """SQL and arguments for one page of a track search (limit + 1 rows)."""
    order = query.order or DEFAULT_ORDER[query.sort]
    key = SORT_EXPRESSIONS[(query.sort, order)]
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.genre is not None:
        where.append(f"t.genre = {arg(query.genre)}")
    if query.subgenre is not None:
        where.append(f"t.subgenre = {arg(query.subgenre)}")
    if query.tempo_min is not None:
        where.append(f"t.tempo >= {arg(query.tempo_min)}")
    if query.tempo_max is not None:
        where.append(f"t.tempo <= {arg(query.tempo_max)}")
    if query.musical_key is not None:
        where.append(f"t.musical_key = {arg(query.musical_key)}")
    if query.scale is not None:
        where.append(f"t.scale = {arg(query.scale)}")
    # && (overlap) and @> (contains) on the GIN-indexed arrays; the parameter has the
    # column's type so the index applies.
    if query.mood:
        op = "&&" if query.mood_match == "any" else "@>"
        where.append(f"t.mood {op} {arg(list(query.mood))}::varchar[]")
    if query.tags:
        op = "&&" if query.tags_match == "any" else "@>"
        where.append(f"t.tags {op} {arg(list(query.tags))}::varchar[]")
    if query.released_from is not None:
        where.append(f"t.release_date >= {arg(query.released_from)}")
    if query.released_to is not None:
        where.append(f"t.release_date <= {arg(query.released_to)}")
    if query.q:
        where.append(f"t.search @@ websearch_to_tsquery('simple', {arg(query.q)})")
    if query.created_by is not None:
        where.append(f"t.created_by = {arg(query.created_by)}")
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 4 or values[0] != query.sort or values[1] != order:
            raise Problem(400, "invalid_cursor", "The cursor belongs to another sort order.")
        after = _cursor_key(query.sort, values[2])
        after_id = cursor_uuid(values[3])
        op = ">" if order == "asc" else "<"
        where.append(f"({key}, t.id) {op} ({arg(after)}, {arg(after_id)})")
    direction = "ASC" if order == "asc" else "DESC"
    sql = (
        f"SELECT {TRACK_COLUMNS}, {key} AS sort_key FROM tracks t"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {key} {direction}, t.id {direction} LIMIT {arg(query.limit + 1)}"
    )
    return sql, args


def _track(row: asyncpg.Record) -> schemas.Track:
    return row_as(schemas.Track, row)


async def search(
    conn: Connection, query: schemas.TrackQuery, cursor: str | None
) -> schemas.TrackPage:
    sql, args = build_search(query, cursor)
    rows = await conn.fetch(sql, *args)
    items = [_track(r) for r in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        key = last["sort_key"]
        order = query.order or DEFAULT_ORDER[query.sort]
        if isinstance(key, dt.date):
            key = key.isoformat()
        elif isinstance(key, Decimal):
            key = str(key)
        next_cursor = encode_cursor(query.sort, order, key, last["id"])
    return schemas.TrackPage(items=items, next_cursor=next_cursor)


# ------------------------------------------------------------------------------ children


class Child(msgspec.Struct, frozen=True):
    table: str
    columns: tuple[str, ...]
    order_by: str
    incoming: type[msgspec.Struct]
    outgoing: type[msgspec.Struct]


CHILDREN: Final[dict[str, Child]] = {
    "sections": Child(
        "track_sections",
        ("section_name", "start_time", "end_time", "description"),
        "start_time, id",
        schemas.SectionIn,
        schemas.Section,
    ),
    "creators": Child(
        "track_creators",
        (
            "creator_name",
            "role",
            "ipi_number",
            "pro",
            "split_percentage",
            "contact_email",
            "contact_phone",
        ),
        "created_at, id",
        schemas.CreatorIn,
        schemas.Creator,
    ),
    "instruments": Child(
        "track_instruments",
        ("instrument_category", "instrument_type", "is_primary"),
        "is_primary DESC, created_at, id",
        schemas.InstrumentIn,
        schemas.Instrument,
    ),
    "samples": Child(
        "track_samples",
        ("sample_pack_name", "sample_description", "is_cleared", "clearance_notes"),
        "created_at, id",
        schemas.SampleIn,
        schemas.Sample,
    ),
}


def _values(child: Child, item: msgspec.Struct) -> list[Any]:
    values = [getattr(item, c) for c in child.columns]
    if child.table == "track_creators":
        split = values[4]
        values[4] = None if split is None else Decimal(str(round(split, 2)))
    return values


async def insert_children(
    conn: Connection, kind: str, track_id: uuid.UUID, items: list[Any]
) -> list[uuid.UUID]:
    child = CHILDREN[kind]
    columns = ", ".join(("track_id", *child.columns))
    params = ", ".join(f"${i + 1}" for i in range(len(child.columns) + 1))
    sql = f"INSERT INTO {child.table} ({columns}) VALUES ({params}) RETURNING id"
    ids = []
    for item in items:
        ids.append(await conn.fetchval(sql, track_id, *_values(child, item)))
    return ids


async def check_splits(conn: Connection, track_id: uuid.UUID) -> None:
    """The API's own check (the deferred trigger repeats it at commit)."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(split_percentage), 0) FROM track_creators WHERE track_id = $1",
        track_id,
    )
    if total > 100:
        raise Problem(
            409,
            "split_total_exceeded",
            f"The creators' split percentages add up to {total} %; at most 100 % is allowed.",
        )


def integrity_problem(exc: asyncpg.PostgresError) -> Problem:
    constraint = constraint_of(exc)
    if constraint == "track_creators_split_total":
        return Problem(409, "split_total_exceeded", "Creator splits may add up to 100 % at most.")
    if constraint == "tracks_audio_filename_key":
        return Problem(409, "audio_filename_taken", "Another track uses this audio_filename.")
    if constraint == "track_sections_check":
        return Problem(400, "invalid_request", "A section must end after it starts.")
    raise exc


# ------------------------------------------------------------------------------ reads


_DETAIL: Final = f"""
SELECT {TRACK_COLUMNS},
    (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.start_time, s.id), '[]')
     FROM track_sections s WHERE s.track_id = t.id) AS sections,
    (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.created_at, c.id), '[]')
     FROM track_creators c WHERE c.track_id = t.id) AS creators,
    (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.is_primary DESC, i.created_at, i.id), '[]')
     FROM track_instruments i WHERE i.track_id = t.id) AS instruments,
    (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.created_at, m.id), '[]')
     FROM track_samples m WHERE m.track_id = t.id) AS samples
FROM tracks t WHERE t.id = $1
"""


async def detail(
    conn: Connection, track_id: uuid.UUID, *, show_contacts: bool
) -> schemas.TrackDetail:
    row = await conn.fetchrow(_DETAIL, track_id)
    if row is None:
        raise Problem(404, "not_found", "No such track.")
    track = row_as(
        schemas.TrackDetail, row, json=("sections", "creators", "instruments", "samples")
    )
    if not show_contacts:
        for creator in track.creators:
            creator.contact_email = None
            creator.contact_phone = None
    return track


async def lock_track(conn: Connection, track_id: uuid.UUID) -> uuid.UUID | None:
    """Lock a track row for an edit; returns its owner. 404 if it does not exist."""
    row = await conn.fetchrow("SELECT created_by FROM tracks WHERE id = $1 FOR UPDATE", track_id)
    if row is None:
        raise Problem(404, "not_found", "No such track.")
    owner: uuid.UUID | None = row["created_by"]
    return owner


SCALAR_FIELDS: Final = (
    "title",
    "duration",
    "audio_filename",
    "artist",
    "tempo",
    "musical_key",
    "scale",
    "genre",
    "subgenre",
    "mood",
    "tags",
    "description",
    "cover_art_url",
    "catalog_number",
    "isrc",
    "release_date",
    "popularity_score",
)


async def insert_track(conn: Connection, owner: uuid.UUID, data: schemas.TrackCreate) -> uuid.UUID:
    columns = [f for f in SCALAR_FIELDS if f != "popularity_score"]
    values = [getattr(data, f) for f in columns]
    params = ", ".join(f"${i + 2}" for i in range(len(columns)))
    track_id: uuid.UUID = await conn.fetchval(
        f"INSERT INTO tracks (created_by, {', '.join(columns)}) VALUES ($1, {params}) RETURNING id",
        owner,
        *values,
    )
    for kind in CHILDREN:
        await insert_children(conn, kind, track_id, getattr(data, kind))
    return track_id


async def update_track(conn: Connection, track_id: uuid.UUID, data: schemas.TrackUpdate) -> None:
    sets: list[str] = []
    args: list[Any] = [track_id]
    for field in SCALAR_FIELDS:
        value = getattr(data, field)
        if value is msgspec.UNSET:
            continue
        if field == "popularity_score":
            value = Decimal(str(round(value, 2)))
        args.append(value)
        sets.append(f"{field} = ${len(args)}")
    sets.append("updated_at = now()")
    await conn.execute(f"UPDATE tracks SET {', '.join(sets)} WHERE id = $1", *args)
    for kind, child in CHILDREN.items():
        items = getattr(data, kind)
        if items is msgspec.UNSET:
            continue
        await conn.execute(f"DELETE FROM {child.table} WHERE track_id = $1", track_id)
        await insert_children(conn, kind, track_id, items)


async def fetch_child(conn: Connection, kind: str, child_id: uuid.UUID) -> msgspec.Struct:
    child = CHILDREN[kind]
    found = await conn.fetchval(f"SELECT to_jsonb(x) FROM {child.table} x WHERE id = $1", child_id)
    return msgspec.json.decode(found, type=child.outgoing)


async def count_play(conn: Connection, user_id: uuid.UUID, track_id: uuid.UUID) -> int | None:
    """One play of a track by a user, in one statement; None if there is no such track."""
    return cast(
        "int | None",
        await conn.fetchval(
            """
            WITH track AS (
                UPDATE tracks SET play_count = play_count + 1 WHERE id = $2 RETURNING play_count
            ), mine AS (
                INSERT INTO track_plays (user_id, track_id, play_count)
                SELECT $1, $2, 1 FROM track
                ON CONFLICT (user_id, track_id) DO UPDATE
                SET play_count = track_plays.play_count + 1, last_played_at = now()
            )
            SELECT play_count FROM track
            """,
            user_id,
            track_id,
        ),
    )


async def delete(conn: Connection, track_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM tracks WHERE id = $1", track_id)


async def touch(conn: Connection, track_id: uuid.UUID) -> None:
    await conn.execute("UPDATE tracks SET updated_at = now() WHERE id = $1", track_id)


async def delete_child(
    conn: Connection, kind: str, track_id: uuid.UUID, child_id: uuid.UUID
) -> bool:
    """Remove one child of a track; False when the track has no such child."""
    deleted = await conn.fetchval(
        f"DELETE FROM {CHILDREN[kind].table} WHERE id = $1 AND track_id = $2 RETURNING id",
        child_id,
        track_id,
    )
    return deleted is not None
