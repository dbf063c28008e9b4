"""The mashup timeline: frozen, validated msgspec Structs shared with the mashup room.

Units: a clip's ``in_seconds``/``out_seconds`` are times in its source track;
its ``position_beats`` is where it starts on the timeline, in beats of the
project tempo; fades are seconds of the clip as heard (after stretching).

A clip whose ``source_bpm`` is known is time-stretched to the project tempo;
one whose ``source_key`` is known, in a timeline whose ``key`` is known, is
shifted by the smallest interval onto that key (see
:func:`dsp.keys.semitones_between`), plus its own ``pitch_shift_semitones``.

msgspec checks every constraint when it decodes or converts; a Struct built
directly in Python is only checked by :func:`validate_timeline`, which the
renderer always calls.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from dsp.effects import EffectChain, tail_seconds
from dsp.errors import InvalidTimeline
from dsp.keys import KEY_PATTERN, semitones_between
from dsp.structure import Stem

MAX_CLIPS: Final = 256
MAX_CLIP_SOURCE_SECONDS: Final = 600.0
MIN_STRETCH: Final = 0.5
MAX_STRETCH: Final = 2.0

Bpm = Annotated[float, Meta(ge=20.0, le=300.0)]
KeySignature = Annotated[str, Meta(pattern=KEY_PATTERN)]
Identifier = Annotated[str, Meta(min_length=1, max_length=64)]
SourceTime = Annotated[float, Meta(ge=0.0, le=4 * 3600.0)]
FadeSeconds = Annotated[float, Meta(ge=0.0, le=60.0)]


class Clip(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A span of a source track placed on the timeline."""

    id: Identifier
    track_id: Identifier
    in_seconds: SourceTime
    out_seconds: SourceTime
    position_beats: Annotated[float, Meta(ge=0.0, le=100_000.0)]
    gain_db: Annotated[float, Meta(ge=-60.0, le=24.0)] = 0.0
    fade_in_seconds: FadeSeconds = 0.0
    fade_out_seconds: FadeSeconds = 0.0
    pitch_shift_semitones: Annotated[float, Meta(ge=-24.0, le=24.0)] = 0.0
    source_bpm: Bpm | None = None
    source_key: KeySignature | None = None
    effects: EffectChain = ()
    muted: bool = False
    stem: Stem = "full"
    """Which part of the source plays: all of it, or one side of its harmonic/percussive
    split (see :mod:`dsp.stems`)."""

    def __post_init__(self) -> None:
        if self.out_seconds <= self.in_seconds:
            raise ValueError(f"clip {self.id!r}: out_seconds must be after in_seconds")
        if self.out_seconds - self.in_seconds > MAX_CLIP_SOURCE_SECONDS:
            raise ValueError(
                f"clip {self.id!r}: longer than {MAX_CLIP_SOURCE_SECONDS:.0f} s of source"
            )


class Timeline(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A mashup: project tempo and key, clips, and the master effect chain."""

    bpm: Bpm = 120.0
    key: KeySignature | None = None
    clips: Annotated[tuple[Clip, ...], Meta(max_length=MAX_CLIPS)] = ()
    master: EffectChain = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for clip in self.clips:
            if clip.id in seen:
                raise ValueError(f"duplicate clip id {clip.id!r}")
            seen.add(clip.id)
            factor = stretch_factor(clip, self)
            if not MIN_STRETCH <= factor <= MAX_STRETCH:
                raise ValueError(
                    f"clip {clip.id!r}: tempo {clip.source_bpm} is too far from {self.bpm} "
                    f"(stretch {factor:.2f} outside {MIN_STRETCH}..{MAX_STRETCH})"
                )


def stretch_factor(clip: Clip, timeline: Timeline) -> float:
    """Speed-up applied to the clip (pedalboard's ``stretch_factor``): >1 is faster."""
    return timeline.bpm / clip.source_bpm if clip.source_bpm else 1.0


def pitch_shift(clip: Clip, timeline: Timeline) -> float:
    """Total shift in semitones: onto the project key, plus the clip's own shift."""
    shift = clip.pitch_shift_semitones
    if clip.source_key is not None and timeline.key is not None:
        shift += semitones_between(clip.source_key, timeline.key)
    return shift


def clip_start_seconds(clip: Clip, timeline: Timeline) -> float:
    """Where the clip starts on the timeline, in seconds."""
    return clip.position_beats * 60.0 / timeline.bpm


def clip_length_seconds(clip: Clip, timeline: Timeline) -> float:
    """How long the clip sounds on the timeline, excluding effect tails."""
    return (clip.out_seconds - clip.in_seconds) / stretch_factor(clip, timeline)


def timeline_duration_seconds(timeline: Timeline) -> float:
    """End of the last sound on the timeline, including clip and master tails."""
    end = 0.0
    for clip in timeline.clips:
        if clip.muted:
            continue
        clip_end = clip_start_seconds(clip, timeline) + clip_length_seconds(clip, timeline)
        end = max(end, clip_end + tail_seconds(clip.effects))
    return end + tail_seconds(timeline.master) if end > 0 else 0.0


def timeline_from_builtins(obj: Any) -> Timeline:
    """Validate plain Python data (e.g. parsed JSON) into a Timeline."""
    try:
        return msgspec.convert(obj, Timeline)
    except msgspec.ValidationError as exc:
        raise InvalidTimeline(str(exc)) from None


def timeline_from_json(data: bytes | str) -> Timeline:
    """Decode and validate a JSON timeline."""
    try:
        return msgspec.json.decode(data, type=Timeline)
    except msgspec.ValidationError as exc:
        raise InvalidTimeline(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidTimeline(f"malformed JSON: {exc}") from None


def validate_timeline(timeline: Timeline) -> Timeline:
    """Check every constraint of a Timeline however it was built; InvalidTimeline if not."""
    if not isinstance(timeline, Timeline):
        raise InvalidTimeline(f"expected a Timeline, got {type(timeline).__name__}")
    try:
        return timeline_from_builtins(msgspec.to_builtins(timeline))
    except ValueError as exc:  # raised by __post_init__ outside msgspec's decoder
        raise InvalidTimeline(str(exc)) from None
