"""Live previews: render a window of a timeline fast, off the event loop.

A :class:`Previewer` owns a small thread pool (pedalboard and numpy release
the GIL, so two workers use two cores) and a cache bounded by bytes that
keeps three kinds of audio, each keyed by everything that shapes it:

* ``source``: a decoded track, as returned by the injected loader, and ``stem``: one side
  of its harmonic/percussive split, from the injected ``stem_loader`` (a stored stem) or
  split here from the track when there is none;
* ``stretch``: a chunk of a clip cut from its source, stretched and shifted
  (the expensive step), keyed by track, in/out points, stretch factor, shift,
  chunk size and index, so moving a clip or changing its gain or effects
  reuses it. Draft previews stretch in 8-second chunks, so a window of a long
  clip costs only the chunks it touches; high quality uses one whole chunk;
* ``clip``: the stretched chunks a window needs, joined, after fades,
  effects and gain.

Renders that share a ``key`` (say, a room id) supersede one another: when a
newer render with the same key arrives, the older one stops at its next step
and raises :class:`dsp.Superseded`. Identical work requested concurrently
(two rooms stretching the same clip) is done once.

dsp knows nothing of storage: the caller injects an async ``loader`` that
turns a track id into decoded :class:`dsp.Audio` (e.g. look the file up, then
``await asyncio.to_thread(dsp.decode_file, path)``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt

from dsp.codec import (
    DEFAULT_MAX_SECONDS,
    MIME_TYPES,
    PROJECT_RATE,
    Audio,
    AudioFormat,
    decode_file,
    encode,
)
from dsp.effects import tail_seconds
from dsp.errors import AudioError, InvalidTimeline, MissingSource, PreviewBusy, Superseded
from dsp.render import (
    CHUNK_FRAMES,
    DEFAULT_CEILING_DBTP,
    DEFAULT_TARGET_LUFS,
    LOSSY,
    check_window,
    clip_first_frame,
    clip_frames,
    clips_in_window,
    encode_under_ceiling,
    finish_span,
    join_chunks,
    master,
    master_ceiling,
    mix_window,
    stretch_chunk,
)
from dsp.stems import split
from dsp.structure import Stem
from dsp.timeline import (
    Clip,
    Timeline,
    pitch_shift,
    stretch_factor,
    timeline_duration_seconds,
    validate_timeline,
)

T = TypeVar("T")
Samples = npt.NDArray[np.float32]

DEFAULT_CACHE_BYTES: Final = 512 * 1024 * 1024
MAX_PREVIEW_SECONDS: Final = 20 * 60.0


class SourceLoader(Protocol):
    """Turns a track id into decoded audio at the project rate.

    Raise :class:`dsp.MissingSource` for an unknown track. It is awaited on
    the event loop, so it must not block: decode in a thread.
    """

    def __call__(self, track_id: str, /) -> Awaitable[Audio]: ...


class StemLoader(Protocol):
    """Turns a track id and a stem (``"harmonic"`` or ``"percussive"``) into decoded audio
    at the project rate, or None when no stored stem exists (the previewer then splits
    the full track itself). Awaited on the event loop: decode in a thread."""

    def __call__(self, track_id: str, stem: Stem, /) -> Awaitable[Audio | None]: ...


def path_loader(
    resolve: Callable[[str], Awaitable[str | os.PathLike[str] | None]],
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> SourceLoader:
    """A :class:`SourceLoader` over files: ``resolve`` maps a track id to a path
    (or None when there is no such track) and the file is decoded in a thread."""

    async def load(track_id: str) -> Audio:
        path = await resolve(track_id)
        if path is None:
            raise MissingSource(f"no audio for track {track_id!r}")
        return await asyncio.to_thread(decode_file, path, max_seconds=max_seconds)

    return load


@dataclass(frozen=True, slots=True, eq=False)
class PreviewResult:
    """An encoded preview window and what was measured on it."""

    data: bytes
    format: AudioFormat
    mime_type: str
    start_seconds: float
    duration_seconds: float
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    render_seconds: float


class CacheStats(msgspec.Struct, frozen=True):
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int


class ByteLRU:
    """Least-recently-used cache of read-only arrays, bounded by their total bytes.

    Used from the event loop thread only, so it needs no lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()

    def get(self, key: Hashable) -> object | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: Hashable, value: object, size: int) -> None:
        if size > self.max_bytes:
            return  # would evict everything else for one item: do not keep it
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted

    def drop(self, matches: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._items if matches(k)]:
            _, size = self._items.pop(key)
            self.bytes -= size

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> CacheStats:
        return CacheStats(len(self._items), self.bytes, self.max_bytes, self.hits, self.misses)


