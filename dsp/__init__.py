"""Blendtune's audio engine: decode/encode, analysis, mashup rendering and previews.

A library with no knowledge of sockets, HTTP or storage. The public surface
is what this module exports; the submodules are implementation detail except
where the docs (docs/audio.md) name them.
"""

from dsp.analysis import (
    KEY_THRESHOLD,
    TEMPO_THRESHOLD,
    Analysis,
    analyze,
    analyze_file,
    analyze_path,
)
from dsp.codec import (
    FORMATS,
    MIME_TYPES,
    PROJECT_RATE,
    Audio,
    AudioFormat,
    AudioInfo,
    decode,
    decode_file,
    encode,
    encode_file,
    probe,
    probe_file,
)
from dsp.effects import EFFECT_TYPES, Effect
from dsp.errors import (
    AudioError,
    AudioTooLong,
    CorruptAudio,
    InvalidTimeline,
    MissingSource,
    PreviewBusy,
    Superseded,
    UnsupportedFormat,
)
from dsp.keys import parse_key, semitones_between
from dsp.preview import (
    CacheStats,
    Previewer,
    PreviewResult,
    SourceLoader,
    StemLoader,
    path_loader,
)
from dsp.render import Rendered, render_timeline
from dsp.stems import split
from dsp.structure import PeakLevel, Peaks, Section, Stem, Structure
from dsp.timeline import (
    Clip,
    Timeline,
    timeline_duration_seconds,
    timeline_from_builtins,
    timeline_from_json,
    validate_timeline,
)

__all__ = [
    "EFFECT_TYPES",
    "FORMATS",
    "KEY_THRESHOLD",
    "MIME_TYPES",
    "PROJECT_RATE",
    "TEMPO_THRESHOLD",
    "Analysis",
    "Audio",
    "AudioError",
    "AudioFormat",
    "AudioInfo",
    "AudioTooLong",
    "CacheStats",
    "Clip",
    "CorruptAudio",
    "Effect",
    "InvalidTimeline",
    "MissingSource",
    "PeakLevel",
    "Peaks",
    "PreviewBusy",
    "PreviewResult",
    "Previewer",
    "Rendered",
    "Section",
    "SourceLoader",
    "Stem",
    "StemLoader",
    "Structure",
    "Superseded",
    "Timeline",
    "UnsupportedFormat",
    "analyze",
    "analyze_file",
    "analyze_path",
    "decode",
    "decode_file",
    "encode",
    "encode_file",
    "parse_key",
    "path_loader",
    "probe",
    "probe_file",
    "render_timeline",
    "semitones_between",
    "split",
    "timeline_duration_seconds",
    "timeline_from_builtins",
    "timeline_from_json",
    "validate_timeline",
]
