"""Playlists (seeds 001, 003): public or private, optionally collaborative."""

from piccolo.columns import Boolean, ForeignKey, Integer, OnDelete, Text, Varchar
from piccolo.table import Table

from db.tables._columns import timestamp_now, uuid_pk
from db.tables.accounts import User
from db.tables.catalog import Track


class Playlist(Table, tablename="playlists"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=255)
    description = Text(null=True, default=None)
    is_public = Boolean(default=False)
    is_collaborative = Boolean(default=False)
    cover_image_url = Varchar(length=500, null=True, default=None)
    created_at = timestamp_now()
    updated_at = timestamp_now()


class PlaylistCollaborator(Table, tablename="playlist_collaborators"):
    id = uuid_pk()
    playlist_id = ForeignKey(Playlist, on_delete=OnDelete.cascade)
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    added_at = timestamp_now()


class PlaylistTrack(Table, tablename="playlist_tracks"):
    id = uuid_pk()
    playlist_id = ForeignKey(Playlist, on_delete=OnDelete.cascade)
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    position = Integer()
    added_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    added_at = timestamp_now()
