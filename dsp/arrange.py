"""The mashup arranger: analysed inputs and a target duration in, a timeline and its plan out.

Pure and deterministic: the same inputs, target, seed and options give the same
:class:`Arrangement`, byte for byte. It reads only :class:`dsp.structure.Structure` values
(bars, sections with energy and repetition groups, whether stems exist), never audio, so it
is tested on hand-built structures. The steps, each explained in the plan:

1. **Tempo.** The project tempo is the one that lets the most inputs (then the most bars of
   them) play within ``max_stretch`` (8 %) of their own tempo: one input's own tempo when
   that does (it then plays unstretched), else where the largest stretch is smallest. Inputs
   further away are left out, with the reason.
2. **Key.** Of the 24 keys, the one that the most inputs reach within ``max_shift`` (±2)
   semitones of a Camelot-compatible key (same number, ±1, or the relative major/minor),
   then with the least shifting. An input that cannot reach it plays only its percussive
   stem (drums have no key) when it has stems, and is left out otherwise. An input of
   unknown key is not shifted.
3. **Form.** The target becomes a whole number of bars at the project tempo (so the result
   is within half a bar of it), cut into 8-bar phrases (4-bar ones for short targets; a
   remainder under 4 bars lengthens the last phrase) with an energy shape: intro, build,
   peak, then break/build/peak cycles on long targets, and an outro.
4. **Sections.** Each phrase takes a span of one input that starts on a section boundary or
   a multiple of 4 bars into a section (phrase-aligned), scored by how close its energy is
   to the phrase's target, whether it repeats in its track (a chorus-like group suits a
   peak), whether it is the track's own start or end (for the intro and outro), variety
   (spans and inputs not yet used), the stretch and shift it needs, and a seeded jitter.
   Each clip's ``source_bpm`` is the span's own tempo (its bars over its seconds), so it
   lasts exactly its bars at the project tempo and both its ends stay on the grid; a span
   within 0.1 % of the project tempo (downbeat jitter) plays unstretched.
5. **Layering.** In builds and peaks, when the chosen input and another one both have stems,
   the chosen input plays its harmonic stem over the other's percussive stem.
6. **Transitions.** Every phrase starts on a downbeat of the timeline and of its source. The
   incoming clips start ``crossfade_beats`` (1) earlier, fading in, while the outgoing ones
   fade out over the same beat (equal-power ramps, as the renderer draws them), so each
   source's own downbeat lands on the phrase boundary at full level. The last clips fade out
   over their last bar.

The seed: a seeded jitter breaks near-ties throughout, and at the first phrase with a real
choice (several spans scoring close to the best) the seed picks which one, so seeds ``s`` and
``s + 1`` never give the same draft when such a choice exists.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from dsp.errors import AudioError
from dsp.keys import key_name, parse_key
from dsp.structure import Section, Stem, Structure
from dsp.timeline import Clip, Timeline, validate_timeline

BEATS_PER_BAR: Final = 4
PHRASE_BARS: Final = 4
"""Spans start on section boundaries or whole multiples of this many bars into a section."""
MAX_STRETCH: Final = 0.08
"""Largest tempo change applied to any clip: |project / source - 1|."""
MAX_SHIFT: Final = 2
"""Largest pitch shift applied to any clip, in semitones."""
SEED_CHOICE_MARGIN: Final = 0.3
# Shares of the stretch limit the project tempo is chosen within, tried in turn (arrange).
TEMPO_CHOICE_SHARES: Final = (1.0, 0.5, 0.0)
"""Spans scoring within this of the best one count as a real choice for the seed."""
SNAP: Final = 0.001
"""A span whose own tempo is within 0.1 % of the project tempo plays unstretched."""
CUT_FADE_SECONDS: Final = 0.005
"""A phrase change with no room for a crossfade is a cut with ramps this short (no click)."""

Role = Literal["intro", "build", "peak", "break", "outro"]
ROLE_ENERGY: Final[dict[Role, float]] = {
    "intro": 0.35,
    "build": 0.65,
    "peak": 1.0,
    "break": 0.45,
    "outro": 0.35,
}
"""The energy each part of the form asks for (section energies are 0..1 per track)."""
_LAYERED_ROLES: Final = frozenset({"build", "peak"})


class CannotArrange(AudioError):
    """No arrangement is possible from these inputs; the message says why."""


class ArrangeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a user may tune; the defaults are the documented limits."""

    max_stretch: Annotated[float, Meta(ge=0.0, le=MAX_STRETCH)] = MAX_STRETCH
    max_shift: Annotated[int, Meta(ge=0, le=MAX_SHIFT)] = MAX_SHIFT
    layering: bool = True
    """Lay one input's percussive stem under another's harmonic stem in builds and peaks."""
    crossfade_beats: Annotated[float, Meta(ge=0.0, le=4.0)] = 1.0


