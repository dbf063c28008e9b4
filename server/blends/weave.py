"""Weaving a blend: the pure algorithm that turns members' tastes into one playlist.

No I/O here: the generation job loads each member's taste, calls ``weave`` and stores what it
returns. docs/blends.md states the rules this module guarantees (and the property tests in
tests/blends/test_weave_properties.py check them):

* De-duplication. Two entries are the same song when they share an ISRC or a normalised
  title and artist (``normalise``); the relation is transitive (union-find), so an entry with
  an ISRC and a matching title joins both groups into one.
* Attribution. Every woven track lists as ``contributors`` every member whose taste holds the
  song; ``contributed_by`` (the first contributor) is the member whose turn placed it.
* Fairness. Members take turns; at each turn the member with the fewest placed tracks (ties:
  member order) places their next best song not yet placed. Members who run out drop out, so
  the others' shares differ by at most one track.
* No long runs. The final order spreads each member's tracks: no run of one member's tracks is
  longer than ``ceil(M / (R + 1))`` (M: the largest share, R: all other tracks), which is the
  least any order can achieve, and 1 whenever the largest share is at most half (rounded up).
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

import msgspec

Source = Literal["spotify", "apple", "catalog"]
TimeRange = Literal["short_term", "medium_term", "long_term"]

# How much each taste source counts; a member's score for a song is the sum over the sources
# that hold it of SOURCE_WEIGHTS[source] * rank_weight(rank) (see docs/blends.md).
SOURCE_WEIGHTS: dict[str, float] = {
    "short_term": 1.0,
    "medium_term": 0.75,
    "long_term": 0.5,
    "plays": 0.75,
}
# A song several members love is worth more to the group: while choosing, a member's score for
# a song is multiplied by 1 + OVERLAP_BONUS * (number of other members who hold it).
OVERLAP_BONUS = 0.5
# The taste-match score weighs shared songs and shared artists equally.
TRACK_MATCH_WEIGHT = 0.5
ARTIST_MATCH_WEIGHT = 0.5
FORMULA_VERSION = 1


def rank_weight(rank: int) -> float:
    """1 for a member's #1, then decaying like DCG: 1 / log2(rank + 1)."""
    if rank < 1:
        raise ValueError("ranks start at 1")
    return 1.0 / math.log2(rank + 1)


# ------------------------------------------------------------------ normalisation

# "(feat. X)", "[ft X]", "(with X)" anywhere, or a trailing " feat. X" / " ft. X" / " featuring X".
_FEATURING = re.compile(
    r"[\(\[]\s*(?:feat|ft|featuring|with)\b[^\)\]]*[\)\]]"
    r"|\s(?:feat|ft|featuring)\b\.?\s.*$"
)


def normalise(text: str) -> str:
    """Casefolded, without featured artists, punctuation or extra whitespace.

    If that leaves nothing (a title made only of punctuation, say), the casefolded text with
    collapsed whitespace is used, so such titles match only themselves.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    stripped = _FEATURING.sub(" ", folded)
    words = "".join(ch if ch.isalnum() else " " for ch in stripped).split()
    return " ".join(words) or " ".join(folded.split())


def normalise_isrc(isrc: str | None) -> str | None:
    if isrc is None:
        return None
    cleaned = "".join(ch for ch in isrc.upper() if ch.isalnum())
    return cleaned or None


def title_artist_key(name: str, artist: str) -> str:
    # normalise() leaves no "|" (punctuation) except in the all-punctuation fallback, where a
    # rare false match between two such titles is harmless.
    return f"ta:{normalise(name)}|{normalise(artist)}"


# ------------------------------------------------------------------ inputs and outputs

Score = Annotated[float, msgspec.Meta(gt=0)]


class SongRef(msgspec.Struct, frozen=True, kw_only=True):
    """A song as a provider or the catalog names it. The one song reference of blends:
    every type that carries a song (a taste entry, a woven track, the room's song, a REST
    playlist track, an imported top track) extends it, so its fields are declared once and
    one type converts into another by name (``msgspec.convert(x, T, from_attributes=True)``).
    """

    track_id: str
    name: str
    artist: str
    album: str | None = None
    album_art_url: str | None = None
    duration_ms: int | None = None
    isrc: str | None = None

    def columns(self) -> tuple[str, str, str, str | None, str | None, int | None, str | None]:
        """The song's columns as ``blend_tracks`` and ``user_top_tracks`` store them
        (``track_id, track_name, artist_name, album_name, album_art_url, duration_ms,
        isrc``)."""
        return (
            self.track_id,
            self.name,
            self.artist,
            self.album,
            self.album_art_url,
            self.duration_ms,
            self.isrc,
        )


class TasteEntry(SongRef, frozen=True, kw_only=True):
    """One song in a member's taste, with how much they like it (higher is more)."""

    source: Source = "catalog"
    score: Score = 1.0


