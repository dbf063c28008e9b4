"""Mashups (seed 000); the timeline itself lives in the mashup room's state."""

from piccolo.columns import (
    JSONB,
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Real,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from db.tables._columns import pg_enum, timestamp_now, uuid_pk
from db.tables.accounts import User
from db.tables.uploads import UploadedTrack


class Mashup(Table, tablename="mashups"):
    id = uuid_pk()
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    name = Varchar(length=255)
    target_duration_seconds = Integer()
    output_storage_key = Varchar(length=512, null=True, default=None)
    generation_status = pg_enum("pending", "generating", "completed", "failed", default="pending")
    share_code = Varchar(length=16, null=True, default=None)
    share_code_expires_at = Timestamptz(null=True, default=None)
    playback_count = Integer(default=0)
    download_count = Integer(default=0)
    created_at = timestamp_now()
    updated_at = timestamp_now()


class MashupMember(Table, tablename="mashup_members"):
    id = uuid_pk()
    mashup_id = ForeignKey(Mashup, on_delete=OnDelete.cascade)
    user_id = ForeignKey(User, on_delete=OnDelete.cascade)
    role = pg_enum("owner", "editor", "viewer", default="editor")
    joined_at = timestamp_now()


class MashupInputTrack(Table, tablename="mashup_input_tracks"):
    id = uuid_pk()
    mashup_id = ForeignKey(Mashup, on_delete=OnDelete.cascade)
    uploaded_track_id = ForeignKey(UploadedTrack, on_delete=OnDelete.cascade)
    created_at = timestamp_now()


class MashupGenerationJob(Table, tablename="mashup_generation_jobs"):
    """A request to generate the mashup's timeline (server/mashups/generation.py)."""

    id = uuid_pk()
    mashup_id = ForeignKey(Mashup, on_delete=OnDelete.cascade)
    requested_by = ForeignKey(User, null=True, on_delete=OnDelete.set_null)
    seed = BigInt()
    target_seconds = Integer()
    options = JSONB(default="{}")
    storage_scope = Text()
    status = pg_enum("pending", "generating", "completed", "failed", default="pending")
    attempts = Integer(default=0)
    stage = Varchar(length=32, default="queued")
    progress = Real(default=0.0)
    detail = Text(default="")
    plan = JSONB(null=True, default=None)
    output_storage_key = Varchar(length=512, null=True, default=None)
    created_at = timestamp_now()
    updated_at = timestamp_now()
    finished_at = Timestamptz(null=True, default=None)
