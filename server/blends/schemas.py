"""Wire schemas of the blends REST API (and the settings stored in ``blends.blend_settings``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from server.blends.weave import SongRef, Source, TasteMatch, TimeRange
from server.share_codes.schemas import ShareCode

# No control characters (PostgreSQL text cannot hold NUL; the others are never meant).
PLAIN = r"^[^\x00-\x1f\x7f]*$"


def text(min_length: int, max_length: int) -> msgspec.Meta:
    return msgspec.Meta(min_length=min_length, max_length=max_length, pattern=PLAIN)


Name = Annotated[str, text(1, 100)]
MemberLimit = Annotated[int, msgspec.Meta(ge=2, le=50)]
PlaylistLength = Annotated[int, msgspec.Meta(ge=1, le=200)]
Text500 = Annotated[str, text(1, 500)]
OptText500 = Annotated[str, text(0, 500)]
Provider = Literal["spotify", "apple"]
ParticipantStatus = Literal["pending", "accepted", "declined"]
BlendStatus = Literal["pending", "processing", "completed"]


class BlendSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stored as ``blends.blend_settings``."""

    member_limit: MemberLimit = 10
    playlist_length: PlaylistLength = 50


class BlendSettingsPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    member_limit: MemberLimit | None = None
    playlist_length: PlaylistLength | None = None


class CreateBlend(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    settings: BlendSettings = BlendSettings()


class UpdateBlend(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    settings: BlendSettingsPatch | None = None


class InviteMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: uuid.UUID


class Member(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    username: str
    display_name: str | None
    status: ParticipantStatus
    is_owner: bool
    joined_at: datetime | None


class BlendTrack(SongRef, frozen=True, kw_only=True):
    position: int
    source: str
    contributed_by: uuid.UUID
    contributors: list[uuid.UUID]


class BlendSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    status: BlendStatus
    settings: BlendSettings
    my_status: ParticipantStatus
    member_count: int  # accepted members, the owner included
    created_at: datetime
    completed_at: datetime | None


class BlendDetail(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    status: BlendStatus
    settings: BlendSettings
    my_status: ParticipantStatus
    # Shown to accepted members while a code is live; None once revoked or expired.
    share_code: ShareCode | None
    members: list[Member]
    tracks: list[BlendTrack]
    taste_match: TasteMatch | None
    created_at: datetime
    completed_at: datetime | None


class Regeneration(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ``POST /blends/{id}/regenerate``: the weave is queued. ``GET
    /blends/{id}`` shows ``status`` going to ``completed``; the blend room announces the
    new playlist."""

    blend_id: uuid.UUID
    status: BlendStatus


# ------------------------------------------------------------------ taste sources


class ConnectProvider(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Tokens the client obtained from the provider; stored encrypted, never returned."""

    provider_user_id: Annotated[str, text(1, 255)]
    access_token: Annotated[str, text(1, 4096)]
    refresh_token: Annotated[str, text(1, 4096)] | None = None
    token_expires_at: datetime | None = None
    metadata: Annotated[
        dict[Annotated[str, text(1, 64)], OptText500], msgspec.Meta(max_length=50)
    ] = {}


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    provider: Provider
    provider_user_id: str
    has_refresh_token: bool
    token_expires_at: datetime | None
    metadata: dict[str, str]
    last_sync_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TopTrackIn(SongRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A song as a client imports it: the song reference's fields, bounded."""

    track_id: Annotated[str, text(1, 255)]
    name: Text500
    artist: Text500
    album: OptText500 | None = None
    album_art_url: OptText500 | None = None
    duration_ms: Annotated[int, msgspec.Meta(gt=0, le=2**31 - 1)] | None = None
    isrc: Annotated[str, text(0, 20)] | None = None


class ImportTopTracks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A member's top tracks for one time range, best first (rank = position + 1)."""

    tracks: Annotated[list[TopTrackIn], msgspec.Meta(max_length=100)]


class TopTrack(SongRef, frozen=True, kw_only=True):
    rank: int
    time_range: TimeRange
    fetched_at: datetime


class TasteTrack(msgspec.Struct, frozen=True, kw_only=True):
    """One song of a member's merged taste, as a blend sees it."""

    key: str
    track_id: str
    name: str
    artist: str
    source: Source
    score: float
