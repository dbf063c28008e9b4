"""Wire schemas of releases."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from server.catalog.common import Isrc, Name, Url, text

Genre = Annotated[str, text(100, 1)]
Order = Annotated[int, msgspec.Meta(ge=1, le=1000)]
# Stored as numeric(9, 2): anything under 0.01 s would round to zero.
DurationSeconds = Annotated[float, msgspec.Meta(ge=0.01, le=86_400)]


class ReleaseCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Name
    genre: Genre
    cover_art_url: Url | None = None


class ReleaseUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Change a draft; absent fields are left alone, ``cover_art_url: null`` removes it."""

    title: Name | msgspec.UnsetType = msgspec.UNSET
    genre: Genre | msgspec.UnsetType = msgspec.UNSET
    cover_art_url: Url | msgspec.UnsetType | None = msgspec.UNSET


class ReleaseTrackCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Name
    # One of my uploads; its duration is used when duration_seconds is not given.
    upload_id: uuid.UUID | None = None
    duration_seconds: DurationSeconds | None = None
    # Default: after the last track.
    track_order: Order | None = None
    isrc: Isrc | None = None


class TrackOrder(msgspec.Struct, forbid_unknown_fields=True):
    """Every track of the release, in the new order."""

    track_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=1000)]


class Rejection(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, text(2000, 1)]


class ReleaseTrack(msgspec.Struct):
    id: uuid.UUID
    title: str
    upload_id: uuid.UUID | None
    duration_seconds: float
    track_order: int
    isrc: str | None


class Release(msgspec.Struct):
    id: uuid.UUID
    artist_id: uuid.UUID
    title: str
    genre: str
    cover_art_url: str | None
    status: Literal["draft", "processing", "pending_review", "published", "rejected"]
    rejection_reason: str | None
    submitted_at: dt.datetime | None
    reviewed_at: dt.datetime | None
    reviewed_by: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime
    tracks: list[ReleaseTrack] = msgspec.field(default_factory=list)


class ReleasePage(msgspec.Struct):
    items: list[Release]
    next_cursor: str | None
