"""Uploads (seeds 000, 003, 004): uploaded tracks and the robust-upload jobs."""

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Text,
    Varchar,
)
from piccolo.table import Table

from db.tables._columns import pg_enum, timestamp_now, uuid_pk
from db.tables.accounts import User


class UploadedTrack(Table, tablename="uploaded_tracks"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    original_filename = Varchar(length=255)
    storage_key = Varchar(length=512, null=True, default=None)
    file_size_bytes = BigInt()
    mime_type = Varchar(length=50)
    format = Varchar(length=10)
    upload_status = pg_enum("pending", "uploading", "uploaded", "failed", default="pending")
    analysis_status = pg_enum("pending", "analyzing", "completed", "failed", default="pending")
    bpm = Numeric(digits=(5, 2), null=True, default=None)
    key_signature = Varchar(length=20, null=True, default=None)
    duration_seconds = Numeric(digits=(9, 2), null=True, default=None)
    has_stems = Boolean(default=False)
    analysis = JSONB(default="{}")
    created_at = timestamp_now()
    updated_at = timestamp_now()
    # Deeper analysis (migration 2026-12-01T16:00): dsp.structure.Structure and Peaks as
    # JSON, and the harmonic/percussive stems in storage.
    structure = JSONB(null=True, default=None)
    peaks = JSONB(null=True, default=None)
    harmonic_storage_key = Varchar(length=512, null=True, default=None)
    percussive_storage_key = Varchar(length=512, null=True, default=None)


class UploadJob(Table, tablename="upload_jobs"):
    id = uuid_pk()
    kind = pg_enum("audio", "cover_art")
    target_id = UUID()
    uploaded_track_id = ForeignKey(UploadedTrack, null=True, on_delete=OnDelete.cascade)
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    local_path = Text()
    status = pg_enum("pending", "uploading", "completed", "failed", default="pending")
    retry_count = Integer(default=0)
    next_attempt_at = timestamp_now()
    error_log = Text(null=True, default=None)
    created_at = timestamp_now()
    updated_at = timestamp_now()
