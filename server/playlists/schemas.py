"""Wire schemas of playlists."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec

from server.catalog.common import LongText, Name, Url

Position = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class PlaylistCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: LongText | None = None
    is_public: bool = False
    is_collaborative: bool = False
    cover_image_url: Url | None = None


class PlaylistUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: LongText | msgspec.UnsetType | None = msgspec.UNSET
    is_public: bool | msgspec.UnsetType = msgspec.UNSET
    is_collaborative: bool | msgspec.UnsetType = msgspec.UNSET
    cover_image_url: Url | msgspec.UnsetType | None = msgspec.UNSET


class CollaboratorAdd(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID


class PlaylistTrackAdd(msgspec.Struct, forbid_unknown_fields=True):
    track_id: uuid.UUID
    # Where to insert (0 = first); default: at the end.
    position: Position | None = None


class PlaylistTrackMove(msgspec.Struct, forbid_unknown_fields=True):
    position: Position


class PlaylistTrack(msgspec.Struct):
    track_id: uuid.UUID
    position: int
    title: str
    artist: str | None
    duration: int
    added_by: uuid.UUID | None
    added_at: dt.datetime


class Playlist(msgspec.Struct):
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    is_public: bool
    is_collaborative: bool
    cover_image_url: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    collaborators: list[uuid.UUID] = msgspec.field(default_factory=list)
    tracks: list[PlaylistTrack] = msgspec.field(default_factory=list)


class PlaylistPage(msgspec.Struct):
    items: list[Playlist]
    next_cursor: str | None