class MemberTaste(msgspec.Struct, frozen=True):
    member_id: uuid.UUID
    entries: list[TasteEntry]


class WovenTrack(SongRef, frozen=True, kw_only=True):
    key: str  # the song's identity after de-duplication (see weave)
    source: Source
    contributed_by: uuid.UUID
    contributors: list[uuid.UUID]


class PairMatch(msgspec.Struct, frozen=True, kw_only=True):
    members: tuple[uuid.UUID, uuid.UUID]
    score: float  # 0..1
    tracks: float  # weighted Jaccard over songs
    artists: float  # weighted Jaccard over artists
    shared_tracks: int


class UnifyingTrack(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    track_id: str
    name: str
    artist: str
    members: list[uuid.UUID]
    combined_score: float


class TasteMatch(msgspec.Struct, frozen=True, kw_only=True):
    group: float | None  # mean of the pair scores; None with fewer than two members
    pairs: list[PairMatch]
    unifying_track: UnifyingTrack | None
    formula_version: int = FORMULA_VERSION


class Weave(msgspec.Struct, frozen=True, kw_only=True):
    tracks: list[WovenTrack]
    shares: dict[uuid.UUID, int]  # tracks each member placed (contributed_by)
    taste_match: TasteMatch
    # Each member's best-loved songs (placed or not), as they would be woven by that member.
    libraries: dict[uuid.UUID, list[WovenTrack]]


# ------------------------------------------------------------------ de-duplication


class _Song:
    """One de-duplicated song: the entries of every member that hold it."""

    __slots__ = ("artist_key", "by_member", "key", "scores")

    def __init__(self, key: str) -> None:
        self.key = key
        self.by_member: dict[int, TasteEntry] = {}  # member index -> their best entry
        self.scores: dict[int, float] = {}  # member index -> summed score
        self.artist_key = ""

    @property
    def combined(self) -> float:
        return sum(self.scores.values())


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_songs(members: Sequence[MemberTaste]) -> list[_Song]:
    """Group every entry of every member into songs (ISRC or normalised title and artist)."""
    flat: list[tuple[int, TasteEntry]] = [
        (m, entry) for m, member in enumerate(members) for entry in member.entries
    ]
    parent = list(range(len(flat)))
    first_with: dict[str, int] = {}
    keys_of: list[list[str]] = []
    for i, (_, entry) in enumerate(flat):
        keys = [title_artist_key(entry.name, entry.artist)]
        isrc = normalise_isrc(entry.isrc)
        if isrc is not None:
            keys.append(f"isrc:{isrc}")
        keys_of.append(keys)
        for key in keys:
            j = first_with.setdefault(key, i)
            if j != i:
                a, b = _find(parent, i), _find(parent, j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(flat)):
        groups.setdefault(_find(parent, i), []).append(i)
    songs: list[_Song] = []
    for indices in groups.values():
        # The smallest key names the song: an ISRC when there is one ("isrc:" < "ta:").
        song = _Song(min(key for i in indices for key in keys_of[i]))
        for i in indices:
            m, entry = flat[i]
            song.scores[m] = song.scores.get(m, 0.0) + entry.score
            best = song.by_member.get(m)
            if best is None or entry.score > best.score:
                song.by_member[m] = entry
        first = flat[indices[0]][1]
        song.artist_key = normalise(first.artist)
        songs.append(song)
    songs.sort(key=lambda s: s.key)
    return songs


# ------------------------------------------------------------------ weaving


def _preference(song: _Song, member: int) -> float:
    return song.scores[member] * (1 + OVERLAP_BONUS * (len(song.scores) - 1))


def unifying_song(songs: Iterable[_Song]) -> _Song | None:
    """The song held by the most members (at least two), then the highest combined score."""
    shared = [s for s in songs if len(s.scores) >= 2]
    if not shared:
        return None
    return min(shared, key=lambda s: (-len(s.scores), -s.combined, s.key))


def _pick(songs: list[_Song], n: int, length: int, first: _Song | None) -> list[tuple[int, _Song]]:
    """Turn-taking selection: [(member index, song)] in pick order."""
    queues: list[list[_Song]] = [[] for _ in range(n)]
    for song in songs:
        for m in song.scores:
            queues[m].append(song)
    for m, queue in enumerate(queues):
        queue.sort(key=lambda s, m=m: (-_preference(s, m), s.key))  # type: ignore[misc]
    cursor = [0] * n
    counts = [0] * n
    exhausted = [False] * n
    taken: set[str] = set()
    picks: list[tuple[int, _Song]] = []
    if first is not None and length > 0:
        # The song that brings the group together opens the playlist, placed by the member
        # who loves it most (all counts are zero, so any member may take the first turn).
        owner = min(first.scores, key=lambda m: (-first.scores[m], m))
        picks.append((owner, first))
        counts[owner] += 1
        taken.add(first.key)
    while len(picks) < length:
        active = [m for m in range(n) if not exhausted[m]]
        if not active:
            break
        m = min(active, key=lambda m: (counts[m], m))
        queue = queues[m]
        while cursor[m] < len(queue) and queue[cursor[m]].key in taken:
            cursor[m] += 1
        if cursor[m] == len(queue):
            exhausted[m] = True
            continue
        song = queue[cursor[m]]
        cursor[m] += 1
        taken.add(song.key)
        counts[m] += 1
        picks.append((m, song))
    return picks


def min_max_run(counts: Iterable[int]) -> int:
    """The least possible longest run of one member's tracks, given each member's share."""
    counts = [c for c in counts if c > 0]
    if not counts:
        return 0
    top = max(counts)
    rest = sum(counts) - top
    return max(1, math.ceil(top / (rest + 1)))


def spread(owners: Sequence[int]) -> list[int]:
    """Reorder positions so no member's run exceeds ``min_max_run`` (keeps each member's order).

    ``owners[i]`` is the member of pick i; returns the pick indices in playlist order.
    """
    queues: dict[int, list[int]] = {}
    for i, m in enumerate(owners):
        queues.setdefault(m, []).append(i)
    cap = min_max_run(len(q) for q in queues.values())
    heads = dict.fromkeys(queues, 0)
    order: list[int] = []
    prev, run = -1, 0
    for _ in range(len(owners)):
        candidates = [m for m in queues if heads[m] < len(queues[m])]
        if run >= cap and len(candidates) > 1:
            candidates = [m for m in candidates if m != prev]
        # Most tracks left first; on a tie, change member; then member order.
        m = min(candidates, key=lambda m: (heads[m] - len(queues[m]), m == prev, m))
        order.append(queues[m][heads[m]])
        heads[m] += 1
        run = run + 1 if m == prev else 1
        prev = m
    return order


# ------------------------------------------------------------------ taste match


def _weighted_jaccard(a: dict[str, float], b: dict[str, float]) -> float:
    keys = a.keys() | b.keys()
    top = sum(max(a.get(k, 0.0), b.get(k, 0.0)) for k in keys)
    if top == 0:
        return 0.0
    return sum(min(a.get(k, 0.0), b.get(k, 0.0)) for k in keys) / top


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()} if total > 0 else {}


