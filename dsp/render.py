"""Rendering a timeline to audio, as plain synchronous steps.

The steps are separate so that :mod:`dsp.preview` can cache the expensive ones:

1. :func:`stretch_clip` cuts the clip from its source and time-stretches and
   pitch-shifts it in one ``time_stretch`` call (pedalboard's streaming
   ``PitchShift`` outputs silence when used in chunks, pedalboard#415).
   Previews use :func:`stretch_chunk` and :func:`join_chunks` instead: the
   same, in independently stretched, crossfaded chunks of a few seconds;
2. :func:`finish_clip` (or :func:`finish_span` for part of a clip) applies
   fades, the clip's effect chain (with room for its tail) and gain;
3. :func:`mix_window` places finished clips sample-accurately in a window;
4. :func:`master` runs the master chain, then :func:`normalize` brings the
   result to the target loudness under a true-peak limiter.

:func:`render_timeline` strings them together for a whole timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from pedalboard import time_stretch

from dsp import loudness
from dsp.analysis import integrated_loudness, true_peak_dbtp
from dsp.codec import PROJECT_RATE, Audio, AudioFormat, decode, encode
from dsp.effects import build_board, tail_seconds
from dsp.errors import AudioTooLong, InvalidTimeline, MissingSource
from dsp.stems import split
from dsp.structure import Stem
from dsp.timeline import (
    Clip,
    Timeline,
    clip_start_seconds,
    pitch_shift,
    stretch_factor,
    timeline_duration_seconds,
    validate_timeline,
)

Samples = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]
Check = Callable[[], None]
Progress = Callable[[int, int], None]
Sources = Mapping[str, Audio] | Callable[[str], Audio]
StemSources = Callable[[str, Stem], Audio | None]

DEFAULT_TARGET_LUFS: Final = -14.0
DEFAULT_CEILING_DBTP: Final = -1.0
DEFAULT_MAX_RENDER_SECONDS: Final = 20 * 60.0
MAX_GAIN_DB: Final = 50.0
"""Normalisation never raises the level more than this (near-silent mixes stay quiet)."""

_LIMITER_WINDOW_SECONDS: Final = 0.008

SOURCE_SLACK_SECONDS: Final = 0.02
"""A clip may end this far past its source's end (durations are stored rounded to 10 ms);
further is refused, as the mashup room refuses it, rather than rendered as silence."""

TARGET_LUFS_RANGE: Final = (-40.0, -5.0)
CEILING_DBTP_RANGE: Final = (-20.0, 0.0)
LOSSY: Final = ("mp3", "ogg")
LOSSY_HEADROOM_DB: Final = 0.3
"""Masters bound for MP3 or Vorbis are limited this much under the ceiling: the codec
overshoots by about that, and one encoding is cheaper than two."""


def master_ceiling(ceiling_dbtp: float, fmt: AudioFormat) -> float:
    """The ceiling to limit a master to, for output in ``fmt``."""
    return ceiling_dbtp - LOSSY_HEADROOM_DB if fmt in LOSSY else ceiling_dbtp


CHUNK_FRAMES: Final = 8 * PROJECT_RATE
"""Previews stretch clips in chunks of this many output frames."""
CHUNK_CROSSFADE: Final = 512
_CHUNK_MARGIN_SECONDS: Final = 0.25


@dataclass(frozen=True, slots=True, eq=False)
class Rendered:
    """A rendered stretch of timeline with its measured loudness and true peak."""

    audio: Audio
    start_seconds: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None


# --------------------------------------------------------------------------- clips


def _source_span(source: Audio, clip: Clip) -> tuple[int, int]:
    """The clip's first and last (exclusive) source frames, refusing an empty span."""
    rate = source.sample_rate
    first = round(clip.in_seconds * rate)
    last = min(round(clip.out_seconds * rate), source.frames)
    if first >= last:
        raise InvalidTimeline(
            f"clip {clip.id!r} starts at {clip.in_seconds:.3f} s, after the end of track "
            f"{clip.track_id!r} ({source.duration_seconds:.3f} s)"
        )
    return first, last


def check_inside(source: Audio, clip: Clip) -> None:
    """Refuse a clip that ends past its source's end (beyond :data:`SOURCE_SLACK_SECONDS`).

    Whole renders check this; previews do not (a room's stored durations may differ from
    the decoded audio by a few milliseconds, and the room itself refuses such clips).
    """
    if clip.out_seconds > source.duration_seconds + SOURCE_SLACK_SECONDS:
        raise InvalidTimeline(
            f"clip {clip.id!r} ends at {clip.out_seconds:.3f} s, after the end of track "
            f"{clip.track_id!r} ({source.duration_seconds:.3f} s)"
        )


