"""Piccolo tables of the merged data model, one module per domain.

The SQL in ``migrations/`` is the source of truth for constraints and indexes; these classes
mirror its columns so queries can be written with Piccolo. ``tests/test_schema.py`` checks
that the two agree.
"""

from db.tables.accounts import (
    EmailOutbox,
    EmailVerification,
    PasswordReset,
    Profile,
    Session,
    User,
    UserRole,
)
from db.tables.blends import (
    Blend,
    BlendParticipant,
    BlendTrack,
    ProviderConnection,
    TrackPlay,
    UserTopTrack,
)
from db.tables.catalog import Track, TrackCreator, TrackInstrument, TrackSample, TrackSection
from db.tables.mashups import Mashup, MashupGenerationJob, MashupInputTrack, MashupMember
from db.tables.playlists import Playlist, PlaylistCollaborator, PlaylistTrack
from db.tables.releases import Release, ReleaseTrack
from db.tables.rooms import Room, RoomCheckpoint, RoomOp, RoomSnapshot, RoomVersion
from db.tables.uploads import UploadedTrack, UploadJob

ALL_TABLES = (
    User,
    Profile,
    UserRole,
    Session,
    EmailVerification,
    PasswordReset,
    EmailOutbox,
    Track,
    TrackSection,
    TrackCreator,
    TrackInstrument,
    TrackSample,
    UploadedTrack,
    UploadJob,
    Release,
    ReleaseTrack,
    Playlist,
    PlaylistCollaborator,
    PlaylistTrack,
    ProviderConnection,
    UserTopTrack,
    Blend,
    BlendParticipant,
    BlendTrack,
    TrackPlay,
    Mashup,
    MashupMember,
    MashupInputTrack,
    MashupGenerationJob,
    Room,
    RoomOp,
    RoomSnapshot,
    RoomVersion,
    RoomCheckpoint,
)

__all__ = [t.__name__ for t in ALL_TABLES] + ["ALL_TABLES"]