def _frozen(samples: Samples) -> Samples:
    samples.flags.writeable = False  # shared between renders: nobody may write into it
    return samples


def _checked(track_id: str, audio: Audio) -> Audio:
    if audio.sample_rate != PROJECT_RATE or audio.channels != 2:
        raise InvalidTimeline(
            f"track {track_id!r} must be stereo at {PROJECT_RATE} Hz (use dsp.decode)"
        )
    _frozen(audio.samples)
    return audio


class Previewer:
    """Async preview renderer with a bounded worker pool and a byte-bounded cache.

    Use one per process; call :meth:`close` (or ``async with``) at shutdown.
    """

    def __init__(
        self,
        loader: SourceLoader,
        *,
        stem_loader: StemLoader | None = None,
        workers: int = 2,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_pending: int = 16,
        high_quality: bool = False,
        target_lufs: float | None = DEFAULT_TARGET_LUFS,
        ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
        format: AudioFormat = "mp3",
        mp3_quality: str = "V5",
    ) -> None:
        self._loader = loader
        self._stem_loader = stem_loader
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dsp-preview")
        self._cache = ByteLRU(cache_bytes)
        self._inflight: dict[Hashable, asyncio.Task[object]] = {}
        self._latest: dict[Hashable, int] = {}
        self._counter = itertools.count(1)
        self._pending = 0
        self._max_pending = max_pending
        self._high_quality = high_quality
        self._target_lufs = target_lufs
        self._ceiling_dbtp = ceiling_dbtp
        self._format = format
        # VBR ~130 kbps: plenty for a preview and about 1.4x faster to encode than V2.
        self._mp3_quality = mp3_quality

    def _quality(self, fmt: AudioFormat) -> str | None:
        return self._mp3_quality if fmt == "mp3" else None

    async def __aenter__(self) -> Previewer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting work; running steps finish, queued ones are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def forget_track(self, track_id: str) -> None:
        """Drop cached audio derived from a track (e.g. after it was deleted)."""
        self._cache.drop(lambda key: isinstance(key, tuple) and key[1] == track_id)

    async def render(
        self,
        timeline: Timeline,
        *,
        start_seconds: float = 0.0,
        duration_seconds: float | None = 15.0,
        key: Hashable | None = None,
        format: AudioFormat | None = None,
        high_quality: bool | None = None,
    ) -> PreviewResult:
        """Render and encode ``duration_seconds`` of ``timeline`` from ``start_seconds``.

        ``duration_seconds=None`` renders to the end of the timeline. With a
        ``key``, a newer render with the same key makes this one raise
        :class:`Superseded`. Raises :class:`PreviewBusy` when too many renders
        wait, and :class:`AudioError` subclasses for bad timelines or sources.
        The window is normalised on its own to the target loudness.
        """
        began = time.perf_counter()
        timeline = validate_timeline(timeline)
        check_window(start_seconds, duration_seconds)
        end = (
            timeline_duration_seconds(timeline)
            if duration_seconds is None
            else start_seconds + duration_seconds
        )
        end = max(end, start_seconds + 0.001)
        if end - start_seconds > MAX_PREVIEW_SECONDS:
            raise InvalidTimeline(f"a preview may last at most {MAX_PREVIEW_SECONDS:.0f} s")
        if self._pending >= self._max_pending:
            raise PreviewBusy(f"{self._pending} previews are already waiting")
        generation = next(self._counter)
        if key is not None:
            self._latest[key] = generation

        def check() -> None:
            if key is not None and self._latest.get(key) != generation:
                raise Superseded(f"a newer preview for {key!r} was requested")

        self._pending += 1
        try:
            quality = self._high_quality if high_quality is None else high_quality
            clips = clips_in_window(timeline, start_seconds, end)
            master_preroll = min(start_seconds, 2.0) if timeline.master else 0.0
            window = (
                round((start_seconds - master_preroll) * PROJECT_RATE),
                round(end * PROJECT_RATE),
            )
            outcomes = await asyncio.gather(
                *(self._clip_audio(clip, timeline, quality, window, check) for clip in clips),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            placed = [o for o in outcomes if not isinstance(o, BaseException)]
            check()
            fmt = format or self._format
            result = await self._run(self._finish, timeline, placed, start_seconds, end, fmt, check)
            check()
            data, rendered_start, duration, loudness, peak = result
            return PreviewResult(
                data=data,
                format=fmt,
                mime_type=MIME_TYPES[fmt],
                start_seconds=rendered_start,
                duration_seconds=duration,
                loudness_lufs=loudness,
                true_peak_dbtp=peak,
                render_seconds=time.perf_counter() - began,
            )
        finally:
            self._pending -= 1
            if key is not None and self._latest.get(key) == generation:
                del self._latest[key]

    # ------------------------------------------------------------------ steps

    async def _clip_audio(
        self,
        clip: Clip,
        timeline: Timeline,
        quality: bool,
        window: tuple[int, int],
        check: Callable[[], None],
    ) -> tuple[int, Samples]:
        """The finished audio of the part of ``clip`` that sounds in ``window``
        (timeline frames), and the timeline frame where it starts.

        Draft previews stretch in chunks of :data:`CHUNK_FRAMES`, so a window
        costs only the chunks it touches; high quality stretches whole clips.
        """
        rate = PROJECT_RATE
        # The makers run on behalf of every render waiting for the same key, so
        # they never call ``check``: only the requester decides to give up.
        check()
        source = await self.source(clip.track_id, clip.stem)
        total = clip_frames(source, clip, timeline)
        chunk = total if quality else CHUNK_FRAMES
        factor, shift = stretch_factor(clip, timeline), pitch_shift(clip, timeline)
        base = (
            "stretch",
            clip.track_id,
            clip.stem,
            clip.in_seconds,
            clip.out_seconds,
            factor,
            shift,
            quality,
            chunk,
        )
        # Effects start a little before the window so reverbs and compressors are warm.
        preroll = (
            round(min(max(tail_seconds(clip.effects), 0.5), 3.0) * rate) if clip.effects else 0
        )
        start = clip_first_frame(clip, timeline, rate)
        # At least the clip's last frame: a clip whose source ends before its
        # out point may reach the window only on paper.
        lo = min(max(window[0] - start - preroll, 0), max(total - preroll, 0), total - 1)
        hi = min(max(window[1] - start, lo + 1), total)
        first, last = lo // chunk, (hi - 1) // chunk
        finished_key = (
            "clip",
            clip.track_id,
            base,
            first,
            last,
            clip.fade_in_seconds,
            clip.fade_out_seconds,
            clip.gain_db,
            msgspec.json.encode(clip.effects),
        )
        cached = self._cache.get(finished_key)
        if cached is not None:
            return first * chunk + start, cast(Samples, cached)

        def stretch(index: int) -> Callable[[], Awaitable[Samples]]:
            async def make() -> Samples:
                return _frozen(
                    await self._run(
                        stretch_chunk,
                        source,
                        clip,
                        timeline,
                        index,
                        high_quality=quality,
                        chunk_frames=chunk,
                    )
                )

            return make

        chunks = await asyncio.gather(
            *(self._once((*base, i), stretch(i)) for i in range(first, last + 1))
        )
        check()

        def finish() -> Samples:
            joined = join_chunks(list(chunks), first, total, chunk)
            return finish_span(joined, first * chunk, total, clip, rate)

        async def make_finished() -> Samples:
            return _frozen(await self._run(finish))

        return first * chunk + start, await self._once(finished_key, make_finished)

    async def source(self, track_id: str, stem: Stem = "full") -> Audio:
        """The decoded track (or one of its stems), from the cache or the loaders."""
        if stem != "full":
            return await self._stem(track_id, stem)

        async def load() -> Audio:
            try:
                audio = await self._loader(track_id)
            except AudioError:
                raise
            except (KeyError, LookupError, FileNotFoundError) as exc:
                raise MissingSource(f"no audio for track {track_id!r}: {exc}") from None
            return _checked(track_id, audio)

        return await self._once(("source", track_id), load)

    async def _stem(self, track_id: str, stem: Stem) -> Audio:
        async def load() -> Audio:
            stored = None
            if self._stem_loader is not None:
                try:
                    stored = await self._stem_loader(track_id, stem)
                except AudioError:
                    raise
                except (KeyError, LookupError, FileNotFoundError) as exc:
                    raise MissingSource(f"no {stem} stem for track {track_id!r}: {exc}") from None
            if stored is not None:
                return _checked(track_id, stored)
            # No stored stem (say, an upload analysed before stems existed): split the
            # track here, and keep the other stem too, since it came for free.
            full = await self.source(track_id)
            harmonic, percussive = await self._run(split, full)
            stems = {"harmonic": harmonic, "percussive": percussive}
            for name, audio in stems.items():
                if name != stem:
                    _checked(track_id, audio)
                    self._cache.put(("stem", track_id, name), audio, audio.nbytes)
            return _checked(track_id, stems[stem])

        return await self._once(("stem", track_id, stem), load)

    async def _once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """Return the cached value for ``key`` or make it, once however many ask.

        The making runs in its own task: a requester that is cancelled or
        superseded stops waiting, but the work finishes for the others (and
        for the cache).
        """
        cached = self._cache.get(key)
        if cached is not None:
            return cast(T, cached)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fill(key, make))
            # Nobody may be left to read a failure: mark it retrieved.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[key] = task
        return cast(T, await asyncio.shield(task))

    async def _fill(self, key: Hashable, make: Callable[[], Awaitable[object]]) -> object:
        try:
            value = await make()
        finally:
            del self._inflight[key]
        size = value.nbytes if isinstance(value, (np.ndarray, Audio)) else 0
        self._cache.put(key, value, size)
        return value

    async def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def _finish(
        self,
        timeline: Timeline,
        placed: list[tuple[int, Samples]],
        start_seconds: float,
        end_seconds: float,
        fmt: AudioFormat,
        check: Callable[[], None],
    ) -> tuple[bytes, float, float, float | None, float | None]:
        rate = PROJECT_RATE
        preroll = min(start_seconds, 2.0) if timeline.master else 0.0  # as in render()
        window_start = round((start_seconds - preroll) * rate)
        frames = max(1, round(end_seconds * rate) - window_start)
        mix = mix_window(placed, window_start, frames)
        rendered = master(
            mix,
            timeline,
            rate,
            start_seconds=start_seconds,
            preroll_frames=round(preroll * rate),
            target_lufs=self._target_lufs,
            ceiling_dbtp=master_ceiling(self._ceiling_dbtp, fmt),
        )
        check()
        lufs, peak = rendered.loudness_lufs, rendered.true_peak_dbtp
        if self._target_lufs is not None and fmt in LOSSY:
            # What the listener decodes must stay under the ceiling, not just the master.
            encoded = encode_under_ceiling(
                rendered.audio,
                fmt,
                ceiling_dbtp=self._ceiling_dbtp,
                quality=self._quality(fmt),
                loudness_lufs=rendered.loudness_lufs,
            )
            data, lufs, peak = encoded.data, encoded.loudness_lufs, encoded.true_peak_dbtp
        else:
            data = encode(rendered.audio, fmt, quality=self._quality(fmt))
        return (data, start_seconds, rendered.audio.duration_seconds, lufs, peak)
