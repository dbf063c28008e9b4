"""The seeds' integrity rules hold in the database itself, whatever the API does."""

import asyncpg
import pytest

from tests.support import make_user


async def test_email_is_unique_regardless_of_case(db: asyncpg.Connection) -> None:
    user = await make_user(db)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO users (email, username, password_hash) VALUES ($1, 'other', 'x')",
            user.email.upper(),
        )


async def test_deleting_a_user_removes_what_they_own(db: asyncpg.Connection) -> None:
    owner = await make_user(db)
    other = await make_user(db)
    track = await db.fetchval(
        "INSERT INTO tracks (title, duration, audio_filename, created_by)"
        " VALUES ('t', 100, $1, $2) RETURNING id",
        f"{owner.username}.mp3",
        owner.id,
    )
    release = await db.fetchval(
        "INSERT INTO releases (artist_id, title, genre) VALUES ($1, 'r', 'pop') RETURNING id",
        owner.id,
    )
    await db.execute(
        "INSERT INTO release_tracks (release_id, title, duration_seconds, track_order)"
        " VALUES ($1, 'a', 10, 1)",
        release,
    )
    upload = await db.fetchval(
        "INSERT INTO uploaded_tracks (user_id, original_filename, file_size_bytes, mime_type,"
        " format) VALUES ($1, 'a.wav', 10, 'audio/wav', 'wav') RETURNING id",
        owner.id,
    )
    await db.execute(
        "INSERT INTO upload_jobs (kind, target_id, uploaded_track_id, user_id, local_path)"
        " VALUES ('audio', $1, $1, $2, '/tmp/x')",
        upload,
        owner.id,
    )
    playlist = await db.fetchval(
        "INSERT INTO playlists (user_id, name) VALUES ($1, 'p') RETURNING id", owner.id
    )
    # Someone else's playlist holding the owner's track loses the track, not the playlist.
    others = await db.fetchval(
        "INSERT INTO playlists (user_id, name) VALUES ($1, 'q') RETURNING id", other.id
    )
    await db.execute(
        "INSERT INTO playlist_tracks (playlist_id, track_id, position, added_by)"
        " VALUES ($1, $2, 0, $3)",
        others,
        track,
        owner.id,
    )
    blend = await db.fetchval(
        "INSERT INTO blends (created_by, name) VALUES ($1, 'b') RETURNING id", owner.id
    )
    await db.execute("INSERT INTO rooms (id, kind) VALUES ($1, 'blend')", blend)
    await db.execute(
        "INSERT INTO room_ops (room_id, seq, author_id, op_id, body) VALUES ($1, 1, $2, 'a', '[]')",
        blend,
        owner.id,
    )
    mashup = await db.fetchval(
        "INSERT INTO mashups (user_id, name, target_duration_seconds) VALUES ($1, 'm', 60)"
        " RETURNING id",
        owner.id,
    )
    await db.execute("INSERT INTO rooms (id, kind) VALUES ($1, 'mashup')", mashup)

    await db.execute("DELETE FROM users WHERE id = $1", owner.id)

    for table, column in [
        ("sessions", "user_id"),
        ("profiles", "user_id"),
        ("tracks", "created_by"),
        ("releases", "artist_id"),
        ("uploaded_tracks", "user_id"),
        ("upload_jobs", "user_id"),
        ("playlists", "user_id"),
        ("blends", "created_by"),
        ("mashups", "user_id"),
    ]:
        count = await db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", owner.id)
        assert count == 0, table
    assert (
        await db.fetchval("SELECT count(*) FROM release_tracks WHERE release_id = $1", release) == 0
    )
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE id = ANY($1)", [blend, mashup]) == 0
    assert await db.fetchval("SELECT count(*) FROM room_ops WHERE room_id = $1", blend) == 0
    assert await db.fetchval("SELECT count(*) FROM playlists WHERE id = $1", playlist) == 0
    # The other user's things stay, minus the deleted track.
    assert await db.fetchval("SELECT count(*) FROM playlists WHERE id = $1", others) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM playlist_tracks WHERE playlist_id = $1", others)
        == 0
    )
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", other.id) == 1


async def test_release_track_order_is_unique(db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    release = await db.fetchval(
        "INSERT INTO releases (artist_id, title, genre) VALUES ($1, 'r', 'pop') RETURNING id",
        artist.id,
    )
    insert = (
        "INSERT INTO release_tracks (release_id, title, duration_seconds, track_order)"
        " VALUES ($1, $2, 10, $3)"
    )
    await db.execute(insert, release, "one", 1)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert, release, "two", 1)
    # A swap inside one transaction is fine: the constraint is deferrable.
    await db.execute(insert, release, "two", 2)
    async with db.transaction():
        await db.execute("SET CONSTRAINTS release_tracks_order_unique DEFERRED")
        await db.execute(
            "UPDATE release_tracks SET track_order = 3 - track_order WHERE release_id = $1",
            release,
        )
    rows = await db.fetch(
        "SELECT title FROM release_tracks WHERE release_id = $1 ORDER BY track_order", release
    )
    assert [r["title"] for r in rows] == ["two", "one"]


async def test_release_review_needs_cover_art(db: asyncpg.Connection) -> None:
    artist = await make_user(db, roles=("artist",))
    release = await db.fetchval(
        "INSERT INTO releases (artist_id, title, genre) VALUES ($1, 'r', 'pop') RETURNING id",
        artist.id,
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE releases SET status = 'pending_review' WHERE id = $1", release)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "UPDATE releases SET status = 'rejected', cover_art_url = 'x' WHERE id = $1", release
        )


async def test_a_playlist_holds_a_track_once(db: asyncpg.Connection) -> None:
    user = await make_user(db)
    track = await db.fetchval(
        "INSERT INTO tracks (title, duration, audio_filename) VALUES ('t', 100, $1) RETURNING id",
        f"{user.username}-once.mp3",
    )
    playlist = await db.fetchval(
        "INSERT INTO playlists (user_id, name) VALUES ($1, 'p') RETURNING id", user.id
    )
    insert = "INSERT INTO playlist_tracks (playlist_id, track_id, position) VALUES ($1, $2, $3)"
    await db.execute(insert, playlist, track, 0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert, playlist, track, 1)


async def test_statuses_are_enums(db: asyncpg.Connection) -> None:
    user = await make_user(db)
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await db.execute(
            "INSERT INTO releases (artist_id, title, genre, status) VALUES ($1, 'r', 'x', 'live')",
            user.id,
        )
