"""Wire schemas of the catalog: tracks and their sections, creators, instruments, samples."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from server.catalog.common import Isrc, LongText, Name, Str100, Str255, Url, text

MusicalKey = Literal[
    "C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"
]  # fmt: skip
Scale = Literal["major", "minor"]
Tempo = Annotated[int, msgspec.Meta(ge=20, le=400)]
Seconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]
Duration = Annotated[int, msgspec.Meta(ge=1, le=86_400)]
Split = Annotated[float, msgspec.Meta(ge=0, le=100)]
Popularity = Annotated[float, msgspec.Meta(ge=0, le=100)]
Mood = Annotated[str, text(255, 1)]
Tag = Annotated[str, text(100, 1)]
Moods = Annotated[list[Mood], msgspec.Meta(max_length=32)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=64)]
ReleaseDate = Annotated[dt.date, msgspec.Meta()]
Email = Annotated[str, msgspec.Meta(max_length=255, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
Phone = Annotated[str, msgspec.Meta(max_length=50, pattern=r"^[0-9+() .-]*$")]


class SectionIn(msgspec.Struct, forbid_unknown_fields=True):
    """A section of a track, in seconds: `end_time` must be greater than `start_time`
    (otherwise `400 invalid_request`)."""

    section_name: Annotated[str, text(50, 1)]
    start_time: Seconds
    end_time: Seconds
    description: LongText | None = None

    def __post_init__(self) -> None:
        if self.end_time <= self.start_time:
            raise ValueError("a section must end after it starts")


class CreatorIn(msgspec.Struct, forbid_unknown_fields=True):
    creator_name: Name
    role: Str100 | None = None
    ipi_number: Annotated[str, msgspec.Meta(max_length=20, pattern=r"^[0-9A-Za-z-]*$")] | None = (
        None
    )
    pro: Str100 | None = None
    split_percentage: Split | None = None
    contact_email: Email | None = None
    contact_phone: Phone | None = None


class InstrumentIn(msgspec.Struct, forbid_unknown_fields=True):
    instrument_category: Str100 | None = None
    instrument_type: Str100 | None = None
    is_primary: bool = False


class SampleIn(msgspec.Struct, forbid_unknown_fields=True):
    sample_pack_name: Str255 | None = None
    sample_description: LongText | None = None
    is_cleared: bool = False
    clearance_notes: LongText | None = None


Sections = Annotated[list[SectionIn], msgspec.Meta(max_length=100)]
Creators = Annotated[list[CreatorIn], msgspec.Meta(max_length=50)]
Instruments = Annotated[list[InstrumentIn], msgspec.Meta(max_length=50)]
Samples = Annotated[list[SampleIn], msgspec.Meta(max_length=50)]


class TrackCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Name
    duration: Duration
    audio_filename: Name
    artist: Str255 | None = None
    tempo: Tempo | None = None
    musical_key: MusicalKey | None = None
    scale: Scale | None = None
    genre: Str100 | None = None
    subgenre: Str100 | None = None
    mood: Moods = msgspec.field(default_factory=list)
    tags: Tags = msgspec.field(default_factory=list)
    description: LongText | None = None
    cover_art_url: Url | None = None
    catalog_number: Annotated[str, text(50)] | None = None
    isrc: Isrc | None = None
    release_date: ReleaseDate | None = None
    sections: Sections = msgspec.field(default_factory=list)
    creators: Creators = msgspec.field(default_factory=list)
    instruments: Instruments = msgspec.field(default_factory=list)
    samples: Samples = msgspec.field(default_factory=list)


class TrackUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields to change. An absent field is left alone; a child list, when given, replaces
    all of that kind (``"creators": []`` removes every creator). ``popularity_score`` is
    admin-only."""

    title: Name | msgspec.UnsetType = msgspec.UNSET
    duration: Duration | msgspec.UnsetType = msgspec.UNSET
    audio_filename: Name | msgspec.UnsetType = msgspec.UNSET
    artist: Str255 | msgspec.UnsetType | None = msgspec.UNSET
    tempo: Tempo | msgspec.UnsetType | None = msgspec.UNSET
    musical_key: MusicalKey | msgspec.UnsetType | None = msgspec.UNSET
    scale: Scale | msgspec.UnsetType | None = msgspec.UNSET
    genre: Str100 | msgspec.UnsetType | None = msgspec.UNSET
    subgenre: Str100 | msgspec.UnsetType | None = msgspec.UNSET
    mood: Moods | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    description: LongText | msgspec.UnsetType | None = msgspec.UNSET
    cover_art_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    catalog_number: Annotated[str, text(50)] | msgspec.UnsetType | None = msgspec.UNSET
    isrc: Isrc | msgspec.UnsetType | None = msgspec.UNSET
    release_date: ReleaseDate | msgspec.UnsetType | None = msgspec.UNSET
    popularity_score: Popularity | msgspec.UnsetType = msgspec.UNSET
    sections: Sections | msgspec.UnsetType = msgspec.UNSET
    creators: Creators | msgspec.UnsetType = msgspec.UNSET
    instruments: Instruments | msgspec.UnsetType = msgspec.UNSET
    samples: Samples | msgspec.UnsetType = msgspec.UNSET