def taste_match(members: Sequence[MemberTaste], songs: Sequence[_Song]) -> TasteMatch:
    n = len(members)
    track_w: list[dict[str, float]] = [{} for _ in range(n)]
    artist_w: list[dict[str, float]] = [{} for _ in range(n)]
    for song in songs:
        for m, score in song.scores.items():
            track_w[m][song.key] = score
            artist_w[m][song.artist_key] = artist_w[m].get(song.artist_key, 0.0) + score
    tracks = [_normalised(w) for w in track_w]
    artists = [_normalised(w) for w in artist_w]
    pairs: list[PairMatch] = []
    for a in range(n):
        for b in range(a + 1, n):
            jt = _weighted_jaccard(tracks[a], tracks[b])
            ja = _weighted_jaccard(artists[a], artists[b])
            pairs.append(
                PairMatch(
                    members=(members[a].member_id, members[b].member_id),
                    score=round(TRACK_MATCH_WEIGHT * jt + ARTIST_MATCH_WEIGHT * ja, 4),
                    tracks=round(jt, 4),
                    artists=round(ja, 4),
                    shared_tracks=len(tracks[a].keys() & tracks[b].keys()),
                )
            )
    group = round(sum(p.score for p in pairs) / len(pairs), 4) if pairs else None
    unifying = unifying_song(songs)
    unifying_track = None
    if unifying is not None:
        owner = min(unifying.scores, key=lambda m: (-unifying.scores[m], m))
        entry = unifying.by_member[owner]
        unifying_track = UnifyingTrack(
            key=unifying.key,
            track_id=entry.track_id,
            name=entry.name,
            artist=entry.artist,
            members=[members[m].member_id for m in sorted(unifying.scores)],
            combined_score=round(unifying.combined, 4),
        )
    return TasteMatch(group=group, pairs=pairs, unifying_track=unifying_track)


