"""The mashup room kind: the live timeline of one mashup, co-edited by its members.

State: the mashup's name, owner, target duration and members (with their roles), its input
tracks (the uploaded tracks clips may be cut from), the timeline itself (``dsp.Timeline``:
tempo, key, clips with their effects, the master chain), a fractional order key per clip,
the latest rendered previews and the latest export. The room id is the mashup id.

Client ops (docs/mashups.md lists them with their rejection codes): ``add_clip``,
``move_clip``, ``trim_clip``, ``set_clip``, ``set_clip_effects``, ``reorder_clip``,
``remove_clip``, ``set_tempo``, ``set_key`` and ``set_master``; owners and editors may send
them, viewers may not. The server sends ``sync`` (name, members, inputs), the preview
announcements ``preview_started``, ``preview_ready`` and ``preview_failed``, ``export``
(the progress of the mashup's full render), ``generation`` (the progress of a generated draft)
and ``generated`` (the draft itself, replacing the whole timeline).

Every edit is checked with ``dsp.validate_timeline``, the same validation the renderer runs
(on what the edit changed), so nothing the room accepts can make a render fail on its schema.
The reducer is pure and deterministic; ``exists`` and ``membership`` read the mashup tables.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from dsp.arrange import Plan
from dsp.effects import EffectChain
from dsp.errors import InvalidTimeline
from dsp.structure import Stem
from dsp.timeline import (
    MAX_CLIPS,
    Bpm,
    Clip,
    FadeSeconds,
    KeySignature,
    Timeline,
    validate_timeline,
)
from rooms import fractional
from rooms.kinds import Actor, Membership, OpRejected, RoomKind

if TYPE_CHECKING:
    from rooms.context import KindContext

KIND: Final = "mashup"
# Previews kept in the state (newest last); older ones are deleted from storage.
PREVIEWS_KEPT: Final = 5
# A clip must start this long before the end of its source (the stored duration is rounded).
SOURCE_MARGIN_SECONDS: Final = 0.05
# A clip may end a little after the stored duration (rounded to 0.01 s); the renderer clamps.
SOURCE_SLACK_SECONDS: Final = 0.01

Role = Literal["owner", "editor", "viewer"]
EDITORS: Final = frozenset({"owner", "editor"})
ClipId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Beats = Annotated[float, Meta(ge=0.0, le=100_000.0)]
SourceTime = Annotated[float, Meta(ge=0.0, le=4 * 3600.0)]


class RoomMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    username: str
    role: Role


class InputTrack(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded track the mashup may cut clips from (its analysis, for the client)."""

    track_id: str  # the uploaded track's id; clips name it in ``track_id``
    name: str  # the file name it was uploaded under
    owner_id: uuid.UUID
    duration_seconds: float
    bpm: float | None = None
    key_signature: str | None = None


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    """A rendered preview window, fetchable by members at ``url``."""

    id: str
    url: str  # path on the server: GET it with the session (members only)
    seq: int  # the room seq whose timeline was rendered
    start_seconds: float
    duration_seconds: float
    mime_type: str
    requested_by: uuid.UUID
    loudness_lufs: float | None = None
    render_seconds: float = 0.0


class Export(msgspec.Struct, frozen=True, kw_only=True):
    """The mashup's full, high-quality render (its output), as far as it got."""

    id: str
    status: Literal["generating", "completed", "failed"]
    seq: int  # the room seq whose timeline is rendered
    requested_by: uuid.UUID
    url: str | None = None  # set once completed
    duration_seconds: float | None = None
    loudness_lufs: float | None = None
    detail: str = ""


GenerationStatusName = Literal["pending", "generating", "completed", "failed"]
GenerationStage = Literal["queued", "loading", "arranging", "rendering", "done", "failed"]


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """The latest generated draft of the mashup (``POST /mashups/{id}/generate``), as far as
    it got: queued, then loading the inputs' analyses, arranging, rendering, done or failed."""

    id: str  # the generation job's id, as the 202 answer gave it
    version: int  # orders the updates of one generation; an older one is ignored
    status: GenerationStatusName
    stage: GenerationStage
    progress: Annotated[float, Meta(ge=0.0, le=1.0)]
    seed: int
    target_seconds: int
    requested_by: uuid.UUID | None
    url: str | None = None  # the rendered draft, once completed (the mashup's export URL)
    detail: str = ""  # why it failed
    plan: Plan | None = None  # every choice the arranger made, once arranged