def _stretch(segment: Samples, rate: int, factor: float, shift: float, hq: bool) -> Samples:
    if factor == 1.0 and shift == 0.0:
        return np.array(segment, dtype=np.float32)  # a copy: sources stay untouched
    out = time_stretch(
        np.ascontiguousarray(segment),
        rate,
        stretch_factor=factor,
        pitch_shift_in_semitones=shift,
        high_quality=hq,
        # Draft mode also takes the short FFT window: ~1.6x faster, a little
        # less clean on sustained tones; fine for a preview.
        use_long_fft_window=None if hq else False,
    )
    return np.ascontiguousarray(out, dtype=np.float32)


def stretch_clip(
    source: Audio, clip: Clip, timeline: Timeline, *, high_quality: bool = True
) -> Samples:
    """Cut the clip from its source, then stretch to tempo and shift to key in one pass."""
    first, last = _source_span(source, clip)
    factor, shift = stretch_factor(clip, timeline), pitch_shift(clip, timeline)
    return _stretch(source.samples[:, first:last], source.sample_rate, factor, shift, high_quality)


def clip_frames(source: Audio, clip: Clip, timeline: Timeline) -> int:
    """How many frames the stretched clip lasts (before effect tails)."""
    first, last = _source_span(source, clip)
    return round((last - first) / stretch_factor(clip, timeline))


def stretch_chunk(
    source: Audio,
    clip: Clip,
    timeline: Timeline,
    index: int,
    *,
    high_quality: bool = False,
    chunk_frames: int = CHUNK_FRAMES,
) -> Samples:
    """Frames ``[index * chunk_frames, next chunk + crossfade)`` of the stretched clip.

    Previews stretch clips chunk by chunk so that a window of a long clip
    costs only the chunks it touches, and two workers can share one clip.
    Each chunk is stretched with some source context on either side (then
    dropped) and runs ``CHUNK_CROSSFADE`` frames into the next one, so
    :func:`join_chunks` can crossfade the seam. The first chunk starts at the
    clip's first sample, exactly as :func:`stretch_clip` does.
    """
    rate = source.sample_rate
    first, last = _source_span(source, clip)
    factor, shift = stretch_factor(clip, timeline), pitch_shift(clip, timeline)
    total = round((last - first) / factor)
    begin = index * chunk_frames
    end = min(begin + chunk_frames + CHUNK_CROSSFADE, total)
    if begin >= end:
        raise ValueError(f"chunk {index} is past the end of clip {clip.id!r}")
    wanted_from = first + round(begin * factor)
    wanted_to = min(last, first + round(end * factor))
    margin = round(_CHUNK_MARGIN_SECONDS * rate)
    from_ = max(first, wanted_from - margin)
    to = min(last, wanted_to + margin)
    out = _stretch(source.samples[:, from_:to], rate, factor, shift, high_quality)
    skip = round((wanted_from - from_) / factor)
    out = out[:, skip : skip + end - begin]
    if out.shape[1] < end - begin:  # the stretcher may come up a frame or two short
        out = np.pad(out, ((0, 0), (0, end - begin - out.shape[1])))
    return np.ascontiguousarray(out)


def join_chunks(
    chunks: list[Samples], first_index: int, total: int, chunk_frames: int = CHUNK_FRAMES
) -> Samples:
    """Join consecutive chunks from :func:`stretch_chunk`, crossfading the seams.

    The result covers clip frames ``[first_index * chunk_frames, ...)`` up to
    the end of the last chunk (its run into the next chunk is dropped).
    """
    begin = first_index * chunk_frames
    end = min((first_index + len(chunks)) * chunk_frames, total)
    out = np.zeros((chunks[0].shape[0], end - begin), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, CHUNK_CROSSFADE, endpoint=False, dtype=np.float32)
    for n, chunk in enumerate(chunks):
        piece = np.array(chunk[:, : end - begin - n * chunk_frames], dtype=np.float32)
        if n > 0:  # fade in over the previous chunk's run-on, which fades out
            fade = min(CHUNK_CROSSFADE, piece.shape[1])
            piece[:, :fade] *= ramp[:fade]
        if n < len(chunks) - 1:
            run_on = piece.shape[1] - chunk_frames
            if run_on > 0:
                piece[:, chunk_frames:] *= 1.0 - ramp[:run_on]
        out[:, n * chunk_frames : n * chunk_frames + piece.shape[1]] += piece
    return out


