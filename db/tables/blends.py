"""Blends (seed 002): provider connections, imported top tracks, blends and their playlists."""

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    Bytea,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from db.tables._columns import pg_enum, timestamp_now, uuid_pk
from db.tables.accounts import User
from db.tables.catalog import Track


class ProviderConnection(Table, tablename="provider_connections"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    provider = pg_enum("spotify", "apple")
    provider_user_id = Varchar(length=255)
    access_token_encrypted = Bytea()
    refresh_token_encrypted = Bytea(null=True, default=None)
    token_expires_at = Timestamptz(null=True, default=None)
    provider_metadata = JSONB(default="{}")
    last_sync_at = Timestamptz(null=True, default=None)
    created_at = timestamp_now()
    updated_at = timestamp_now()


class UserTopTrack(Table, tablename="user_top_tracks"):
    id = uuid_pk()
    connection_id = ForeignKey(ProviderConnection, on_delete=OnDelete.cascade)
    track_id = Varchar(length=255)
    track_name = Varchar(length=500)
    artist_name = Varchar(length=500)
    album_name = Varchar(length=500, null=True, default=None)
    album_art_url = Varchar(length=500, null=True, default=None)
    duration_ms = Integer(null=True, default=None)
    isrc = Varchar(length=20, null=True, default=None)
    track_metadata = JSONB(default="{}")
    time_range = pg_enum("short_term", "medium_term", "long_term")
    rank = Integer()
    fetched_at = timestamp_now()


class Blend(Table, tablename="blends"):
    id = uuid_pk()
    created_by = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=100)
    share_code = Varchar(length=16, null=True, default=None)
    share_code_expires_at = Timestamptz(null=True, default=None)
    status = pg_enum("pending", "processing", "completed", default="pending")
    blend_settings = JSONB(default="{}")
    taste_match = JSONB(default="{}")
    playlist_spotify_id = Varchar(length=255, null=True, default=None)
    playlist_apple_id = Varchar(length=255, null=True, default=None)
    created_at = timestamp_now()
    completed_at = Timestamptz(null=True, default=None)


class BlendParticipant(Table, tablename="blend_participants"):
    id = uuid_pk()
    blend_id = ForeignKey(Blend, on_delete=OnDelete.cascade)
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    status = pg_enum("pending", "accepted", "declined", default="pending")
    joined_at = Timestamptz(null=True, default=None)


class BlendTrack(Table, tablename="blend_tracks"):
    id = uuid_pk()
    blend_id = ForeignKey(Blend, on_delete=OnDelete.cascade)
    contributed_by = ForeignKey(User, on_delete=OnDelete.cascade)
    contributors = Array(base_column=UUID())
    track_id = Varchar(length=255)
    track_name = Varchar(length=500)
    artist_name = Varchar(length=500)
    album_name = Varchar(length=500, null=True, default=None)
    album_art_url = Varchar(length=500, null=True, default=None)
    duration_ms = Integer(null=True, default=None)
    isrc = Varchar(length=20, null=True, default=None)
    position = Integer()
    source_provider = Varchar(length=50)
    added_at = timestamp_now()


class TrackPlay(Table, tablename="track_plays"):
    """A user's own plays of a catalog track (a blend taste source)."""

    # The real primary key is (user_id, track_id); Piccolo needs one column.
    user_id = UUID(primary_key=True)
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    play_count = BigInt(default=0)
    last_played_at = timestamp_now()