class MashupRoomState(msgspec.Struct, frozen=True, kw_only=True):
    name: str = ""
    owner_id: uuid.UUID | None = None
    target_duration_seconds: int = 0
    members: list[RoomMember] = []
    inputs: list[InputTrack] = []
    timeline: Timeline = Timeline()
    # Clip id -> fractional key; ``timeline.clips`` is sorted by (key, id).
    order: dict[str, str] = {}
    previews: list[Preview] = []  # newest last, at most PREVIEWS_KEPT
    sync_version: int = 0  # the ``version`` of the newest ``sync`` applied
    export: Export | None = None  # the latest export (render of the whole mashup)
    generation: Generation | None = None  # the latest generated draft, with its progress


# ------------------------------------------------------------------ ops


class _Op(msgspec.Struct, frozen=True, tag_field="op", forbid_unknown_fields=True):
    pass


class AddClip(_Op, frozen=True, tag="add_clip"):
    """Place a new clip; ``clip.id`` is chosen by the client (a UUID, say)."""

    clip: Clip
    index: str


class MoveClip(_Op, frozen=True, tag="move_clip"):
    clip: str
    position_beats: Beats


class TrimClip(_Op, frozen=True, tag="trim_clip"):
    clip: str
    in_seconds: SourceTime
    out_seconds: SourceTime


class SetClip(_Op, frozen=True, tag="set_clip"):
    """Change some of a clip's settings; fields left out keep their value."""

    clip: str
    gain_db: Annotated[float, Meta(ge=-60.0, le=24.0)] | UnsetType = UNSET
    fade_in_seconds: FadeSeconds | UnsetType = UNSET
    fade_out_seconds: FadeSeconds | UnsetType = UNSET
    pitch_shift_semitones: Annotated[float, Meta(ge=-24.0, le=24.0)] | UnsetType = UNSET
    muted: bool | UnsetType = UNSET
    stem: Stem | UnsetType = UNSET
    source_bpm: Bpm | UnsetType | None = UNSET
    source_key: KeySignature | UnsetType | None = UNSET


class SetClipEffects(_Op, frozen=True, tag="set_clip_effects"):
    clip: str
    effects: EffectChain


class ReorderClip(_Op, frozen=True, tag="reorder_clip"):
    clip: str
    index: str


class RemoveClip(_Op, frozen=True, tag="remove_clip"):
    clip: str


class SetTempo(_Op, frozen=True, tag="set_tempo"):
    bpm: Bpm


class SetKey(_Op, frozen=True, tag="set_key"):
    key: KeySignature | None


class SetMaster(_Op, frozen=True, tag="set_master"):
    effects: EffectChain


class Sync(_Op, frozen=True, tag="sync"):
    """Server only: the mashup's name, owner, members and inputs, complete.

    Clips cut from a track that is no longer an input are removed. ``version`` orders syncs
    (the mashup row's change time in microseconds): one older than the last applied is
    ignored, so syncs that reach the room out of order never bring back an older picture.
    """

    version: int
    name: str
    owner_id: uuid.UUID
    target_duration_seconds: int
    members: list[RoomMember]
    inputs: list[InputTrack]


class PreviewStarted(_Op, frozen=True, tag="preview_started"):
    """Server only: a member asked for a preview of the timeline at ``seq``."""

    id: str
    requested_by: uuid.UUID
    seq: int
    start_seconds: float
    duration_seconds: float


class PreviewReady(_Op, frozen=True, tag="preview_ready"):
    """Server only: the preview is stored; fetch it at ``preview.url``."""

    preview: Preview


class PreviewFailed(_Op, frozen=True, tag="preview_failed"):
    """Server only: the preview was not made (``code``: superseded, invalid, busy, error)."""

    id: str
    code: str
    detail: str


class ExportStatus(_Op, frozen=True, tag="export"):
    """Server only: an export started, completed (fetch ``export.url``) or failed."""

    export: Export


class GenerationUpdate(_Op, frozen=True, tag="generation"):
    """Server only: a generation was queued, moved on (stage, progress), completed or failed.

    Replaces ``generation``, unless it is an older update (lower ``version``) of the same
    generation than the room has: updates sent by different processes may arrive out of order.
    """

    generation: Generation