def _fade_span(samples: Samples, offset: int, total: int, fade_in: int, fade_out: int) -> None:
    """Apply the clip's fades to ``samples``, which hold clip frames from ``offset``."""
    frames = samples.shape[1]
    # Equal-power (sine) ramps: crossfading clips keep a steady level.
    if fade_in > 0 and offset < fade_in:
        idx = np.arange(offset, min(offset + frames, fade_in), dtype=np.float32)
        samples[:, : len(idx)] *= np.sin(0.5 * np.pi * (idx + 0.5) / fade_in)
    fade_out = min(fade_out, total)
    if fade_out > 0 and offset + frames > total - fade_out:
        lo = max(offset, total - fade_out)
        idx = np.arange(lo, min(offset + frames, total), dtype=np.float32)
        ramp = np.sin(0.5 * np.pi * (total - idx - 0.5) / fade_out)
        samples[:, lo - offset : lo - offset + len(idx)] *= ramp


def finish_span(
    span: Samples, offset: int, total: int, clip: Clip, rate: int = PROJECT_RATE
) -> Samples:
    """Fades, effects and gain for clip frames ``[offset, offset + len)`` of ``total``.

    When the span reaches the clip's end, the effect chain rings out its tail.
    """
    out = np.array(span, dtype=np.float32)
    _fade_span(
        out,
        offset,
        total,
        round(clip.fade_in_seconds * rate),
        round(clip.fade_out_seconds * rate),
    )
    if clip.effects:
        tail = round(tail_seconds(clip.effects) * rate) if offset + out.shape[1] >= total else 0
        if tail:
            out = np.concatenate([out, np.zeros((out.shape[0], tail), np.float32)], axis=1)
        out = np.asarray(build_board(clip.effects)(out, rate), dtype=np.float32)
    if clip.gain_db:
        out *= np.float32(10 ** (clip.gain_db / 20))
    return out


def finish_clip(stretched: Samples, clip: Clip, rate: int = PROJECT_RATE) -> Samples:
    """Fades, then the clip's effect chain (ringing out its tail), then its gain."""
    return finish_span(stretched, 0, stretched.shape[1], clip, rate)


# --------------------------------------------------------------------------- mixing


def mix_window(
    placed: Iterable[tuple[int, Samples]], start: int, frames: int, channels: int = 2
) -> Samples:
    """Sum clips, each given as (first frame on the timeline, samples), into a window."""
    mix = np.zeros((channels, frames), dtype=np.float32)
    for position, samples in placed:
        lo = max(start, position)
        hi = min(start + frames, position + samples.shape[1])
        if lo < hi:
            mix[:, lo - start : hi - start] += samples[:, lo - position : hi - position]
    return mix


def _group_max(values: npt.NDArray[np.floating], stride: int) -> Floats:
    """The maximum of each run of ``stride`` frames (the last may be short)."""
    return np.maximum.reduceat(values, np.arange(0, len(values), stride)).astype(np.float64)


def _limiter_gain(peaks: Floats, gain: float, ceiling: float, width: int) -> Floats:
    """Smooth gain that keeps ``gain * peaks`` under ``ceiling`` everywhere.

    Hold the minimum needed gain over ±width, then average over width: every
    point in the averaging window holds a value no larger than the point's own
    need, so the smoothed gain never exceeds it (a look-ahead limiter,
    vectorised). Works on groups of frames; see :func:`normalize`.
    """
    # Imported here, not at start-up: see dsp.analysis._chroma_frames.
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(peaks * gain, 1e-12))
    if need.min() >= 1.0:
        return np.full_like(need, gain)
    held = minimum_filter1d(need, size=2 * width + 1, mode="nearest")
    smooth = uniform_filter1d(held, size=width, mode="nearest")
    gains: Floats = np.minimum(smooth, need) * gain
    return gains


