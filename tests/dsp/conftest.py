"""Fixtures for the audio engine tests: the synthetic corpus, built once per session."""

from __future__ import annotations

import pytest

from dsp import Audio
from tests.dsp.corpus import (
    KeyItem,
    TempoItem,
    chord_progression,
    drum_loop,
    key_corpus,
    tempo_corpus,
)


@pytest.fixture(scope="session")
def tempo_items() -> list[TempoItem]:
    return tempo_corpus(count=20, seconds=10.0)


@pytest.fixture(scope="session")
def key_items() -> list[KeyItem]:
    return key_corpus(seconds=8.0)


@pytest.fixture(scope="session")
def drums() -> Audio:
    return drum_loop(120.0, "rock", 6.0, seed=11)


@pytest.fixture(scope="session")
def chords() -> Audio:
    return chord_progression(9, "minor", 6.0, seed=12)