class Section(msgspec.Struct):
    id: uuid.UUID
    section_name: str
    start_time: int
    end_time: int
    description: str | None


class Creator(msgspec.Struct):
    id: uuid.UUID
    creator_name: str
    role: str | None
    ipi_number: str | None
    pro: str | None
    split_percentage: float | None
    # Contact details are shown to the track's owner and to admins only.
    contact_email: str | None
    contact_phone: str | None


class Instrument(msgspec.Struct):
    id: uuid.UUID
    instrument_category: str | None
    instrument_type: str | None
    is_primary: bool


class Sample(msgspec.Struct):
    id: uuid.UUID
    sample_pack_name: str | None
    sample_description: str | None
    is_cleared: bool
    clearance_notes: str | None


class Track(msgspec.Struct):
    id: uuid.UUID
    created_by: uuid.UUID | None
    title: str
    artist: str | None
    duration: int
    tempo: int | None
    musical_key: str | None
    scale: str | None
    genre: str | None
    subgenre: str | None
    mood: list[str]
    tags: list[str]
    description: str | None
    audio_filename: str
    cover_art_url: str | None
    catalog_number: str | None
    isrc: str | None
    release_date: dt.date | None
    popularity_score: float
    play_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class TrackDetail(Track):
    sections: list[Section] = msgspec.field(default_factory=list)
    creators: list[Creator] = msgspec.field(default_factory=list)
    instruments: list[Instrument] = msgspec.field(default_factory=list)
    samples: list[Sample] = msgspec.field(default_factory=list)


class TrackPage(msgspec.Struct):
    items: list[Track]
    # Pass as ?cursor= to get the next page; null on the last page.
    next_cursor: str | None


class PlayCount(msgspec.Struct):
    id: uuid.UUID
    play_count: int


SortKey = Literal["popularity", "release_date", "tempo"]
SortOrder = Literal["asc", "desc"]
Match = Literal["any", "all"]


class TrackQuery(msgspec.Struct, frozen=True):
    """A parsed search request (the query string of GET /tracks)."""

    genre: str | None = None
    subgenre: str | None = None
    tempo_min: int | None = None
    tempo_max: int | None = None
    musical_key: str | None = None
    scale: str | None = None
    mood: tuple[str, ...] = ()
    mood_match: Match = "any"
    tags: tuple[str, ...] = ()
    tags_match: Match = "any"
    released_from: dt.date | None = None
    released_to: dt.date | None = None
    q: str | None = None
    created_by: uuid.UUID | None = None
    sort: SortKey = "popularity"
    order: SortOrder | None = None
    limit: int = 20