def normalize(
    samples: Samples,
    rate: int,
    *,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
) -> tuple[Samples, float | None, float | None]:
    """Gain to ``target_lufs`` (BS.1770) under a true-peak limiter at ``ceiling_dbtp``.

    Returns the audio with its measured loudness and true peak (dBTP).
    Limiting lowers the loudness a little, so the gain is corrected a few
    times. Those iterations work on groups of about 0.7 ms (the oversampled
    peak and the K-weighted power of each group are computed once): the
    limiter's gain moves slowly, so weighting the gained signal equals gaining
    the weighted one to well within 0.05 LU. The result is measured exactly.
    """
    # Imported here, not at start-up: see dsp.analysis._chroma_frames.
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    frames = samples.shape[1]
    if frames == 0 or not np.any(samples):
        return samples, None, None
    # Margin: a 4x meter reads inter-sample peaks up to ~0.2 dB low on dense material.
    ceiling = 10 ** ((ceiling_dbtp - 0.2) / 20)
    limit = 10 ** (ceiling_dbtp / 20)
    stride = loudness.block_stride(rate)
    width = max(3, round(_LIMITER_WINDOW_SECONDS * rate / stride) | 1)
    envelope = loudness.peak_envelope(samples)
    peaks = _group_max(envelope, stride)
    power = loudness.weighted_powers(samples, rate, stride)

    def estimate(gain_db: float) -> tuple[Floats, float | None]:
        gains = _limiter_gain(peaks, 10 ** (gain_db / 20), ceiling, width)
        level = loudness.gated_loudness(
            loudness.block_powers(power * gains**2, rate, frames, stride)
        )
        return gains, level

    measured = loudness.gated_loudness(loudness.block_powers(power, rate, frames, stride))
    gain_db = 0.0 if measured is None else min(target_lufs - measured, MAX_GAIN_DB)
    gains, level = estimate(gain_db)
    # Secant search: limiting makes loudness grow ever more slowly with gain.
    previous: tuple[float, float] | None = None
    for _ in range(10):
        if level is None or abs(level - target_lufs) < 0.02 or gain_db >= MAX_GAIN_DB:
            break
        slope = 1.0
        if previous is not None and gain_db != previous[0]:
            slope = float(np.clip((level - previous[1]) / (gain_db - previous[0]), 0.05, 1.0))
        previous = (gain_db, level)
        gain_db = min(gain_db + (target_lufs - level) / slope, MAX_GAIN_DB)
        gains, level = estimate(gain_db)
    # Back to one gain per frame: interpolating between group gains stays under
    # each frame's need because every group's gain already holds its neighbours'.
    centres = np.arange(len(gains)) * stride + (stride - 1) / 2
    per_frame = np.interp(np.arange(frames), centres, gains).astype(np.float32)
    per_frame = np.minimum(per_frame, ceiling / np.maximum(envelope, 1e-12))
    out = np.ascontiguousarray(samples * per_frame, dtype=np.float32)
    # Where the gain moves fast, the gained signal's inter-sample peaks can
    # exceed the estimate: measure them exactly near the ceiling and pull those
    # spots down locally (the loudness barely moves).
    width_frames = width * stride | 1
    peak = 0.0
    for _ in range(3):
        near = envelope * per_frame > ceiling * 10 ** (-1.0 / 20)
        exact = loudness.peak_envelope_in(out, near)
        peak = float(max(exact.max(initial=0.0), (envelope * per_frame)[~near].max(initial=0.0)))
        if peak <= limit:
            break
        need = np.minimum(1.0, ceiling / np.maximum(exact, 1e-12))
        held = minimum_filter1d(need, size=2 * width_frames + 1, mode="nearest")
        extra = np.minimum(uniform_filter1d(held, size=width_frames, mode="nearest"), need)
        per_frame = per_frame * extra.astype(np.float32)
        out = np.ascontiguousarray(samples * per_frame, dtype=np.float32)
    if peak > limit:  # last resort, never expected: scale the whole thing
        out *= np.float32(limit / peak * 0.999)
        peak = limit * 0.999
    final = loudness.integrated_loudness(out, rate)
    return out, final, 20 * float(np.log10(peak)) if peak > 0 else None


def master(
    mix: Samples,
    timeline: Timeline,
    rate: int,
    *,
    start_seconds: float = 0.0,
    preroll_frames: int = 0,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
) -> Rendered:
    """Master chain, drop the pre-roll (it only warms the chain up), normalise."""
    out = mix
    if timeline.master:
        out = np.asarray(build_board(timeline.master)(mix, rate), dtype=np.float32)
    out = np.ascontiguousarray(out[:, preroll_frames:])
    if target_lufs is None:
        return measure(Audio(out, rate), start_seconds)
    out, lufs, peak = normalize(out, rate, target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp)
    return Rendered(
        Audio(out, rate),
        start_seconds,
        None if lufs is None else round(lufs, 2),
        None if peak is None else round(peak, 3),
    )