# ------------------------------------------------------------------ the whole weave


def _woven(song: _Song, owner: int, ids: Sequence[uuid.UUID]) -> WovenTrack:
    entry = song.by_member[owner]
    others = sorted(m for m in song.scores if m != owner)
    return msgspec.convert(
        {
            **msgspec.structs.asdict(entry),
            "key": song.key,
            "contributed_by": ids[owner],
            "contributors": [ids[owner]] + [ids[m] for m in others],
        },
        WovenTrack,
    )


def weave(members: Sequence[MemberTaste], length: int, *, library_size: int = 30) -> Weave:
    """The blend's playlist (at most ``length`` tracks), its taste match and the libraries."""
    if length < 0:
        raise ValueError("length must be >= 0")
    ids = [m.member_id for m in members]
    if len(set(ids)) != len(ids):
        raise ValueError("members must be distinct")
    songs = merge_songs(members)
    picks = _pick(songs, len(members), length, unifying_song(songs))
    order = spread([m for m, _ in picks])
    tracks = [_woven(picks[i][1], picks[i][0], ids) for i in order]
    shares = dict.fromkeys(ids, 0)
    for owner, _ in picks:
        shares[ids[owner]] += 1
    libraries: dict[uuid.UUID, list[WovenTrack]] = {}
    for m, member_id in enumerate(ids):
        mine = sorted((s for s in songs if m in s.scores), key=lambda s: (-s.scores[m], s.key))
        libraries[member_id] = [_woven(s, m, ids) for s in mine[:library_size]]
    return Weave(
        tracks=tracks,
        shares=shares,
        taste_match=taste_match(members, songs),
        libraries=libraries,
    )