class ArrangeInput(msgspec.Struct, frozen=True, kw_only=True):
    """One analysed input: the id clips name in ``track_id``, and its structure."""

    track_id: str
    structure: Structure


class PlannedInput(msgspec.Struct, frozen=True, kw_only=True):
    """What the arranger made of one input."""

    track_id: str
    use: Literal["full", "percussive", "unused"]
    bpm: float | None
    key: str | None
    stretch: float | None
    """Speed-up onto the project tempo (the renderer's ``stretch_factor``), when used."""
    shift_semitones: int
    why: str


class PlannedClip(msgspec.Struct, frozen=True, kw_only=True):
    """Why one clip of the timeline is what it is."""

    clip_id: str
    track_id: str
    role: Role
    stem: Stem
    section_id: str
    section_group: int
    bar: int
    """The timeline bar where the clip's source downbeat lands (the phrase boundary)."""
    bars: int
    source_bar: int
    """The source bar playing at ``bar``: its downbeat is the clip's downbeat."""
    source_bpm: float
    stretch: float
    shift_semitones: int
    energy: float
    why: str


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Every choice the arranger made, small enough to keep beside the timeline."""

    seed: int
    target_seconds: float
    duration_seconds: float
    bars: int
    bpm: float
    key: str | None
    tempo_why: str
    key_why: str
    form: list[Role]
    inputs: list[PlannedInput]
    clips: list[PlannedClip]


class Arrangement(msgspec.Struct, frozen=True, kw_only=True):
    timeline: Timeline
    plan: Plan


# ------------------------------------------------------------------ keys (Camelot wheel)


def camelot(key: str) -> tuple[int, str]:
    """The Camelot code of a key: ``camelot("A minor") == (8, "A")``, C major is 8B."""
    tonic, mode = parse_key(key)
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12
    # Each fifth up is one step round the wheel; C major is 8B.
    return (7 * major_tonic + 7) % 12 + 1, "B" if mode == "major" else "A"


def compatible(a: str, b: str) -> bool:
    """Keys that mix harmonically: same Camelot number, or ±1 with the same letter."""
    (na, la), (nb, lb) = camelot(a), camelot(b)
    if na == nb:
        return True
    return la == lb and (na - nb) % 12 in (1, 11)


def shifted(key: str, semitones: int) -> str:
    tonic, mode = parse_key(key)
    return key_name(tonic + semitones, mode)


def smallest_shift(key: str, target: str, limit: int) -> int | None:
    """The smallest shift (ties go down) that makes ``key`` mix with ``target``, if any."""
    for size in range(limit + 1):
        for s in (-size, size) if size else (0,):
            if compatible(shifted(key, s), target):
                return s
    return None


_ALL_KEYS: Final = tuple(key_name(t, m) for m in ("major", "minor") for t in range(12))


# ------------------------------------------------------------------ sources


@dataclass(frozen=True, slots=True)
class _Source:
    index: int
    track_id: str
    s: Structure
    bars: int
    """Whole bars that end inside the audio."""
    sections: tuple[Section, ...]

    def bar_time(self, n: int) -> float:
        downbeats = self.s.downbeats
        if n < len(downbeats):
            return downbeats[n]
        assert self.s.bpm is not None
        return downbeats[-1] + (n - len(downbeats) + 1) * 60.0 * BEATS_PER_BAR / self.s.bpm

    def repeats(self, group: int) -> int:
        return sum(1 for sec in self.sections if sec.group == group)


def _source(index: int, item: ArrangeInput) -> _Source | str:
    """The usable part of an input, or why it cannot be used."""
    s = item.structure
    if s.bpm is None or not s.downbeats:
        return "its tempo is unknown (no usable beat)"
    bars = 0
    probe = _Source(index, item.track_id, s, 0, ())
    while probe.bar_time(bars + 1) <= s.duration + 1e-6 and bars < 100_000:
        bars += 1
    if bars < PHRASE_BARS:
        return f"it has {bars} whole bars, less than one {PHRASE_BARS}-bar phrase"
    sections = tuple(
        msgspec.structs.replace(sec, end_bar=min(sec.end_bar, bars))
        for sec in s.sections
        if sec.start_bar < bars and sec.end_bar > sec.start_bar
    )
    if not sections:  # bars but no sections: the whole track is one
        sections = (Section("s0", 0, bars, probe.bar_time(0), probe.bar_time(bars), 1.0, 0),)
    return _Source(index, item.track_id, s, bars, sections)


# ------------------------------------------------------------------ tempo and key


def _choose_tempo(
    sources: list[_Source], limit: float, share: float = 1.0
) -> tuple[float, list[_Source], dict[int, str], str]:
    """The project tempo, the inputs that can play at it (within ``share`` of ``limit`` of
    their own tempo), why each other one cannot."""
    within = limit * share

    def reach(bpm: float, s: _Source) -> float:
        assert s.s.bpm is not None
        return abs(bpm / s.s.bpm - 1.0)

    # Candidates: each input's own tempo (that input then plays unstretched) and, for every
    # range of tempos, the one with the smallest largest stretch (equal relative distance to
    # both ends: their harmonic mean).
    candidates: set[float] = set()
    for low in sources:
        for high in sources:
            a, b = low.s.bpm, high.s.bpm
            assert a is not None and b is not None
            candidates.add(round(a, 2) if a == b else round(2.0 / (1.0 / a + 1.0 / b), 2))
    own = {round(s.s.bpm, 2) for s in sources if s.s.bpm is not None}
    best: tuple[tuple[int, int, bool, float], float] | None = None
    for bpm in sorted(candidates):
        fits = [s for s in sources if reach(bpm, s) <= within]
        if not fits:
            continue
        worst = max(reach(bpm, s) for s in fits)
        rank = (len(fits), sum(s.bars for s in fits), bpm in own, -worst)
        if best is None or rank > best[0]:
            best = (rank, bpm)
    assert best is not None  # a source alone always fits its own tempo
    bpm = best[1]
    used = [s for s in sources if reach(bpm, s) <= within]
    left: dict[int, str] = {}
    for s in sources:
        if s not in used:
            assert s.s.bpm is not None
            stretch = reach(bpm, s)
            left[s.index] = (
                f"its tempo {s.s.bpm:.1f} BPM would need a {stretch * 100:.0f} % stretch to "
                f"reach {bpm:.2f} BPM (the limit is {limit * 100:.0f} %)"
                if stretch > limit
                else f"its tempo {s.s.bpm:.1f} BPM is {stretch * 100:.0f} % from {bpm:.2f} BPM, "
                "but at a tempo between them the drift of the inputs' own tempo left no passage "
                f"within the {limit * 100:.0f} % limit"
            )
    tempos = ", ".join(f"{s.s.bpm:.1f}" for s in used)
    how = (
        "one of them plays at its own tempo, unstretched"
        if bpm in own
        else "with the largest stretch as small as possible"
    )
    why = (
        f"{bpm:.2f} BPM lets {len(used)} of {len(sources)} usable inputs ({tempos} BPM) play "
        f"within {within * 100:.0f} % of their own tempo; {how}"
    )
    return bpm, used, left, why


def _choose_key(
    sources: list[_Source], limit: int
) -> tuple[str | None, dict[int, int | None], str]:
    """The project key and each input's shift onto it (None: cannot mix harmonically)."""
    keyed = [s for s in sources if s.s.key is not None]
    if not keyed:
        return None, {s.index: 0 for s in sources}, "no input has a known key: nothing is shifted"
    input_keys = {s.s.key for s in keyed}
    best: tuple[tuple[int, int, int, bool], str] | None = None
    for key in _ALL_KEYS:
        shifts = [smallest_shift(s.s.key, key, limit) for s in keyed if s.s.key is not None]
        reach = [(s, sh) for s, sh in zip(keyed, shifts, strict=True) if sh is not None]
        rank = (
            len(reach),
            sum(s.bars for s, _ in reach),
            -sum(abs(sh) for _, sh in reach),
            key in input_keys,
        )
        if best is None or rank > best[0]:
            best = (rank, key)
    assert best is not None
    key = best[1]
    shifts_by: dict[int, int | None] = {}
    for s in sources:
        shifts_by[s.index] = 0 if s.s.key is None else smallest_shift(s.s.key, key, limit)
    mixing = sum(1 for s in keyed if shifts_by[s.index] is not None)
    why = (
        f"{key} (Camelot {''.join(map(str, camelot(key)))}): {mixing} of {len(keyed)} inputs "
        f"with a known key mix with it within ±{limit} semitones, with the least shifting"
    )
    return key, shifts_by, why


