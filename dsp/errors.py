"""The exceptions dsp raises.

Every failure caused by the input (bytes that are not audio, a truncated file, a
timeline that breaks the rules) is an :class:`AudioError`, so a caller can turn
all of them into one kind of client error. :class:`Superseded` is not a
failure: it tells a preview caller that a newer request made this one moot.
"""

from __future__ import annotations


class AudioError(Exception):
    """Base class for every error caused by audio or timeline input."""


class UnsupportedFormat(AudioError):
    """The input is not one of the accepted formats (wav, flac, mp3, ogg/vorbis)."""


class CorruptAudio(AudioError):
    """The input claims to be a supported format but is damaged or truncated."""


class AudioTooLong(AudioError):
    """The input is larger or longer than the caller allows."""


class InvalidTimeline(AudioError):
    """A timeline or effect chain does not satisfy its schema or rules."""


class MissingSource(AudioError):
    """A timeline clip refers to a track that the source loader cannot provide."""


class PreviewBusy(AudioError):
    """The preview pool has too many renders waiting; try again later."""


class Superseded(Exception):
    """A preview render was dropped because a newer one for the same key arrived."""
