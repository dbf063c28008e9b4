"""The music catalog (seed 001 track_info and its children)."""

from decimal import Decimal

from piccolo.columns import (
    Array,
    BigInt,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Text,
    Varchar,
)
from piccolo.table import Table

from db.tables._columns import timestamp_now, uuid_pk
from db.tables.accounts import User


class Track(Table, tablename="tracks"):
    id = uuid_pk()
    created_by = ForeignKey(User, null=True, on_delete=OnDelete.cascade)
    title = Varchar(length=255)
    artist = Varchar(length=255, null=True, default=None)
    duration = Integer()
    tempo = Integer(null=True, default=None)
    musical_key = Varchar(length=10, null=True, default=None)
    scale = Varchar(length=10, null=True, default=None)
    genre = Varchar(length=100, null=True, default=None)
    subgenre = Varchar(length=100, null=True, default=None)
    mood = Array(base_column=Varchar(length=255))
    tags = Array(base_column=Varchar(length=100))
    description = Text(null=True, default=None)
    audio_filename = Varchar(length=255)
    cover_art_url = Varchar(length=500, null=True, default=None)
    catalog_number = Varchar(length=50, null=True, default=None)
    isrc = Varchar(length=20, null=True, default=None)
    release_date = Date(null=True, default=None)
    popularity_score = Numeric(digits=(5, 2), default=Decimal(0))
    play_count = BigInt(default=0)
    # `search` is a generated tsvector column; it is read through raw SQL only.
    created_at = timestamp_now()
    updated_at = timestamp_now()


class TrackSection(Table, tablename="track_sections"):
    id = uuid_pk()
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    section_name = Varchar(length=50)
    start_time = Integer()
    end_time = Integer()
    description = Text(null=True, default=None)
    created_at = timestamp_now()


class TrackCreator(Table, tablename="track_creators"):
    id = uuid_pk()
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    creator_name = Varchar(length=255)
    role = Varchar(length=100, null=True, default=None)
    ipi_number = Varchar(length=20, null=True, default=None)
    pro = Varchar(length=100, null=True, default=None)
    split_percentage = Numeric(digits=(5, 2), null=True, default=None)
    contact_email = Varchar(length=255, null=True, default=None)
    contact_phone = Varchar(length=50, null=True, default=None)
    created_at = timestamp_now()


class TrackInstrument(Table, tablename="track_instruments"):
    id = uuid_pk()
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    instrument_category = Varchar(length=100, null=True, default=None)
    instrument_type = Varchar(length=100, null=True, default=None)
    is_primary = Boolean(default=False)
    created_at = timestamp_now()


class TrackSample(Table, tablename="track_samples"):
    id = uuid_pk()
    track_id = ForeignKey(Track, on_delete=OnDelete.cascade)
    sample_pack_name = Varchar(length=255, null=True, default=None)
    sample_description = Text(null=True, default=None)
    is_cleared = Boolean(default=False)
    clearance_notes = Text(null=True, default=None)
    created_at = timestamp_now()