# ------------------------------------------------------------------ form


@dataclass(frozen=True, slots=True)
class _Slot:
    role: Role
    bar: int
    bars: int


def _roles(count: int) -> list[Role]:
    if count == 1:
        return ["peak"]
    if count == 2:
        return ["build", "peak"]
    middle: list[Role] = []
    while len(middle) < count - 2:
        if not middle:
            middle += ["build", "peak"]
        elif count - 2 - len(middle) >= 3:
            middle += ["break", "build", "peak"]
        else:
            middle.append("peak")
    return ["intro", *middle[: count - 2], "outro"]


def _form(total_bars: int, rng: random.Random) -> list[_Slot]:
    """Phrases summing to ``total_bars``, with their parts of the energy shape."""
    phrase = PHRASE_BARS if total_bars < 24 else 2 * PHRASE_BARS
    lengths = [phrase] * (total_bars // phrase)
    rest = total_bars - phrase * len(lengths)
    if rest >= PHRASE_BARS:  # a 4-bar phrase, placed by the seed (not first: the intro leads)
        lengths.insert(rng.randint(1, len(lengths)) if lengths else 0, PHRASE_BARS)
        rest -= PHRASE_BARS
    if not lengths:
        lengths = [rest]
    else:
        lengths[-1] += rest  # under a phrase left: the outro runs a little longer
    slots, bar = [], 0
    for role, bars in zip(_roles(len(lengths)), lengths, strict=True):
        slots.append(_Slot(role, bar, bars))
        bar += bars
    return slots


# ------------------------------------------------------------------ spans


@dataclass(frozen=True, slots=True)
class _Span:
    source: _Source
    start: int
    bars: int
    section: Section
    energy: float
    local_bpm: float
    stretch: float

    @property
    def key(self) -> tuple[int, int]:
        return self.source.index, self.start


def _spans(source: _Source, bars: int, project_bpm: float, limit: float) -> list[_Span]:
    """Every phrase-aligned span of ``bars`` bars the source can play at the project tempo."""
    found = []
    for sec in source.sections:
        for start in range(sec.start_bar, sec.end_bar, PHRASE_BARS):
            end = start + bars
            if end > source.bars:
                break
            seconds = source.bar_time(end) - source.bar_time(start)
            if seconds <= 0:
                continue
            local = 60.0 * BEATS_PER_BAR * bars / seconds
            if not 20.0 <= local <= 300.0 or abs(project_bpm / local - 1.0) > limit:
                continue
            exact = source.bar_time(start) + 60.0 * BEATS_PER_BAR * bars / project_bpm
            if abs(local / project_bpm - 1.0) <= SNAP and exact <= source.s.duration:
                # The span's own tempo is the project's but for the jitter of its downbeats:
                # play it unstretched (the renderer then copies it), ending on the grid.
                local = project_bpm
            energy = _energy(source.sections, start, end)
            found.append(_Span(source, start, bars, sec, energy, local, project_bpm / local))
    return found


def _energy(sections: tuple[Section, ...], start: int, end: int) -> float:
    """Bar-weighted mean energy of the sections a span covers."""
    total = weight = 0.0
    for sec in sections:
        overlap = min(end, sec.end_bar) - max(start, sec.start_bar)
        if overlap > 0:
            total += overlap * sec.energy
            weight += overlap
    return total / weight if weight else 0.0


@dataclass
class _Usage:
    spans: dict[tuple[int, int], int]
    inputs: dict[int, int]

    def note(self, span: _Span) -> None:
        self.spans[span.key] = self.spans.get(span.key, 0) + 1
        self.inputs[span.source.index] = self.inputs.get(span.source.index, 0) + 1


def _score(
    span: _Span,
    slot: _Slot,
    usage: _Usage,
    shift: int,
    previous: int | None,
    rng: random.Random,
) -> tuple[float, list[str]]:
    """How well a span suits a phrase (higher is better) and the reasons worth telling."""
    want = ROLE_ENERGY[slot.role]
    reasons = [f"energy {span.energy:.2f} for the {slot.role} (wanting {want:.2f})"]
    score = -2.0 * abs(span.energy - want)
    if slot.role == "peak" and span.source.repeats(span.section.group) > 1:
        score += 0.3
        reasons.append(f"its group {span.section.group} repeats in the track (chorus-like)")
    if slot.role == "intro" and span.start == 0:
        score += 0.2
        reasons.append("the track's own opening")
    if slot.role == "outro" and span.start + span.bars == span.source.bars:
        score += 0.2
        reasons.append("the track's own ending")
    used = usage.spans.get(span.key, 0)
    if used:
        score -= 0.6 * used
        reasons.append(f"already used {used}x")
    score -= 0.1 * usage.inputs.get(span.source.index, 0)
    if previous is not None and previous == span.source.index:
        score -= 0.15
    score -= 0.05 * abs(shift) + abs(span.stretch - 1.0)
    return score + rng.uniform(0.0, 0.25), reasons


def _pieces(bars: int, longest: int) -> list[int]:
    """Split a phrase no input is long enough for into phrase-sized pieces that fit."""
    if bars <= longest:
        return [bars]
    size = longest - longest % PHRASE_BARS if longest >= PHRASE_BARS else longest
    out = []
    while bars > size:
        out.append(size)
        bars -= size
    return [*out, bars]


# ------------------------------------------------------------------ the arranger


@dataclass(frozen=True, slots=True)
class _Placed:
    span: _Span
    slot: _Slot
    bar: int
    stem: Stem
    shift: int
    why: str


def arrange(
    inputs: Sequence[ArrangeInput],
    target_seconds: float,
    seed: int,
    options: ArrangeOptions | None = None,
) -> Arrangement:
    """Arrange ``inputs`` into a timeline of about ``target_seconds``; see the module doc.

    Raises :class:`CannotArrange` (with the reason) when no input is usable.
    """
    options = options or ArrangeOptions()
    if not math.isfinite(target_seconds) or target_seconds <= 0:
        raise CannotArrange(f"the target duration must be positive, not {target_seconds!r}")
    if not inputs:
        raise CannotArrange("there are no input tracks")
    if len({i.track_id for i in inputs}) != len(inputs):
        raise CannotArrange("an input track is given twice")

    reasons: dict[int, str] = {}
    sources: list[_Source] = []
    for n, item in enumerate(inputs):
        found = _source(n, item)
        if isinstance(found, str):
            reasons[n] = found
        else:
            sources.append(found)
    if not sources:
        told = "; ".join(f"{inputs[n].track_id}: {r}" for n, r in reasons.items())
        raise CannotArrange(f"no input has a usable tempo and a whole phrase ({told})")

    # The tempo is chosen from the inputs' own tempos, but every span is held to the limit at
    # its own local tempo: with two inputs at the two ends of the limit, a drifting one can
    # have no span inside it. Then the tempo is chosen again allowing less stretch, down to
    # none (an input at its own tempo, where its spans are off only by its own drift).
    missing = 0
    for share in TEMPO_CHOICE_SHARES:
        try:
            return _arrange_at(inputs, sources, dict(reasons), target_seconds, seed, options, share)
        except _NoSpan as exc:
            missing = exc.bars
    raise CannotArrange(f"no input has {missing} whole bars that stay within the stretch limit")


class _NoSpan(Exception):
    def __init__(self, bars: int) -> None:
        self.bars = bars


def _arrange_at(
    inputs: Sequence[ArrangeInput],
    sources: list[_Source],
    reasons: dict[int, str],
    target_seconds: float,
    seed: int,
    options: ArrangeOptions,
    share: float,
) -> Arrangement:
    """``arrange`` with the tempo chosen within ``share`` of the stretch limit."""
    rng = random.Random(seed)
    bpm, in_tempo, tempo_left, tempo_why = _choose_tempo(sources, options.max_stretch, share)
    reasons.update(tempo_left)
    key, shifts, key_why = _choose_key(in_tempo, options.max_shift)
    stems = options.layering
    mains = [s for s in in_tempo if shifts[s.index] is not None]
    drums_only = [s for s in in_tempo if shifts[s.index] is None and stems and s.s.has_stems]
    for s in in_tempo:
        if shifts[s.index] is None and s not in drums_only:
            reasons[s.index] = (
                f"its key {s.s.key} is more than {options.max_shift} semitones from any key "
                f"that mixes with {key}, and it has no stems to use only its drums"
            )
    if not mains:
        raise CannotArrange("no input can be matched to a common tempo and key")

    bar_seconds = 60.0 * BEATS_PER_BAR / bpm
    total_bars = max(1, round(target_seconds / bar_seconds))
    slots = _form(total_bars, rng)
    usage = _Usage({}, {})
    placed: list[_Placed] = []
    seed_used = False
    previous: int | None = None
    longest = max(s.bars for s in mains)

    for slot in slots:
        bar = slot.bar
        for bars in _pieces(slot.bars, longest):
            piece = _Slot(slot.role, bar, bars)
            scored = []
            for s in mains:
                shift = shifts[s.index]
                assert shift is not None
                for span in _spans(s, bars, bpm, options.max_stretch):
                    score, why = _score(span, piece, usage, shift, previous, rng)
                    scored.append((score, span, why))
            if not scored:
                raise _NoSpan(bars)
            scored.sort(key=lambda x: (-x[0], x[1].source.index, x[1].start))
            pick = 0
            close = [x for x in scored if x[0] >= scored[0][0] - SEED_CHOICE_MARGIN]
            if not seed_used and len({x[1].key for x in close}) > 1:
                pick, seed_used = seed % len(close), True
            _, span, why = scored[pick]
            layer = None
            if stems and slot.role in _LAYERED_ROLES and span.source.s.has_stems:
                layer = _layer(span, piece, mains, drums_only, shifts, usage, bpm, options, rng)
            stem: Stem = "harmonic" if layer is not None else "full"
            shift = shifts[span.source.index]
            assert shift is not None
            placed.append(_Placed(span, piece, bar, stem, shift, "; ".join(why)))
            usage.note(span)
            if layer is not None:
                placed.append(layer)
                usage.note(layer.span)
            previous = span.source.index
            bar += bars

    timeline, planned = _build(placed, bpm, key, options, seed)
    timeline = validate_timeline(timeline)
    plan_inputs = _plan_inputs(inputs, placed, reasons, shifts, bpm)
    return Arrangement(
        timeline=timeline,
        plan=Plan(
            seed=seed,
            target_seconds=target_seconds,
            duration_seconds=round(total_bars * bar_seconds, 4),
            bars=total_bars,
            bpm=bpm,
            key=key,
            tempo_why=tempo_why,
            key_why=key_why,
            form=[slot.role for slot in slots],
            inputs=plan_inputs,
            clips=planned,
        ),
    )


def _layer(
    main: _Span,
    slot: _Slot,
    mains: list[_Source],
    drums_only: list[_Source],
    shifts: dict[int, int | None],
    usage: _Usage,
    bpm: float,
    options: ArrangeOptions,
    rng: random.Random,
) -> _Placed | None:
    """Another input's percussive stem under the main span's harmonic stem, if one fits."""
    scored = []
    for s in [*mains, *drums_only]:
        if s.index == main.source.index or not s.s.has_stems:
            continue
        for span in _spans(s, slot.bars, bpm, options.max_stretch):
            score = -2.0 * abs(span.energy - ROLE_ENERGY[slot.role])
            score -= 0.6 * usage.spans.get(span.key, 0) + rng.uniform(0.0, 0.25)
            scored.append((score, span))
    if not scored:
        return None
    scored.sort(key=lambda x: (-x[0], x[1].source.index, x[1].start))
    span = scored[0][1]
    shift = shifts[span.source.index]
    why = (
        f"its drums (percussive stem, energy {span.energy:.2f}) under the harmonic stem of "
        f"{main.source.track_id}"
        + ("" if shift is not None else "; its key does not mix, so only its drums play")
    )
    return _Placed(span, slot, slot.bar, "percussive", shift or 0, why)


def _build(
    placed: list[_Placed], bpm: float, key: str | None, options: ArrangeOptions, seed: int
) -> tuple[Timeline, list[PlannedClip]]:
    """Clips with their crossfades: incoming clips start early and fade in while the
    outgoing ones fade out, both over the same beats, so downbeats meet on the boundary."""
    beat_seconds = 60.0 / bpm
    bar_beats = BEATS_PER_BAR
    starts: dict[int, list[int]] = {}
    for n, p in enumerate(placed):
        starts.setdefault(p.bar, []).append(n)
    # Beats of lead-in each boundary can afford: the least any incoming clip's source has.
    lead: dict[int, float] = {}
    for bar, members in starts.items():
        if bar == 0:
            lead[bar] = 0.0
            continue
        room = min(
            placed[n].span.source.bar_time(placed[n].span.start) * placed[n].span.local_bpm / 60.0
            for n in members
        )
        lead[bar] = min(options.crossfade_beats, math.floor(room * 4) / 4)
    end_bar = max(p.bar + p.span.bars for p in placed)
    clips, planned = [], []
    for n, p in enumerate(placed):
        span = p.span
        pre = lead[p.bar]
        source_beat = 60.0 / span.local_bpm
        ends = p.bar + span.bars
        fade_in = pre * beat_seconds if pre > 0 else (CUT_FADE_SECONDS if p.bar else 0.0)
        if ends == end_bar:
            fade_out = min(
                BEATS_PER_BAR * beat_seconds, span.bars * BEATS_PER_BAR * beat_seconds / 2
            )
        else:
            nxt = lead.get(ends, 0.0)
            fade_out = nxt * beat_seconds if nxt > 0 else CUT_FADE_SECONDS
        clip_id = f"gen-{seed % 1_000_000_007:x}-{n:03d}"
        clips.append(
            _clip(
                clip_id=clip_id,
                track_id=span.source.track_id,
                in_seconds=span.source.bar_time(span.start) - pre * source_beat,
                # Exactly ``bars`` bars at the span's tempo: its next downbeat, or the grid's.
                out_seconds=span.source.bar_time(span.start) + span.bars * bar_beats * source_beat,
                position_beats=p.bar * BEATS_PER_BAR - pre,
                fade_in_seconds=fade_in,
                fade_out_seconds=fade_out,
                shift=p.shift,
                source_bpm=span.local_bpm,
                stem=p.stem,
            )
        )
        planned.append(
            PlannedClip(
                clip_id=clip_id,
                track_id=span.source.track_id,
                role=p.slot.role,
                stem=p.stem,
                section_id=span.section.id,
                section_group=span.section.group,
                bar=p.bar,
                bars=span.bars,
                source_bar=span.start,
                source_bpm=round(span.local_bpm, 3),
                stretch=round(span.stretch, 4),
                shift_semitones=p.shift,
                energy=round(span.energy, 3),
                why=p.why,
            )
        )
    return Timeline(bpm=bpm, key=key, clips=tuple(clips)), planned


def _clip(
    *,
    clip_id: str,
    track_id: str,
    in_seconds: float,
    out_seconds: float,
    position_beats: float,
    fade_in_seconds: float,
    fade_out_seconds: float,
    shift: int,
    source_bpm: float,
    stem: Stem,
) -> Clip:
    # The shift is the clip's own: ``source_key`` stays unset, because a Camelot neighbour
    # of the project key is meant to stay where it is, not to be moved onto the key.
    fields: dict[str, object] = {
        "id": clip_id,
        "track_id": track_id,
        "in_seconds": max(0.0, in_seconds),
        "out_seconds": out_seconds,
        "position_beats": max(0.0, position_beats),
        "fade_in_seconds": fade_in_seconds,
        "fade_out_seconds": fade_out_seconds,
        "pitch_shift_semitones": float(shift),
        "source_bpm": source_bpm,
    }
    if stem != "full":
        fields["stem"] = stem
    return msgspec.convert(fields, Clip)


def _plan_inputs(
    inputs: Sequence[ArrangeInput],
    placed: list[_Placed],
    reasons: dict[int, str],
    shifts: dict[int, int | None],
    bpm: float,
) -> list[PlannedInput]:
    stems: dict[int, set[str]] = {}
    for p in placed:
        stems.setdefault(p.span.source.index, set()).add(p.stem)
    out = []
    for n, item in enumerate(inputs):
        s = item.structure
        played = stems.get(n, set())
        shift = shifts.get(n) or 0
        use: Literal["full", "percussive", "unused"] = "unused"
        stretch = round(bpm / s.bpm, 4) if s.bpm and played else None
        if played - {"percussive"}:
            use = "full"
            why = f"stretched {stretch}x, " + (
                f"shifted {shift:+d} semitones" if shift else "not shifted"
            )
        elif played:
            use = "percussive"
            why = f"stretched {stretch}x; only its percussive stem plays under other inputs"
            if shifts.get(n, 0) is None:
                why += " (its key does not mix)"
                shift = 0
        else:
            why = reasons.get(n, "not needed for this length and seed")
            shift = 0
        out.append(
            PlannedInput(
                track_id=item.track_id,
                use=use,
                bpm=s.bpm,
                key=s.key,
                stretch=stretch,
                shift_semitones=shift,
                why=why,
            )
        )
    return out
