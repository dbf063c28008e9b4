"""The effects a timeline may use: a whitelist of pedalboard plugins.

Each effect is a frozen msgspec Struct tagged by ``type`` whose fields are
the plugin's parameters, each bounded by ``Meta`` so that a decoded effect can
always be built and run. Nothing here can load a plug-in file: only the
built-in plugins named below are ever constructed, and a fresh instance is
made for every call (pedalboard plugins are stateful; pedalboard#212).

An effect is said once: its Struct holds its parameters, the plugin it builds
(``plugin``) and, when it rings on after its input stops, its tail
(``tail_seconds``). The ``Effect`` union names it for decoding and typing;
importing this module fails if a Struct is missing from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Final, get_args

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
EqDb = Annotated[float, Meta(ge=-24.0, le=24.0)]

MAX_EFFECTS: Final = 16
"""Longest effect chain a clip or the master bus may carry."""

MAX_TAIL_SECONDS: Final = 10.0


class _Effect(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    def plugin(self) -> pedalboard.Plugin:
        """A fresh pedalboard plugin running this effect (never shared between threads)."""
        raise NotImplementedError  # pragma: no cover (every effect has one: checked below)

    def tail_seconds(self) -> float:
        """How long the effect keeps ringing after its input stops."""
        return 0.0


class Gain(_Effect, frozen=True, tag="gain"):
    gain_db: Db = 0.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Gain(gain_db=self.gain_db)


class HighpassFilter(_Effect, frozen=True, tag="highpass"):
    cutoff_hz: Cutoff = 80.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.HighpassFilter(cutoff_frequency_hz=self.cutoff_hz)


class LowpassFilter(_Effect, frozen=True, tag="lowpass"):
    cutoff_hz: Cutoff = 8000.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.LowpassFilter(cutoff_frequency_hz=self.cutoff_hz)


class LowShelfFilter(_Effect, frozen=True, tag="low_shelf"):
    cutoff_hz: Cutoff = 200.0
    gain_db: EqDb = 0.0
    q: Q = 0.7071

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.LowShelfFilter(self.cutoff_hz, self.gain_db, self.q)


class HighShelfFilter(_Effect, frozen=True, tag="high_shelf"):
    cutoff_hz: Cutoff = 6000.0
    gain_db: EqDb = 0.0
    q: Q = 0.7071

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.HighShelfFilter(self.cutoff_hz, self.gain_db, self.q)


class PeakFilter(_Effect, frozen=True, tag="peak"):
    cutoff_hz: Cutoff = 1000.0
    gain_db: EqDb = 0.0
    q: Q = 0.7071

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.PeakFilter(self.cutoff_hz, self.gain_db, self.q)


class Compressor(_Effect, frozen=True, tag="compressor"):
    threshold_db: Annotated[float, Meta(ge=-60.0, le=0.0)] = -18.0
    ratio: Annotated[float, Meta(ge=1.0, le=20.0)] = 4.0
    attack_ms: AttackMs = 5.0
    release_ms: ReleaseMs = 100.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Compressor(self.threshold_db, self.ratio, self.attack_ms, self.release_ms)


class Limiter(_Effect, frozen=True, tag="limiter"):
    threshold_db: Annotated[float, Meta(ge=-30.0, le=0.0)] = -3.0
    release_ms: ReleaseMs = 100.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Limiter(self.threshold_db, self.release_ms)


class NoiseGate(_Effect, frozen=True, tag="noise_gate"):
    threshold_db: Annotated[float, Meta(ge=-100.0, le=0.0)] = -60.0
    ratio: Annotated[float, Meta(ge=1.0, le=20.0)] = 10.0
    attack_ms: AttackMs = 1.0
    release_ms: ReleaseMs = 100.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.NoiseGate(self.threshold_db, self.ratio, self.attack_ms, self.release_ms)


class Distortion(_Effect, frozen=True, tag="distortion"):
    drive_db: Annotated[float, Meta(ge=0.0, le=60.0)] = 20.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Distortion(self.drive_db)


class Clipping(_Effect, frozen=True, tag="clipping"):
    threshold_db: Annotated[float, Meta(ge=-40.0, le=0.0)] = -6.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Clipping(self.threshold_db)


class Bitcrush(_Effect, frozen=True, tag="bitcrush"):
    bit_depth: Annotated[float, Meta(ge=2.0, le=24.0)] = 8.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Bitcrush(self.bit_depth)


class Chorus(_Effect, frozen=True, tag="chorus"):
    rate_hz: Rate = 1.0
    depth: Unit = 0.25
    centre_delay_ms: Annotated[float, Meta(ge=1.0, le=50.0)] = 7.0
    feedback: Feedback = 0.0
    mix: Unit = 0.5

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Chorus(
            self.rate_hz, self.depth, self.centre_delay_ms, self.feedback, self.mix
        )

    def tail_seconds(self) -> float:
        return 0.05


class Phaser(_Effect, frozen=True, tag="phaser"):
    rate_hz: Rate = 1.0
    depth: Unit = 0.5
    centre_frequency_hz: Annotated[float, Meta(ge=20.0, le=10000.0)] = 1300.0
    feedback: Feedback = 0.0
    mix: Unit = 0.5

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Phaser(
            self.rate_hz, self.depth, self.centre_frequency_hz, self.feedback, self.mix
        )

    def tail_seconds(self) -> float:
        return 0.05


class Delay(_Effect, frozen=True, tag="delay"):
    delay_seconds: Annotated[float, Meta(ge=0.001, le=2.0)] = 0.25
    feedback: Annotated[float, Meta(ge=0.0, le=0.9)] = 0.3
    mix: Unit = 0.3

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Delay(self.delay_seconds, self.feedback, self.mix)

    def tail_seconds(self) -> float:
        # Until the repeats have died away by 60 dB.
        repeats = 1 if self.feedback <= 0 else math.log(1e-3) / math.log(self.feedback)
        return self.delay_seconds * (1 + repeats)


class Reverb(_Effect, frozen=True, tag="reverb"):
    room_size: Unit = 0.5
    damping: Unit = 0.5
    wet_level: Unit = 0.33
    dry_level: Unit = 0.4
    width: Unit = 1.0

    def plugin(self) -> pedalboard.Plugin:
        return pedalboard.Reverb(
            self.room_size, self.damping, self.wet_level, self.dry_level, self.width
        )

    def tail_seconds(self) -> float:
        return 0.5 + 4.0 * self.room_size


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

# The union is spelled out for the type checker and msgspec; a Struct left out of it, or
# one that builds no plugin, would be an effect no timeline can use.
_missing = [
    cls.__name__
    for cls in _Effect.__subclasses__()
    if cls not in get_args(Effect) or cls.plugin is _Effect.plugin
]
if _missing:  # pragma: no cover
    raise TypeError(f"effects missing from the Effect union or without a plugin(): {_missing}")

EffectChain = Annotated[tuple[Effect, ...], Meta(max_length=MAX_EFFECTS)]

EFFECT_TYPES: Final[tuple[str, ...]] = tuple(
    str(cls.__struct_config__.tag) for cls in get_args(Effect)
)


def build_board(effects: Sequence[Effect]) -> Pedalboard:
    """A fresh Pedalboard running ``effects`` in order."""
    return Pedalboard([effect.plugin() for effect in effects])


def tail_seconds(effects: Sequence[Effect]) -> float:
    """How long the chain keeps ringing after its input stops (capped)."""
    return min(sum((effect.tail_seconds() for effect in effects), 0.0), MAX_TAIL_SECONDS)