class Generated(_Op, frozen=True, tag="generated"):
    """Server only: the generated draft replaces the whole timeline (tempo, key, clips, master)
    and the clips' order, in one batch, so it can be seen (and undone) as one change."""

    generation_id: str
    requested_by: uuid.UUID  # who asked for it: the draft is on their undo stack
    timeline: Timeline
    order: dict[str, str]


ClientOp = (
    AddClip
    | MoveClip
    | TrimClip
    | SetClip
    | SetClipEffects
    | ReorderClip
    | RemoveClip
    | SetTempo
    | SetKey
    | SetMaster
)
ServerOp = (
    Sync
    | PreviewStarted
    | PreviewReady
    | PreviewFailed
    | ExportStatus
    | GenerationUpdate
    | Generated
)
MashupOp = ClientOp | ServerOp


# ------------------------------------------------------------------ the reducer


def role_of(state: MashupRoomState, actor: Actor) -> str:
    """The actor's current role: the room's member list wins over the role at join time.

    So a member the owner demoted or removed loses edit rights at once, even while still
    connected. Before the server's first ``sync`` the room has no member list; the role the
    user had when joining (read from the database) serves then.
    """
    if actor.is_server:
        return "server"
    if not state.members:
        return actor.role
    for member in state.members:
        if member.user_id == actor.user_id:
            return member.role
    raise OpRejected("forbidden", "you are no longer a member of this mashup")


def _find(state: MashupRoomState, clip_id: str) -> int:
    for n, clip in enumerate(state.timeline.clips):
        if clip.id == clip_id:
            return n
    raise OpRejected("not_found", f"no clip {clip_id[:64]!r} on the timeline (it may be removed)")


def _check_index(index: str) -> None:
    if not fractional.is_valid_key(index):
        raise OpRejected("invalid", f"invalid fractional index {index[:40]!r}")


def _input(state: MashupRoomState, track_id: str) -> InputTrack:
    for track in state.inputs:
        if track.track_id == track_id:
            return track
    raise OpRejected("not_found", f"track {track_id[:64]!r} is not an input of this mashup")


def _check_source(state: MashupRoomState, clip: Clip) -> None:
    source = _input(state, clip.track_id)
    if clip.in_seconds > source.duration_seconds - SOURCE_MARGIN_SECONDS:
        raise OpRejected(
            "invalid",
            f"clip {clip.id!r} starts at {clip.in_seconds:.3f} s, after the end of its track "
            f"({source.duration_seconds:.2f} s)",
        )
    if clip.out_seconds > source.duration_seconds + SOURCE_SLACK_SECONDS:
        raise OpRejected(
            "invalid",
            f"clip {clip.id!r} ends at {clip.out_seconds:.3f} s, after the end of its track "
            f"({source.duration_seconds:.2f} s)",
        )


def _with_timeline(
    state: MashupRoomState,
    timeline: Timeline,
    order: dict[str, str] | None = None,
    *,
    changed: Clip | None = None,
    everything: bool = False,
) -> MashupRoomState:
    """The state with a new timeline, its clips sorted, validated as the renderer validates it.

    ``dsp.validate_timeline`` runs on what the op changed: the timeline's own fields with just
    the ``changed`` clip (its bounds, its stretch at the project tempo), or the whole timeline
    when ``everything`` changed (tempo, key, master). The untouched clips passed the same
    check when they were last changed, and ``Timeline.__post_init__`` (run on every replace)
    rechecks unique ids and every stretch; so a batch stays cheap on a full timeline while
    every state the room accepts is one the renderer accepts.
    """
    order = state.order if order is None else order
    clips = tuple(sorted(timeline.clips, key=lambda c: (order.get(c.id, ""), c.id)))
    if len(clips) > MAX_CLIPS:
        raise OpRejected("invalid", f"a timeline holds at most {MAX_CLIPS} clips")
    try:
        timeline = msgspec.structs.replace(timeline, clips=clips)
        if everything:
            validate_timeline(timeline)
        elif changed is not None:
            validate_timeline(msgspec.structs.replace(timeline, clips=(changed,)))
    except (InvalidTimeline, ValueError) as exc:  # ValueError: Timeline.__post_init__
        raise OpRejected("invalid", str(exc)[:300]) from None
    return msgspec.structs.replace(state, timeline=timeline, order=order)


def _replace_clip(state: MashupRoomState, n: int, clip: Clip) -> MashupRoomState:
    clips = state.timeline.clips
    timeline = _new_timeline(state.timeline, clips=(*clips[:n], clip, *clips[n + 1 :]))
    return _with_timeline(state, timeline, changed=clip)


