"""Releases (seed 004): DRAFT -> PROCESSING -> PENDING_REVIEW -> PUBLISHED / REJECTED."""

from piccolo.columns import ForeignKey, Integer, Numeric, OnDelete, Text, Timestamptz, Varchar
from piccolo.table import Table

from db.tables._columns import pg_enum, timestamp_now, uuid_pk
from db.tables.accounts import User
from db.tables.uploads import UploadedTrack


class Release(Table, tablename="releases"):
    id = uuid_pk()
    artist_id = ForeignKey(User, on_delete=OnDelete.cascade)
    title = Varchar(length=255)
    genre = Varchar(length=100)
    cover_art_url = Varchar(length=500, null=True, default=None)
    status = pg_enum(
        "draft", "processing", "pending_review", "published", "rejected", default="draft"
    )
    rejection_reason = Text(null=True, default=None)
    submitted_at = Timestamptz(null=True, default=None)
    reviewed_at = Timestamptz(null=True, default=None)
    reviewed_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    created_at = timestamp_now()
    updated_at = timestamp_now()


class ReleaseTrack(Table, tablename="release_tracks"):
    id = uuid_pk()
    release_id = ForeignKey(Release, on_delete=OnDelete.cascade)
    uploaded_track_id = ForeignKey(UploadedTrack, null=True, on_delete=OnDelete.set_null)
    title = Varchar(length=255)
    audio_url = Varchar(length=512, null=True, default=None)
    duration_seconds = Numeric(digits=(9, 2))
    track_order = Integer()
    isrc = Varchar(length=20, null=True, default=None)
    created_at = timestamp_now()
