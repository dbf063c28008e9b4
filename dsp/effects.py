"""The effects a timeline may use: a whitelist of pedalboard plugins.

Each effect is a frozen msgspec Struct tagged by ``type`` whose fields are
the plugin's parameters, each bounded by ``Meta`` so that a decoded effect can
always be built and run. Nothing here can load a plug-in file: only the
built-in plugins named below are ever constructed, and a fresh instance is
made for every call (pedalboard plugins are stateful; pedalboard#212).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Final

import msgspec
import pedalboard
from msgspec import Meta
from pedalboard._pedalboard import Pedalboard  # the typed home of pedalboard.Pedalboard

Db = Annotated[float, Meta(ge=-60.0, le=24.0)]
Cutoff = Annotated[float, Meta(ge=20.0, le=20000.0)]
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
Q = Annotated[float, Meta(ge=0.1, le=18.0)]
Feedback = Annotated[float, Meta(ge=-0.95, le=0.95)]
Rate = Annotated[float, Meta(ge=0.01, le=20.0)]
AttackMs = Annotated[float, Meta(ge=0.1, le=500.0)]
ReleaseMs = Annotated[float, Meta(ge=1.0, le=5000.0)]

MAX_EFFECTS: Final = 16
"""Longest effect chain a clip or the master bus may carry."""

MAX_TAIL_SECONDS: Final = 10.0


class _Effect(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    pass


class Gain(_Effect, frozen=True, tag="gain"):
    gain_db: Db = 0.0


class HighpassFilter(_Effect, frozen=True, tag="highpass"):
    cutoff_hz: Cutoff = 80.0


class LowpassFilter(_Effect, frozen=True, tag="lowpass"):
    cutoff_hz: Cutoff = 8000.0


class LowShelfFilter(_Effect, frozen=True, tag="low_shelf"):
    cutoff_hz: Cutoff = 200.0
    gain_db: Annotated[float, Meta(ge=-24.0, le=24.0)] = 0.0
    q: Q = 0.7071


class HighShelfFilter(_Effect, frozen=True, tag="high_shelf"):
    cutoff_hz: Cutoff = 6000.0
    gain_db: Annotated[float, Meta(ge=-24.0, le=24.0)] = 0.0
    q: Q = 0.7071


class PeakFilter(_Effect, frozen=True, tag="peak"):
    cutoff_hz: Cutoff = 1000.0
    gain_db: Annotated[float, Meta(ge=-24.0, le=24.0)] = 0.0
    q: Q = 0.7071


class Compressor(_Effect, frozen=True, tag="compressor"):
    threshold_db: Annotated[float, Meta(ge=-60.0, le=0.0)] = -18.0
    ratio: Annotated[float, Meta(ge=1.0, le=20.0)] = 4.0
    attack_ms: AttackMs = 5.0
    release_ms: ReleaseMs = 100.0


class Limiter(_Effect, frozen=True, tag="limiter"):
    threshold_db: Annotated[float, Meta(ge=-30.0, le=0.0)] = -3.0
    release_ms: ReleaseMs = 100.0


class NoiseGate(_Effect, frozen=True, tag="noise_gate"):
    threshold_db: Annotated[float, Meta(ge=-100.0, le=0.0)] = -60.0
    ratio: Annotated[float, Meta(ge=1.0, le=20.0)] = 10.0
    attack_ms: AttackMs = 1.0
    release_ms: ReleaseMs = 100.0


class Distortion(_Effect, frozen=True, tag="distortion"):
    drive_db: Annotated[float, Meta(ge=0.0, le=60.0)] = 20.0


class Clipping(_Effect, frozen=True, tag="clipping"):
    threshold_db: Annotated[float, Meta(ge=-40.0, le=0.0)] = -6.0


class Bitcrush(_Effect, frozen=True, tag="bitcrush"):
    bit_depth: Annotated[float, Meta(ge=2.0, le=24.0)] = 8.0


class Chorus(_Effect, frozen=True, tag="chorus"):
    rate_hz: Rate = 1.0
    depth: Unit = 0.25
    centre_delay_ms: Annotated[float, Meta(ge=1.0, le=50.0)] = 7.0
    feedback: Feedback = 0.0
    mix: Unit = 0.5


class Phaser(_Effect, frozen=True, tag="phaser"):
    rate_hz: Rate = 1.0
    depth: Unit = 0.5
    centre_frequency_hz: Annotated[float, Meta(ge=20.0, le=10000.0)] = 1300.0
    feedback: Feedback = 0.0
    mix: Unit = 0.5


class Delay(_Effect, frozen=True, tag="delay"):
    delay_seconds: Annotated[float, Meta(ge=0.001, le=2.0)] = 0.25
    feedback: Annotated[float, Meta(ge=0.0, le=0.9)] = 0.3
    mix: Unit = 0.3


class Reverb(_Effect, frozen=True, tag="reverb"):
    room_size: Unit = 0.5
    damping: Unit = 0.5
    wet_level: Unit = 0.33
    dry_level: Unit = 0.4
    width: Unit = 1.0


Effect = (
    Gain
    | HighpassFilter
    | LowpassFilter
    | LowShelfFilter
    | HighShelfFilter
    | PeakFilter
    | Compressor
    | Limiter
    | NoiseGate
    | Distortion
    | Clipping
    | Bitcrush
    | Chorus
    | Phaser
    | Delay
    | Reverb
)
"""Any whitelisted effect; decoded by its ``type`` tag."""

EffectChain = Annotated[tuple[Effect, ...], Meta(max_length=MAX_EFFECTS)]

EFFECT_TYPES: Final[tuple[str, ...]] = tuple(
    str(cls.__struct_config__.tag)
    for cls in (
        Gain,
        HighpassFilter,
        LowpassFilter,
        LowShelfFilter,
        HighShelfFilter,
        PeakFilter,
        Compressor,
        Limiter,
        NoiseGate,
        Distortion,
        Clipping,
        Bitcrush,
        Chorus,
        Phaser,
        Delay,
        Reverb,
    )
)


def build_plugin(effect: Effect) -> pedalboard.Plugin:
    """A fresh pedalboard plugin for one effect (never shared between threads)."""
    match effect:
        case Gain():
            return pedalboard.Gain(gain_db=effect.gain_db)
        case HighpassFilter():
            return pedalboard.HighpassFilter(cutoff_frequency_hz=effect.cutoff_hz)
        case LowpassFilter():
            return pedalboard.LowpassFilter(cutoff_frequency_hz=effect.cutoff_hz)
        case LowShelfFilter():
            return pedalboard.LowShelfFilter(effect.cutoff_hz, effect.gain_db, effect.q)
        case HighShelfFilter():
            return pedalboard.HighShelfFilter(effect.cutoff_hz, effect.gain_db, effect.q)
        case PeakFilter():
            return pedalboard.PeakFilter(effect.cutoff_hz, effect.gain_db, effect.q)
        case Compressor():
            return pedalboard.Compressor(
                effect.threshold_db, effect.ratio, effect.attack_ms, effect.release_ms
            )
        case Limiter():
            return pedalboard.Limiter(effect.threshold_db, effect.release_ms)
        case NoiseGate():
            return pedalboard.NoiseGate(
                effect.threshold_db, effect.ratio, effect.attack_ms, effect.release_ms
            )
        case Distortion():
            return pedalboard.Distortion(effect.drive_db)
        case Clipping():
            return pedalboard.Clipping(effect.threshold_db)
        case Bitcrush():
            return pedalboard.Bitcrush(effect.bit_depth)
        case Chorus():
            return pedalboard.Chorus(
                effect.rate_hz, effect.depth, effect.centre_delay_ms, effect.feedback, effect.mix
            )
        case Phaser():
            return pedalboard.Phaser(
                effect.rate_hz,
                effect.depth,
                effect.centre_frequency_hz,
                effect.feedback,
                effect.mix,
            )
        case Delay():
            return pedalboard.Delay(effect.delay_seconds, effect.feedback, effect.mix)
        case Reverb():
            return pedalboard.Reverb(
                effect.room_size, effect.damping, effect.wet_level, effect.dry_level, effect.width
            )
    raise TypeError(f"not a whitelisted effect: {effect!r}")  # pragma: no cover


def build_board(effects: Sequence[Effect]) -> Pedalboard:
    """A fresh Pedalboard running ``effects`` in order."""
    return Pedalboard([build_plugin(e) for e in effects])


def tail_seconds(effects: Sequence[Effect]) -> float:
    """How long the chain keeps ringing after its input stops (capped)."""
    tail = 0.0
    for effect in effects:
        match effect:
            case Reverb():
                tail += 0.5 + 4.0 * effect.room_size
            case Delay():
                repeats = 1 if effect.feedback <= 0 else math.log(1e-3) / math.log(effect.feedback)
                tail += effect.delay_seconds * (1 + repeats)
            case Chorus() | Phaser():
                tail += 0.05
            case _:
                pass
    return min(tail, MAX_TAIL_SECONDS)