def _new_clip(clip: Clip, **changes: object) -> Clip:
    try:
        return msgspec.structs.replace(clip, **changes)
    except ValueError as exc:  # Clip.__post_init__: out <= in, or too long
        raise OpRejected("invalid", str(exc)[:300]) from None


def _new_timeline(timeline: Timeline, **changes: object) -> Timeline:
    try:
        return msgspec.structs.replace(timeline, **changes)
    except ValueError as exc:  # Timeline.__post_init__: a stretch out of range, a duplicate id
        raise OpRejected("invalid", str(exc)[:300]) from None


def reduce(state: MashupRoomState, op: MashupOp, actor: Actor) -> MashupRoomState:
    """The pure reducer (see the module docstring and docs/mashups.md)."""
    if isinstance(op, ServerOp):
        if not actor.is_server:
            raise OpRejected("forbidden", f"only the server sends {op.__struct_config__.tag}")
        return _apply_server(state, op)
    if role_of(state, actor) not in EDITORS and not actor.is_server:
        raise OpRejected("forbidden", "viewers cannot edit the mashup")
    timeline = state.timeline
    if isinstance(op, SetTempo):
        return _with_timeline(state, _new_timeline(timeline, bpm=op.bpm), everything=True)
    if isinstance(op, SetKey):
        return _with_timeline(state, _new_timeline(timeline, key=op.key), everything=True)
    if isinstance(op, SetMaster):
        return _with_timeline(state, _new_timeline(timeline, master=op.effects), everything=True)
    if isinstance(op, AddClip):
        _check_index(op.index)
        if op.clip.id in state.order:
            raise OpRejected("conflict", f"a clip {op.clip.id!r} already exists")
        _check_source(state, op.clip)
        order = {**state.order, op.clip.id: op.index}
        added = _new_timeline(timeline, clips=(*timeline.clips, op.clip))
        return _with_timeline(state, added, order, changed=op.clip)
    n = _find(state, op.clip)
    clip = timeline.clips[n]
    if isinstance(op, RemoveClip):
        order = {k: v for k, v in state.order.items() if k != op.clip}
        clips = (*timeline.clips[:n], *timeline.clips[n + 1 :])
        return _with_timeline(state, _new_timeline(timeline, clips=clips), order)
    if isinstance(op, ReorderClip):
        _check_index(op.index)
        return _with_timeline(state, timeline, {**state.order, op.clip: op.index})
    if isinstance(op, MoveClip):
        return _replace_clip(state, n, _new_clip(clip, position_beats=op.position_beats))
    if isinstance(op, TrimClip):
        trimmed = _new_clip(clip, in_seconds=op.in_seconds, out_seconds=op.out_seconds)
        _check_source(state, trimmed)
        return _replace_clip(state, n, trimmed)
    if isinstance(op, SetClipEffects):
        return _replace_clip(state, n, _new_clip(clip, effects=op.effects))
    if isinstance(op, SetClip):
        changes = {
            name: getattr(op, name)
            for name in op.__struct_fields__
            if name != "clip" and getattr(op, name) is not UNSET
        }
        return _replace_clip(state, n, _new_clip(clip, **changes))
    raise OpRejected("invalid", "unknown op")  # pragma: no cover - the union is exhaustive


def _apply_server(state: MashupRoomState, op: ServerOp) -> MashupRoomState:
    if isinstance(op, Sync):
        if op.version < state.sync_version:
            return state  # an older picture than the room has: stale
        inputs = {t.track_id for t in op.inputs}
        clips = tuple(c for c in state.timeline.clips if c.track_id in inputs)
        kept = {c.id for c in clips}
        return msgspec.structs.replace(
            state,
            name=op.name,
            owner_id=op.owner_id,
            target_duration_seconds=op.target_duration_seconds,
            members=op.members,
            inputs=op.inputs,
            timeline=msgspec.structs.replace(state.timeline, clips=clips),
            order={k: v for k, v in state.order.items() if k in kept},
            sync_version=op.version,
        )
    if isinstance(op, PreviewReady):
        previews = [*state.previews, op.preview][-PREVIEWS_KEPT:]
        return msgspec.structs.replace(state, previews=previews)
    if isinstance(op, ExportStatus):
        return msgspec.structs.replace(state, export=op.export)
    if isinstance(op, GenerationUpdate):
        current = state.generation
        new = op.generation
        if current is not None and current.id == new.id and new.version < current.version:
            return state  # an older update of the same generation, overtaken
        return msgspec.structs.replace(state, generation=new)
    if isinstance(op, Generated):
        return _generated(state, op)
    return state  # started and failed are announcements only


