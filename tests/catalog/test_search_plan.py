"""Query plans of the catalog search on 100,000 generated tracks: indexed filters never
scan the whole table. Runs in a database of its own so the shared one stays small."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db import migrate
from server.catalog.repository import build_search
from server.catalog.schemas import TrackQuery

GENERATE = """
INSERT INTO tracks (title, artist, duration, tempo, musical_key, scale, genre, subgenre,
                    mood, tags, audio_filename, release_date, popularity_score, play_count)
SELECT
    'Track ' || i || ' ' || (ARRAY['sunrise','storm','river','neon','velvet','ember','glass',
        'orbit','echo','drift'])[1 + i % 10] || ' ' || md5(i::text),
    'Artist ' || (i % 5000),
    60 + i % 300,
    CASE WHEN i % 50 = 0 THEN NULL ELSE 60 + (i * 7) % 141 END,
    (ARRAY['C','C#','D','Eb','E','F','F#','G','Ab','A','Bb','B'])[1 + (i * 3) % 12],
    CASE WHEN i % 2 = 0 THEN 'major' ELSE 'minor' END,
    'genre' || (i % 40),
    'sub' || (i % 200),
    ARRAY['mood' || (i % 200), 'mood' || ((i * 7) % 200)]::varchar[],
    ARRAY['tag' || (i % 1000), 'tag' || ((i * 11) % 1000), 'tag' || ((i * 13) % 1000)]::varchar[],
    'file-' || i || '.mp3',
    CASE WHEN i % 20 = 0 THEN NULL ELSE DATE '2000-01-01' + (i * 37) % 9000 END,
    round((random() * 100)::numeric, 2),
    (random() * 100000)::bigint
FROM generate_series(1, 100000) AS i
"""

FILTERS: dict[str, TrackQuery] = {
    "genre": TrackQuery(genre="genre7"),
    "tempo range": TrackQuery(tempo_min=120, tempo_max=124),
    "key": TrackQuery(musical_key="F#", scale="minor"),
    "mood any": TrackQuery(mood=("mood3", "mood4")),
    "mood all": TrackQuery(mood=("mood3", "mood21"), mood_match="all"),
    "tags any": TrackQuery(tags=("tag5", "tag6")),
    "tags all": TrackQuery(tags=("tag5", "tag55"), tags_match="all"),
    "text": TrackQuery(q="neon velvet"),
    "release date": TrackQuery(released_from=dt.date(2010, 1, 1), released_to=dt.date(2010, 2, 1)),
    "no filter": TrackQuery(),
    "sort tempo": TrackQuery(sort="tempo"),
    "sort release desc": TrackQuery(sort="release_date"),
    "sort release asc": TrackQuery(sort="release_date", order="asc"),
    "genre sorted by tempo": TrackQuery(genre="genre3", sort="tempo", order="desc"),
}


FILTER_INDEXES = {
    "genre": "idx_track_genre",
    "tempo range": "idx_track_tempo",
    "key": "idx_track_key",
    "mood any": "idx_track_mood",
    "mood all": "idx_track_mood",
    "tags any": "idx_track_tags",
    "tags all": "idx_track_tags",
    "text": "idx_track_search",
    "release date": "idx_track_release_date",
}


@pytest.fixture
async def big_catalog(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    await migrate.forwards(fresh_database)
    conn = await asyncpg.connect(fresh_database)
    await conn.execute(GENERATE)
    await conn.execute("ANALYZE tracks")
    yield conn
    await conn.close()


async def test_indexed_filters_never_scan_the_table(big_catalog: asyncpg.Connection) -> None:
    conn = big_catalog
    assert await conn.fetchval("SELECT count(*) FROM tracks") == 100_000
    plans: dict[str, str] = {}
    for name, query in FILTERS.items():
        sql, args = build_search(query, None)
        rows = await conn.fetch("EXPLAIN " + sql, *args)
        plans[name] = "\n".join(r[0] for r in rows)
    for name, plan in plans.items():
        print(f"--- {name}\n{plan}")
    scanned = [name for name, plan in plans.items() if "Seq Scan on tracks" in plan]
    assert not scanned, "\n\n".join(f"{n}:\n{plans[n]}" for n in scanned)

    # Without ORDER BY ... LIMIT steering the plan, each filter uses its own index.
    for name, index in FILTER_INDEXES.items():
        sql, args = build_search(FILTERS[name], None)
        where = sql.split(" FROM tracks t", 1)[1].split(" ORDER BY", 1)[0]
        rows = await conn.fetch("EXPLAIN SELECT count(*) FROM tracks t" + where, *args[:-1])
        plan = "\n".join(r[0] for r in rows)
        print(f"--- count, {name}\n{plan}")
        assert index in plan and "Seq Scan on tracks" not in plan, plan

    # A deep page continues through the index from the cursor, not from the start.
    first = await conn.fetch(*_page(TrackQuery(sort="tempo", limit=50)))
    last = first[-1]
    from server.catalog.common import encode_cursor

    cursor = encode_cursor("tempo", "asc", last["sort_key"], last["id"])
    sql, args = build_search(TrackQuery(sort="tempo", limit=50), cursor)
    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
    assert "Seq Scan on tracks" not in plan and "Index Cond" in plan, plan
    following = await conn.fetch(sql, *args)
    assert following[0]["sort_key"] >= last["sort_key"]
    assert {r["id"] for r in following}.isdisjoint(r["id"] for r in first)


def _page(query: TrackQuery) -> tuple[str, ...]:
    sql, args = build_search(query, None)
    return (sql, *args)