# --------------------------------------------------------------------------- timeline


def clip_first_frame(clip: Clip, timeline: Timeline, rate: int) -> int:
    """The timeline frame where the clip's first sample lands."""
    return round(clip_start_seconds(clip, timeline) * rate)


def clips_in_window(timeline: Timeline, start_seconds: float, end_seconds: float) -> list[Clip]:
    """Unmuted clips that sound (tail included) somewhere in [start, end)."""
    found = []
    for clip in timeline.clips:
        if clip.muted:
            continue
        begin = clip_start_seconds(clip, timeline)
        length = (clip.out_seconds - clip.in_seconds) / stretch_factor(clip, timeline)
        if begin < end_seconds and begin + length + tail_seconds(clip.effects) > start_seconds:
            found.append(clip)
    return found


def check_window(start_seconds: float, duration_seconds: float | None) -> None:
    """Refuse a window that starts before 0, lasts no time, or is not a number."""
    if not (math.isfinite(start_seconds) and start_seconds >= 0):
        raise InvalidTimeline(f"a window must start at a time >= 0, not {start_seconds!r}")
    if duration_seconds is not None and not (
        math.isfinite(duration_seconds) and duration_seconds > 0
    ):
        raise InvalidTimeline(f"a window must last > 0 s, not {duration_seconds!r}")


def render_timeline(
    timeline: Timeline,
    sources: Sources,
    *,
    stems: StemSources | None = None,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
    high_quality: bool = True,
    max_seconds: float = DEFAULT_MAX_RENDER_SECONDS,
    progress: Progress | None = None,
    check: Check | None = None,
) -> Rendered:
    """Render ``timeline`` (or a window of it) synchronously.

    ``sources`` maps track ids to decoded audio at the project rate (or is a
    function doing so). A clip whose ``stem`` is not ``"full"`` plays
    ``stems(track_id, stem)`` when that gives audio (say, a stored stem), else the
    stem is split from the full source here (:func:`dsp.stems.split`, once per track
    per render). ``progress(done, total)`` is called after each step;
    ``check()`` is called between steps and may raise to abandon the render.
    """
    timeline = validate_timeline(timeline)
    check_window(start_seconds, duration_seconds)
    rate = PROJECT_RATE
    end = (
        timeline_duration_seconds(timeline)
        if duration_seconds is None
        else start_seconds + duration_seconds
    )
    if end - start_seconds > max_seconds:
        raise AudioTooLong(f"render of {end - start_seconds:.0f} s exceeds {max_seconds:.0f} s")
    clips = clips_in_window(timeline, start_seconds, end)
    total = len(clips) + 1
    preroll = min(start_seconds, 2.0) if timeline.master else 0.0
    window_start = round((start_seconds - preroll) * rate)
    frames = max(0, round(end * rate) - window_start)
    placed = []
    splits: dict[str, tuple[Audio, Audio]] = {}
    for done, clip in enumerate(clips):
        if check is not None:
            check()
        source = _clip_source(sources, stems, splits, clip)
        if source.sample_rate != rate or source.channels != 2:
            raise InvalidTimeline(f"track {clip.track_id!r} is not stereo at {rate} Hz")
        check_inside(source, clip)
        finished = finish_clip(
            stretch_clip(source, clip, timeline, high_quality=high_quality), clip
        )
        placed.append((clip_first_frame(clip, timeline, rate), finished))
        if progress is not None:
            progress(done + 1, total)
    if check is not None:
        check()
    mix = mix_window(placed, window_start, frames)
    rendered = master(
        mix,
        timeline,
        rate,
        start_seconds=start_seconds,
        preroll_frames=round(preroll * rate),
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
    )
    if progress is not None:
        progress(total, total)
    return rendered


def check_levels(target_lufs: float | None, ceiling_dbtp: float) -> None:
    """Refuse a loudness target or true-peak ceiling no master would use (+50 LUFS)."""
    low, high = TARGET_LUFS_RANGE
    if target_lufs is not None and not (math.isfinite(target_lufs) and low <= target_lufs <= high):
        raise InvalidTimeline(
            f"target loudness {target_lufs} LUFS is outside {low:.0f}..{high:.0f} LUFS "
            "(streaming uses -14, broadcast -23)"
        )
    low, high = CEILING_DBTP_RANGE
    if not (math.isfinite(ceiling_dbtp) and low <= ceiling_dbtp <= high):
        raise InvalidTimeline(
            f"true-peak ceiling {ceiling_dbtp} dBTP is outside {low:.0f}..{high:.0f} dBTP"
        )


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """Encoded audio and what was measured on the bytes themselves (decoded again)."""

    data: bytes
    loudness_lufs: float | None
    true_peak_dbtp: float | None