def _generated(state: MashupRoomState, op: Generated) -> MashupRoomState:
    """The generated timeline, checked like every edit: clips cut from inputs, inside them,
    each with a valid order key, and the whole timeline as the renderer validates it."""
    ids = {clip.id for clip in op.timeline.clips}
    if set(op.order) != ids:
        raise OpRejected("invalid", "the order must give every clip exactly one key")
    for index in op.order.values():
        _check_index(index)
    for clip in op.timeline.clips:
        _check_source(state, clip)
    return _with_timeline(state, op.timeline, dict(op.order), everything=True)


def evicted_previews(before: list[Preview], added: Preview) -> list[Preview]:
    """The previews ``preview_ready`` with ``added`` pushes out of a state that held ``before``."""
    kept = {p.id for p in [*before, added][-PREVIEWS_KEPT:]}
    return [p for p in before if p.id not in kept]


# ------------------------------------------------------------------ history

# Clip settings ``set_clip`` changes; history sets them one per op, so an undo skips only the
# settings someone else changed since.
CLIP_SETTINGS: Final = (
    "gain_db",
    "fade_in_seconds",
    "fade_out_seconds",
    "pitch_shift_semitones",
    "muted",
    "source_bpm",
    "source_key",
)


def diff(current: MashupRoomState, target: MashupRoomState) -> list[ClientOp]:
    """Client ops turning ``current``'s timeline into ``target``'s (the rest of the state,
    members, inputs, previews and export, belongs to the server and is left alone).

    Removals come first (they free clip ids and room under ``MAX_CLIPS``), then the
    whole-timeline fields, then changes to kept clips, then additions.
    """
    ops: list[ClientOp] = []
    now = {c.id: c for c in current.timeline.clips}
    then = {c.id: c for c in target.timeline.clips}
    for clip_id, present in now.items():
        if clip_id not in then or then[clip_id].track_id != present.track_id:
            ops.append(RemoveClip(clip=clip_id))
    a, b = current.timeline, target.timeline
    if a.bpm != b.bpm:
        ops.append(SetTempo(bpm=b.bpm))
    if a.key != b.key:
        ops.append(SetKey(key=b.key))
    if a.master != b.master:
        ops.append(SetMaster(effects=b.master))
    added: list[ClientOp] = []
    for clip_id, goal in then.items():
        clip = now.get(clip_id)
        if clip is None or clip.track_id != goal.track_id:
            added.append(AddClip(clip=goal, index=target.order[clip_id]))
            continue
        if (clip.in_seconds, clip.out_seconds) != (goal.in_seconds, goal.out_seconds):
            ops.append(
                TrimClip(clip=clip_id, in_seconds=goal.in_seconds, out_seconds=goal.out_seconds)
            )
        if clip.position_beats != goal.position_beats:
            ops.append(MoveClip(clip=clip_id, position_beats=goal.position_beats))
        for name in CLIP_SETTINGS:
            value = getattr(goal, name)
            if getattr(clip, name) != value:
                ops.append(SetClip(clip=clip_id, **{name: value}))
        if clip.effects != goal.effects:
            ops.append(SetClipEffects(clip=clip_id, effects=goal.effects))
        if current.order.get(clip_id) != target.order.get(clip_id):
            ops.append(ReorderClip(clip=clip_id, index=target.order[clip_id]))
    return ops + added


