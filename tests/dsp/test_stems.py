"""The harmonic/percussive split, and clips that play one stem."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import dsp
from dsp import Audio, Clip, Previewer, Timeline
from dsp.render import render_timeline
from dsp.stems import split
from dsp.structure import Stem
from tests.dsp.corpus import drum_loop, pad


def _energy(audio: Audio) -> float:
    return float(np.mean(np.square(audio.samples, dtype=np.float64)))


@pytest.fixture(scope="module")
def drum_only() -> Audio:
    return drum_loop(120.0, "rock", 6.0, seed=21)


@pytest.fixture(scope="module")
def pad_only() -> Audio:
    return pad(9, "minor", 6.0, seed=22)


def _percussive_share(audio: Audio) -> float:
    harmonic, percussive = split(audio)
    return _energy(percussive) / (_energy(percussive) + _energy(harmonic))


def test_drums_go_to_the_percussive_stem(drum_only: Audio) -> None:
    # The kick's low, pitched body rings for ~0.1 s: HPSS gives part of it to the
    # harmonic side, so "mostly" rather than "all".
    assert _percussive_share(drum_only) > 0.5


def test_a_pad_goes_to_the_harmonic_stem(pad_only: Audio) -> None:
    assert _percussive_share(pad_only) < 0.1


def test_stems_sum_to_the_track(drum_only: Audio, pad_only: Audio) -> None:
    mix = Audio(drum_only.samples + pad_only.samples, 44100)
    harmonic, percussive = split(mix)
    assert harmonic.samples.shape == percussive.samples.shape == mix.samples.shape
    assert harmonic.samples.dtype == np.float32
    np.testing.assert_allclose(harmonic.samples + percussive.samples, mix.samples, atol=1e-5)
    # Each stem of the mix is mostly its own part: closer to it than to the other part.
    for stem, own, other in ((harmonic, pad_only, drum_only), (percussive, drum_only, pad_only)):
        assert _energy(Audio(stem.samples - own.samples, 44100)) < 0.5 * _energy(own)
        assert _energy(Audio(stem.samples - own.samples, 44100)) < _energy(other)


def test_split_of_nothing_and_of_a_few_frames() -> None:
    harmonic, percussive = split(Audio.silence(0))
    assert harmonic.frames == percussive.frames == 0
    short = Audio(np.full((2, 100), 0.25, np.float32), 44100)
    harmonic, percussive = split(short)
    np.testing.assert_allclose(harmonic.samples + percussive.samples, short.samples, atol=1e-6)


def _mix_timeline(stem: Stem) -> Timeline:
    return Timeline(bpm=120, clips=(Clip("a", "mix", 0.0, 4.0, 0.0, stem=stem),))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[-1], b.shape[-1])
    x, y = a[0, :n].astype(np.float64), b[0, :n].astype(np.float64)
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.square(a - b, dtype=np.float64)))


def test_render_plays_the_chosen_stem(drum_only: Audio, pad_only: Audio) -> None:
    mix = Audio(drum_only.samples + pad_only.samples, 44100)
    rendered = {
        stem: render_timeline(_mix_timeline(stem), {"mix": mix}, target_lufs=None)
        for stem in ("full", "harmonic", "percussive")
    }
    frames = 4 * 44100
    drums, pads = drum_only.samples[:, :frames], pad_only.samples[:, :frames]
    percussive, harmonic = rendered["percussive"].audio.samples, rendered["harmonic"].audio.samples
    assert _correlation(percussive, drums) > 0.7
    assert _correlation(harmonic, pads) > 0.8
    assert _distance(percussive, drums) < 0.5 * _distance(percussive, pads)
    assert _distance(harmonic, pads) < 0.5 * _distance(harmonic, drums)
    np.testing.assert_allclose(rendered["full"].audio.samples, mix.samples[:, :frames], atol=1e-6)


def test_render_uses_stored_stems_when_given(drum_only: Audio, pad_only: Audio) -> None:
    asked: list[tuple[str, str]] = []

    def stored(track_id: str, stem: Stem) -> Audio | None:
        asked.append((track_id, stem))
        return pad_only if stem == "harmonic" else None

    mix = Audio(drum_only.samples + pad_only.samples, 44100)
    out = render_timeline(_mix_timeline("harmonic"), {"mix": mix}, stems=stored, target_lufs=None)
    np.testing.assert_allclose(out.audio.samples, pad_only.samples[:, : 4 * 44100], atol=1e-6)
    assert asked == [("mix", "harmonic")]


async def test_preview_plays_stems_split_on_the_spot_or_stored(
    drum_only: Audio, pad_only: Audio
) -> None:
    mix = Audio(drum_only.samples + pad_only.samples, 44100)
    loads: list[str] = []

    async def loader(track_id: str) -> Audio:
        loads.append(track_id)
        await asyncio.sleep(0)
        return mix

    async with Previewer(loader, format="wav", target_lufs=None) as previewer:
        percussive = await previewer.render(_mix_timeline("percussive"), duration_seconds=4.0)
        harmonic = await previewer.render(_mix_timeline("harmonic"), duration_seconds=4.0)
    frames = 4 * 44100
    assert _correlation(dsp.decode(percussive.data).samples, drum_only.samples[:, :frames]) > 0.7
    assert _correlation(dsp.decode(harmonic.data).samples, pad_only.samples[:, :frames]) > 0.8
    assert loads == ["mix"]  # split once; the other stem came from the cache

    stems_asked: list[str] = []

    async def stem_loader(track_id: str, stem: Stem) -> Audio | None:
        stems_asked.append(stem)
        return pad_only if stem == "harmonic" else drum_only

    async with Previewer(
        loader, stem_loader=stem_loader, format="wav", target_lufs=None
    ) as previewer:
        result = await previewer.render(_mix_timeline("harmonic"), duration_seconds=4.0)
    np.testing.assert_allclose(
        dsp.decode(result.data).samples, pad_only.samples[:, :frames], atol=1e-4
    )
    assert stems_asked == ["harmonic"]


def test_clip_stem_is_validated() -> None:
    def with_stem(stem: str) -> dict[str, object]:
        clip = {"id": "a", "track_id": "t", "in_seconds": 0, "out_seconds": 1}
        return {"clips": [{**clip, "position_beats": 0, "stem": stem}]}

    with pytest.raises(dsp.InvalidTimeline):
        dsp.timeline_from_builtins(with_stem("vocals"))
    timeline = dsp.timeline_from_builtins(with_stem("percussive"))
    assert timeline.clips[0].stem == "percussive"
    assert Clip("b", "t", 0.0, 1.0, 0.0).stem == "full"