def encode_under_ceiling(
    audio: Audio,
    fmt: AudioFormat,
    *,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
    quality: str | float | None = None,
    loudness_lufs: float | None = None,
) -> Encoded:
    """Encode, then measure what was written; keep lossy formats under the ceiling.

    MP3 and Vorbis change the waveform (pre-echo, band limiting), so a master limited to
    -1 dBTP can decode to -0.9. The bytes are decoded and measured; when the true peak is
    over the ceiling, the audio is turned down by the excess (plus 0.1 dB) and encoded again
    (a few rounds at most). The true peak returned is that of the written bytes; so is the
    loudness, unless the caller passes the loudness it measured before encoding
    (``loudness_lufs``: previews do, to save a pass; a codec moves it by hundredths of a
    LU), which is then corrected by any gain applied here.
    """
    data = encode(audio, fmt, quality=quality)
    if fmt not in LOSSY:
        level = integrated_loudness(audio) if loudness_lufs is None else loudness_lufs
        return Encoded(data, _rounded(level, 2), true_peak_dbtp(audio))
    gain_db = 0.0
    for attempt in range(4):
        written = decode(data, sample_rate=audio.sample_rate, max_seconds=None)
        peak = _decoded_peak_dbtp(written.samples, ceiling_dbtp)
        if peak is None or peak <= ceiling_dbtp or attempt == 3:
            if loudness_lufs is None:
                return Encoded(data, _rounded(integrated_loudness(written), 2), peak)
            return Encoded(data, _rounded(loudness_lufs + gain_db, 2), peak)
        gain_db += ceiling_dbtp - peak - 0.1 * (attempt + 1)
        # Each round turns down by the excess and a little more: it converges in one or two.
        samples = audio.samples * np.float32(10 ** (gain_db / 20))
        data = encode(Audio(samples, audio.sample_rate), fmt, quality=quality)
    raise AssertionError("unreachable")  # pragma: no cover


_NEAR_DB: Final = 2.0


def _decoded_peak_dbtp(samples: Samples, ceiling_dbtp: float) -> float | None:
    """The true peak of decoded audio, oversampled only where it matters.

    The 4x oversampled peak is computed in the 4096-frame blocks where a sample comes
    within 2 dB of the ceiling; elsewhere the samples are more than 2 dB under it and
    music's inter-sample peaks rise far less than that over the samples, so their sample
    peak stands. On a limited master this skips most of the oversampling.
    """
    magnitude = np.abs(samples).max(axis=0) if samples.shape[1] else np.zeros(0, np.float32)
    if not np.any(magnitude):
        return None
    near = magnitude > 10 ** ((ceiling_dbtp - _NEAR_DB) / 20)
    peak = float(magnitude[~near].max(initial=0.0))
    if near.any():
        peak = max(peak, float(loudness.peak_envelope_in(samples, near).max()))
    return round(20 * float(np.log10(peak)), 3)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def measure(audio: Audio, start_seconds: float = 0.0) -> Rendered:
    """Wrap rendered audio with its integrated loudness and true peak."""
    loudness = integrated_loudness(audio)
    return Rendered(
        audio,
        start_seconds,
        None if loudness is None else round(loudness, 2),
        true_peak_dbtp(audio),
    )


def _clip_source(
    sources: Sources,
    stems: StemSources | None,
    splits: dict[str, tuple[Audio, Audio]],
    clip: Clip,
) -> Audio:
    """The audio a clip cuts from: its track, or the stem of its track it asks for."""
    if clip.stem == "full":
        return _source(sources, clip.track_id)
    stored = stems(clip.track_id, clip.stem) if stems is not None else None
    if stored is not None:
        return stored
    if clip.track_id not in splits:
        splits[clip.track_id] = split(_source(sources, clip.track_id))
    harmonic, percussive = splits[clip.track_id]
    return harmonic if clip.stem == "harmonic" else percussive


def _source(sources: Sources, track_id: str) -> Audio:
    if callable(sources):
        return sources(track_id)
    try:
        return sources[track_id]
    except KeyError:
        raise MissingSource(f"no audio for track {track_id!r}") from None