def touched(state: MashupRoomState, op: MashupOp) -> object:
    """The part of the timeline ``op`` overwrites (see ``RoomKind.touched``)."""
    timeline = state.timeline
    if isinstance(op, SetTempo):
        return timeline.bpm
    if isinstance(op, SetKey):
        return timeline.key
    if isinstance(op, SetMaster):
        return timeline.master
    clip_id = op.clip.id if isinstance(op, AddClip) else getattr(op, "clip", None)
    if not isinstance(clip_id, str):
        return state  # a server op: everything (history never makes one)
    clip = next((c for c in timeline.clips if c.id == clip_id), None)
    if clip is None:
        return None
    if isinstance(op, AddClip | RemoveClip):
        return (clip, state.order.get(clip_id))  # the whole clip
    # A clip's part is one setting *of that clip*: a clip of another source under the same id
    # (removed and re-added since, which ``diff`` also treats as another clip) is another
    # part, even where the setting happens to be equal.
    part: object
    if isinstance(op, TrimClip):
        part = (clip.in_seconds, clip.out_seconds)
    elif isinstance(op, MoveClip):
        part = clip.position_beats
    elif isinstance(op, SetClip):
        part = tuple(
            getattr(clip, name) for name in CLIP_SETTINGS if getattr(op, name) is not UNSET
        )
    elif isinstance(op, SetClipEffects):
        part = clip.effects
    else:  # reorder_clip
        part = state.order.get(clip_id)
    return (clip.track_id, part)


def describe(op: MashupOp) -> str:
    """A short human summary of one op (the history listing)."""
    if isinstance(op, AddClip):
        return f"added clip {op.clip.id}"
    if isinstance(op, RemoveClip):
        return f"removed clip {op.clip}"
    if isinstance(op, MoveClip):
        return f"moved clip {op.clip} to beat {op.position_beats:g}"
    if isinstance(op, TrimClip):
        return f"trimmed clip {op.clip} to {op.in_seconds:g}-{op.out_seconds:g} s"
    if isinstance(op, SetClip):
        changed = [n.replace("_", " ") for n in CLIP_SETTINGS if getattr(op, n) is not UNSET]
        return f"set {', '.join(changed) or 'nothing'} of clip {op.clip}"
    if isinstance(op, SetClipEffects):
        return f"set the effects of clip {op.clip}"
    if isinstance(op, ReorderClip):
        return f"reordered clip {op.clip}"
    if isinstance(op, SetTempo):
        return f"set the tempo to {op.bpm:g} BPM"
    if isinstance(op, SetKey):
        return f"set the key to {op.key}" if op.key else "cleared the key"
    if isinstance(op, SetMaster):
        return "set the master effects"
    if isinstance(op, Generated):
        return f"generated a draft ({len(op.timeline.clips)} clips at {op.timeline.bpm:g} BPM)"
    tag = str(op.__struct_config__.tag)
    return SERVER_SUMMARIES.get(tag, tag.replace("_", " "))


# The server's other ops, in words (the history listing shows them under "Blendtune").
SERVER_SUMMARIES: Final = {
    "sync": "updated the people and sources",
    "preview_started": "started a preview",
    "preview_ready": "rendered a preview",
    "preview_failed": "could not render a preview",
    "export": "updated the export",
    "generation": "worked on a draft",
}


# ------------------------------------------------------------------ the kind


class MashupRoom(RoomKind[MashupRoomState, MashupOp]):
    name = KIND
    state_type = MashupRoomState
    op_type = MashupOp
    max_batch_ops = 100

    def initial_state(self) -> MashupRoomState:
        return MashupRoomState()

    def apply(self, state: MashupRoomState, op: MashupOp, actor: Actor) -> MashupRoomState:
        return reduce(state, op, actor)

    def diff(
        self, current: MashupRoomState, target: MashupRoomState, actor: Actor
    ) -> list[MashupOp]:
        return list(diff(current, target))

    def touched(self, state: MashupRoomState, op: MashupOp, actor: Actor) -> object:
        return touched(state, op)

    def on_behalf_of(self, op: MashupOp) -> uuid.UUID | None:
        # A generated draft is the undoable change of the member who asked for it.
        return op.requested_by if isinstance(op, Generated) else None

    def may_edit(self, state: MashupRoomState, actor: Actor) -> bool:
        try:
            return role_of(state, actor) in EDITORS
        except OpRejected:
            return False

    def describe(self, op: MashupOp) -> str:
        return describe(op)

    async def exists(self, services: KindContext, room_id: uuid.UUID) -> bool:
        found = await services.pool.fetchval("SELECT 1 FROM mashups WHERE id = $1", room_id)
        return found is not None

    async def membership(
        self, services: KindContext, room_id: uuid.UUID, user_id: uuid.UUID
    ) -> Membership | None:
        role = await services.pool.fetchval(
            "SELECT role::text FROM mashup_members WHERE mashup_id = $1 AND user_id = $2",
            room_id,
            user_id,
        )
        return None if role is None else Membership(role=role)
