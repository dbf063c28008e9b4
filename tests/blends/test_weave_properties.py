"""Property tests of the pure weave: fairness, attribution and de-duplication.

Random member libraries are drawn from a universe of songs whose identity the test knows: each
entry is a respelling of one universe song (case, punctuation, "feat." credits, extra spaces)
or carries only its ISRC under an unrelated title, so the test can check the merge against
the truth instead of against the code's own normalisation.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from server.blends.weave import (
    MemberTaste,
    TasteEntry,
    min_max_run,
    normalise,
    normalise_isrc,
    spread,
    title_artist_key,
    weave,
)

ARTISTS = ["Röyksopp", "AC/DC", "Sigur Rós", "M83", "The The", "Beyoncé", "!!!", "Daft Punk"]


def spelled(text: str, style: int) -> str:
    return [
        text,
        text.upper(),
        f"  {text.lower()}  ",
        f"{text}!",
        text.replace(" ", "  "),
        f"{text} (feat. Somebody Else)",
        f"{text} [ft. Guest]",
    ][style]


@st.composite
def libraries(draw: st.DrawFn) -> tuple[list[MemberTaste], dict[str, int], int]:
    universe = draw(st.integers(min_value=1, max_value=60))
    has_isrc = draw(st.lists(st.booleans(), min_size=universe, max_size=universe))
    n_members = draw(st.integers(min_value=1, max_value=6))
    truth: dict[str, int] = {}  # track_id -> universe song
    members: list[MemberTaste] = []
    for m in range(n_members):
        picks = draw(
            st.lists(st.integers(0, universe - 1), min_size=0, max_size=universe, unique=True)
        )
        entries: list[TasteEntry] = []
        for rank, song in enumerate(picks, start=1):
            isrc = f"GB-A1B-{song:02d}-{song:05d}" if has_isrc[song] else None
            alias_only = isrc is not None and draw(st.integers(0, 5)) == 0
            style = draw(st.integers(0, 6))
            artist = ARTISTS[song % len(ARTISTS)]
            if alias_only and isrc is not None:
                # Same recording, unrelated title (a "remastered" single, say): only the ISRC
                # links it to the others.
                name, artist_name = f"Alias {song} take {m}", f"Various {song}"
                isrc = isrc.lower().replace("-", "")
            else:
                name, artist_name = spelled(f"Song {song} of {song % 7}", style), spelled(artist, 0)
            track_id = f"m{m}-s{song}-{rank}"
            truth[track_id] = song
            entries.append(
                TasteEntry(
                    track_id=track_id,
                    name=name,
                    artist=artist_name,
                    isrc=isrc,
                    source="spotify",
                    score=1.0 / rank,
                )
            )
            # Some members also hold the same song twice (another time range, say).
            if draw(st.integers(0, 9)) == 0:
                twin = f"m{m}-s{song}-twin"
                truth[twin] = song
                entries.append(
                    TasteEntry(track_id=twin, name=name.lower(), artist=artist_name, score=0.1)
                )
        members.append(MemberTaste(member_id=uuid.UUID(int=m + 1), entries=entries))
    length = draw(st.integers(min_value=0, max_value=80))
    return members, truth, length


def songs_of(member: MemberTaste, truth: dict[str, int]) -> set[int]:
    return {truth[e.track_id] for e in member.entries}


@settings(max_examples=300, deadline=None)
@given(libraries())
def test_weave_rules(case: tuple[list[MemberTaste], dict[str, int], int]) -> None:
    members, truth, length = case
    result = weave(members, length)
    tracks = result.tracks
    held = {m.member_id: songs_of(m, truth) for m in members}
    all_songs = set().union(*held.values()) if held else set()

    # De-duplication: each song at most once, and the playlist is as long as it can be.
    placed = [truth[t.track_id] for t in tracks]
    assert len(placed) == len(set(placed))
    assert len(tracks) == min(length, len(all_songs))

    # Attribution: exactly the members who hold the song, the one who placed it first.
    for track in tracks:
        song = truth[track.track_id]
        holders = {m for m, songs in held.items() if song in songs}
        assert set(track.contributors) == holders
        assert len(track.contributors) == len(holders)
        assert track.contributors[0] == track.contributed_by
        # The displayed entry is the placing member's own.
        owner = next(m for m in members if m.member_id == track.contributed_by)
        assert track.track_id in {e.track_id for e in owner.entries}

    # Fairness: shares count who placed each track; a member who did not get an equal share
    # had every one of their songs placed already.
    shares = Counter(t.contributed_by for t in tracks)
    assert dict(result.shares) == {m.member_id: shares[m.member_id] for m in members}
    top = max(shares.values(), default=0)
    for member in members:
        mine = shares[member.member_id]
        if held[member.member_id] <= set(placed):
            continue
        assert mine >= top - 1
    if members and all(len(songs) >= length for songs in held.values()):
        equal = length / len(members)
        for member in members:
            assert abs(shares[member.member_id] - equal) < 1
            # ... which is within 10 % of an equal split whenever a tenth of it is a track.
            if equal >= 10:
                assert abs(shares[member.member_id] - equal) <= 0.1 * equal

    # No long runs: never longer than the least any order allows.
    owners = [t.contributed_by for t in tracks]
    longest = max((len(list(g)) for _, g in itertools.groupby(owners)), default=0)
    assert longest <= min_max_run(shares.values())
    if tracks and max(shares.values()) * 2 <= len(tracks) + 1:
        assert longest == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=40))
def test_spread_keeps_each_members_order(owners: list[int]) -> None:
    order = spread(owners)
    assert sorted(order) == list(range(len(owners)))
    for m in set(owners):
        mine = [i for i in order if owners[i] == m]
        assert mine == sorted(mine)
    seq = [owners[i] for i in order]
    longest = max((len(list(g)) for _, g in itertools.groupby(seq)), default=0)
    assert longest <= min_max_run(Counter(owners).values())


def test_normalisation_merges_spellings_and_keeps_songs_apart() -> None:
    same = [
        ("Hey Jude", "The Beatles"),
        ("HEY JUDE!", "the beatles"),
        ("Hey  Jude (feat. Billy Preston)", "The Beatles"),
        ("hey jude [ft Billy]", "The Beatles feat. Billy Preston"),
        ("Hey, Jude", "The Beatles featuring Billy"),
    ]
    keys = {title_artist_key(t, a) for t, a in same}
    assert len(keys) == 1
    assert title_artist_key("Hey Jude", "The Beatles") != title_artist_key("Hey Jude", "Wilson")
    assert normalise("Left Behind") == "left behind"  # "ft" inside a word is not a credit
    assert normalise("!!!") == "!!!" and normalise("...") == "..."
    assert normalise_isrc(" us-rc1-76-07839 ") == "USRC17607839"
    assert normalise_isrc("--") is None


def entry(
    track_id: str, name: str, artist: str, score: float, isrc: str | None = None
) -> TasteEntry:
    return TasteEntry(track_id=track_id, name=name, artist=artist, isrc=isrc, score=score)


def test_taste_match_scores_and_unifying_track() -> None:
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    shared = [entry("x1", "Common", "Band", 1.0, "QZ0000000001"), entry("x2", "Two", "Band", 0.5)]
    members = [
        MemberTaste(a, shared),
        MemberTaste(b, [entry("y1", "common", "BAND", 1.0), entry("y2", "Two", "Band", 0.5)]),
        MemberTaste(
            c, [entry("z1", "Other", "Else", 1.0), entry("z2", "Alias", "X", 1.0, "qz0000000001")]
        ),
    ]
    match = weave(members, 10).taste_match
    pairs = {p.members: p for p in match.pairs}
    # a and b hold the same two songs with the same weights: a perfect match.
    assert pairs[(a, b)].score == 1.0 and pairs[(a, b)].shared_tracks == 2
    # a and c share one song (through the ISRC) and no artist weight beyond it.
    assert 0 < pairs[(a, c)].score < pairs[(a, b)].score
    assert pairs[(a, c)].shared_tracks == 1
    assert match.group is not None
    assert abs(match.group - sum(p.score for p in match.pairs) / 3) < 1e-3
    # "Common" is held by all three (c through its ISRC): it brings the group together.
    assert match.unifying_track is not None
    assert match.unifying_track.members == [a, b, c]
    assert match.unifying_track.name == "Common"
    # ... and it opens the playlist.
    assert weave(members, 10).tracks[0].key == match.unifying_track.key


def test_disjoint_and_lonely_tastes() -> None:
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    match = weave(
        [MemberTaste(a, [entry("1", "One", "A", 1)]), MemberTaste(b, [entry("2", "Two", "B", 1)])],
        5,
    ).taste_match
    assert match.pairs[0].score == 0 and match.unifying_track is None
    solo = weave([MemberTaste(a, [entry("1", "One", "A", 1)])], 5)
    assert solo.taste_match.group is None and solo.taste_match.pairs == []
    assert [t.track_id for t in solo.tracks] == ["1"]
    assert weave([], 5).tracks == []
