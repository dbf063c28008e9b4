"""Done-when: collaborators on different server processes co-edit a mashup and hear previews.

Alice creates the mashup and offers a track on process A; Bob joins by code and offers a
track on process B; Carol joins too but is made a viewer. Alice and Bob edit the timeline from
their own processes and see each other's edits in the same order; Carol's edit and an edit of
a removed clip are refused. A preview requested on B is announced on both processes, and its
URL serves real audio of the requested length to members on either process, 404 to others.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from pedalboard.io import AudioFile

from tests.mashups.support import (
    MashupClient,
    clip,
    create_mashup,
    join_by_code,
    loop_wav,
    upload_track,
)
from tests.support import ServerProcess, make_user


def decode_mp3(data: bytes) -> tuple[float, float]:
    """Duration (s) and RMS of encoded audio, decoded independently of the server's code."""
    with AudioFile(io.BytesIO(data)) as f:
        samples = f.read(f.frames)
        return f.frames / f.samplerate, float(np.sqrt(np.mean(samples**2)))


async def test_two_collaborators_on_two_processes(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    alice, bob, carol, eve = [await make_user(db) for _ in range(4)]
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        created = await create_mashup(on_a, alice, "Alice & Bob", 30)
        mashup_id, code = created["id"], created["share_code"]["code"]
        await join_by_code(on_b, bob, code)
        await join_by_code(on_b, carol, code)
        made_viewer = await on_a.put(
            f"/mashups/{mashup_id}/members/{carol.id}",
            json={"role": "viewer"},
            headers=alice.headers,
        )
        assert made_viewer.status_code == 200

        # Real audio, uploaded through the API and analysed by the upload worker.
        drums = await upload_track(on_a, alice, loop_wav(6.0, 120.0, 220.0), "drums.wav")
        keys = await upload_track(on_b, bob, loop_wav(6.0, 120.0, 330.0), "keys.wav")
        inputs = f"/mashups/{mashup_id}/inputs"
        for http, user, track in ((on_a, alice, drums), (on_b, bob, keys)):
            added = await http.post(
                inputs, json={"uploaded_track_id": track["id"]}, headers=user.headers
            )
            assert added.status_code == 201, added.text

        alice_room = await MashupClient.connect(a.ws_url, mashup_id, alice.token)
        bob_room = await MashupClient.connect(b.ws_url, mashup_id, bob.token)
        carol_room = await MashupClient.connect(a.ws_url, mashup_id, carol.token)
        both = {drums["id"], keys["id"]}
        for member in (alice_room, bob_room, carol_room):
            await member.until_state(lambda s: {t.track_id for t in s.inputs} == both)
        assert {m.user_id: m.role for m in bob_room.state.members} == {
            alice.id: "owner",
            bob.id: "editor",
            carol.id: "viewer",
        }

        # Both edit at once from their own processes.
        answers = await asyncio.gather(
            alice_room.send_ops(
                [
                    {"op": "set_tempo", "bpm": 124},
                    {"op": "add_clip", "clip": clip("d1", drums["id"], out=5.0), "index": "V"},
                ]
            ),
            bob_room.send_ops(
                [{"op": "add_clip", "clip": clip("k1", keys["id"], position=4), "index": "a"}]
            ),
        )
        assert [m["type"] for m in answers] == ["ack", "ack"], answers
        await bob_room.until_state(lambda s: "d1" in s.order)
        await alice_room.until_state(lambda s: "k1" in s.order)
        # Both move the same clip at once: the later seq wins, for everyone.
        moves = await asyncio.gather(
            bob_room.send_ops([{"op": "move_clip", "clip": "d1", "position_beats": 2}]),
            alice_room.send_ops([{"op": "move_clip", "clip": "d1", "position_beats": 3}]),
        )
        assert [m["type"] for m in moves] == ["ack", "ack"], moves
        winner = 2.0 if moves[0]["seq"] > moves[1]["seq"] else 3.0
        await alice_room.send_ops(
            [
                {"op": "set_clip", "clip": "k1", "gain_db": -4, "fade_in_seconds": 0.5},
                {"op": "set_clip_effects", "clip": "k1", "effects": [{"type": "highpass"}]},
            ]
        )

        def edited(state: Any) -> bool:
            clips = {c.id: c for c in state.timeline.clips}
            return (
                state.timeline.bpm == 124.0
                and clips.get("d1") is not None
                and clips["d1"].position_beats == winner
                and clips.get("k1") is not None
                and clips["k1"].gain_db == -4.0
                and len(clips["k1"].effects) == 1
            )

        for member in (alice_room, bob_room, carol_room):
            await member.until_state(edited)
        assert alice_room.state == bob_room.state == carol_room.state
        # One order for everyone: the same batches with the same seqs.
        last = max(alice_room.seqs[-1][0], bob_room.seqs[-1][0])
        for member in (alice_room, bob_room, carol_room):
            await member.until(lambda _, m=member: m.seqs[-1][0] >= last)
        assert alice_room.seqs == bob_room.seqs == carol_room.seqs

        # The viewer may listen but not edit.
        refused = await carol_room.send_ops([{"op": "remove_clip", "clip": "d1"}])
        assert (refused["type"], refused["code"]) == ("error", "forbidden")

        # An edit of a clip someone removed is refused.
        await bob_room.send_ops([{"op": "remove_clip", "clip": "k1"}])
        late = await alice_room.send_ops([{"op": "move_clip", "clip": "k1", "position_beats": 8}])
        assert (late["type"], late["code"]) == ("error", "not_found")
        # A clip from a track that is not an input is refused too.
        stray = clip("x1", str(uuid.uuid4()))
        foreign = await alice_room.send_ops([{"op": "add_clip", "clip": stray, "index": "b"}])
        assert (foreign["type"], foreign["code"]) == ("error", "not_found")
        await bob_room.send_ops(
            [{"op": "add_clip", "clip": clip("k2", keys["id"], position=6), "index": "b"}]
        )
        for member in (alice_room, bob_room):
            await member.until_state(lambda s: [c.id for c in s.timeline.clips] == ["d1", "k2"])

        # A preview requested on B: announced on both processes, served by both.
        asked = await on_b.post(
            f"/mashups/{mashup_id}/previews",
            json={"start_seconds": 0.5, "duration_seconds": 4.0},
            headers=carol.headers,
        )
        assert asked.status_code == 202, asked.text
        preview_id = asked.json()["id"]
        ready = [await m.until_preview_done(preview_id) for m in (alice_room, bob_room)]
        assert [r["op"] for r in ready] == ["preview_ready", "preview_ready"], ready
        assert ready[0] == ready[1]
        started = [x for x in alice_room.announcements if x["op"] == "preview_started"]
        assert started[-1]["id"] == preview_id and started[-1]["requested_by"] == str(carol.id)
        preview = ready[0]["preview"]
        assert preview["url"] == f"/mashups/{mashup_id}/previews/{preview_id}"
        assert preview["seq"] == asked.json()["seq"]
        assert preview["duration_seconds"] == 4.0
        assert [p.id for p in alice_room.state.previews] == [preview_id]

        for http in (on_a, on_b):
            served = await http.get(preview["url"], headers=alice.headers)
            assert served.status_code == 200, served.text
            assert served.headers["content-type"].startswith("audio/mpeg")
            seconds, rms = decode_mp3(served.content)
            assert abs(seconds - 4.0) < 0.1, seconds  # MP3 adds at most a frame of padding
            assert rms > 0.01  # the clips sound, normalised towards -14 LUFS
        outsider = await on_a.get(preview["url"], headers=eve.headers)
        assert outsider.status_code == 404
        assert outsider.headers["content-type"].startswith("application/problem+json")
        assert (await on_b.get(preview["url"])).status_code == 401

        # Withdrawing an input removes its clips from everyone's timeline.
        gone = await on_b.delete(f"{inputs}/{keys['id']}", headers=bob.headers)
        assert gone.status_code == 204
        for member in (alice_room, bob_room):
            await member.until_state(lambda s: [c.id for c in s.timeline.clips] == ["d1"])

        # The REST view agrees with the room.
        detail = (await on_a.get(f"/mashups/{mashup_id}", headers=carol.headers)).json()
        assert [c["id"] for c in detail["timeline"]["clips"]] == ["d1"]
        assert [p["id"] for p in detail["previews"]] == [preview_id]

        # Deleting the mashup deletes its room, closes it, and deletes its stored previews.
        stored = (
            Path(a.env["BLENDTUNE_STORAGE_DIR"])
            / f"previews/{uuid.UUID(mashup_id).hex}/{uuid.UUID(preview_id).hex}.mp3"
        )
        assert stored.is_file()
        assert (
            await on_a.delete(f"/mashups/{mashup_id}", headers=alice.headers)
        ).status_code == 204
        assert not stored.exists()
        assert (await on_b.get(preview["url"], headers=alice.headers)).status_code == 404
        # Everyone in the room, on both processes, is let go at once (4404: room gone).
        for member in (alice_room, bob_room, carol_room):
            assert await member.client.closed() == 4404
