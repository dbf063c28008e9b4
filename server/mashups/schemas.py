"""Wire schemas of the mashups REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from dsp.timeline import Timeline
from server.mashups.room import Export, Generation, Preview
from server.share_codes.schemas import ShareCode

# No control characters (PostgreSQL text cannot hold NUL; the others are never meant).
PLAIN = r"^[^\x00-\x1f\x7f]*$"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=PLAIN)]
# A mashup is at most an hour long (the renderer's own limit is 20 minutes per render).
TargetDuration = Annotated[int, msgspec.Meta(ge=1, le=3600)]
Role = Literal["owner", "editor", "viewer"]
MemberRole = Literal["editor", "viewer"]
GenerationStatus = Literal["pending", "generating", "completed", "failed"]


class CreateMashup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    target_duration_seconds: TargetDuration


class UpdateMashup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    target_duration_seconds: TargetDuration | None = None


class SetRole(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: MemberRole


class AddInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    uploaded_track_id: uuid.UUID


class PreviewWindow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    start_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=86_400.0)] = 0.0
    # At most mashup_preview_max_seconds (30 by default), checked by the handler.
    duration_seconds: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 15.0


class Member(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    username: str
    display_name: str | None
    role: Role
    joined_at: datetime


class Input(msgspec.Struct, frozen=True, kw_only=True):
    uploaded_track_id: uuid.UUID
    owner_id: uuid.UUID
    original_filename: str
    duration_seconds: float
    bpm: float | None
    key_signature: str | None
    added_at: datetime


class MashupSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    my_role: Role
    target_duration_seconds: int
    member_count: int
    created_at: datetime
    updated_at: datetime


class MashupDetail(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    my_role: Role
    target_duration_seconds: int
    generation_status: GenerationStatus
    # Shown to the owner and editors while a code is live; None once revoked or expired.
    share_code: ShareCode | None
    members: list[Member]
    inputs: list[Input]
    # The room's current state: its seq, the timeline and the latest previews (None when the
    # room could not be read just now; the WebSocket room is the live view).
    seq: int | None
    timeline: Timeline | None
    previews: list[Preview]
    # The latest export (full render): generating, completed (with its url) or failed.
    export: Export | None
    # The latest generated draft: status, stage, progress, seed, plan, url (None: never).
    generation: Generation | None
    created_at: datetime
    updated_at: datetime


class PreviewAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """A preview is rendering; the room announces ``preview_ready`` (or ``preview_failed``)."""

    id: uuid.UUID
    url: str  # where the audio will be, once ready
    seq: int  # the room seq being rendered
    start_seconds: float
    duration_seconds: float
    status: Literal["rendering"] = "rendering"


class GenerateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Generate a draft of the timeline from the mashup's inputs (every field optional)."""

    # The same seed (with the same inputs and target) gives the same draft. Left out: the
    # previous generation's seed plus one (another draft), or a random one the first time.
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)] | None = None
    # Left out: the mashup's target_duration_seconds. At most 1200 (the renderer's limit).
    target_seconds: Annotated[int, msgspec.Meta(ge=1, le=1200)] | None = None
    # Lay one input's drums (percussive stem) under another's harmonic stem in builds and peaks.
    layering: bool = True


class GenerationAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """A generation is queued; the room reports its progress (``generation`` ops)."""

    id: uuid.UUID
    mashup_id: uuid.UUID
    seed: int
    target_seconds: int
    layering: bool
    requested_by: uuid.UUID
    status: Literal["pending"] = "pending"
