"""Previews over time: the room keeps the latest five and storage keeps only what it lists;
roles changed over REST take effect in the room at once, and removed members are let go."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

import dsp
from server.mashups.room import PREVIEWS_KEPT
from tests.mashups.support import (
    MashupClient,
    clip,
    create_mashup,
    join_by_code,
    loop_wav,
    upload_track,
)
from tests.support import ServerProcess, eventually, make_user


async def test_old_previews_are_dropped_and_demotions_apply_at_once(
    pair: tuple[ServerProcess, ServerProcess], db: asyncpg.Connection
) -> None:
    a, b = pair
    owner, editor = await make_user(db), await make_user(db)
    storage = Path(a.env["BLENDTUNE_STORAGE_DIR"])
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        created = await create_mashup(on_a, owner, "Loops", 20)
        mashup_id = created["id"]
        await join_by_code(on_b, editor, created["share_code"]["code"])
        track = await upload_track(on_a, owner, loop_wav(3.0), "short.wav")
        added = await on_a.post(
            f"/mashups/{mashup_id}/inputs",
            json={"uploaded_track_id": track["id"]},
            headers=owner.headers,
        )
        assert added.status_code == 201
        owner_room = await MashupClient.connect(a.ws_url, mashup_id, owner.token)
        editor_room = await MashupClient.connect(b.ws_url, mashup_id, editor.token)
        await owner_room.until_state(lambda s: len(s.inputs) == 1)
        answer = await owner_room.send_ops(
            [{"op": "add_clip", "clip": clip("c1", track["id"], out=2.5), "index": "V"}]
        )
        assert answer["type"] == "ack"

        # Seven previews, one after the other, alternating processes.
        ids: list[str] = []
        for n in range(PREVIEWS_KEPT + 2):
            http = on_a if n % 2 == 0 else on_b
            asked = await http.post(
                f"/mashups/{mashup_id}/previews",
                json={"start_seconds": 0, "duration_seconds": 1.0 + n / 10},
                headers=editor.headers,
            )
            assert asked.status_code == 202, asked.text
            ids.append(asked.json()["id"])
            done = await owner_room.until_preview_done(ids[-1])
            assert done["op"] == "preview_ready", done
        await editor_room.until_state(lambda s: s.previews and s.previews[-1].id == ids[-1])
        kept = ids[-PREVIEWS_KEPT:]
        assert [p.id for p in owner_room.state.previews] == kept
        assert [p.id for p in editor_room.state.previews] == kept
        assert [p.duration_seconds for p in owner_room.state.previews] == [
            1.0 + n / 10 for n in range(2, PREVIEWS_KEPT + 2)
        ]
        # The audio of the dropped ones is deleted right after the announcement.
        folder = storage / "previews" / mashup_id.replace("-", "")
        wanted = {i.replace("-", "") for i in kept}

        async def only_kept() -> bool:
            return {p.stem for p in folder.iterdir()} == wanted

        await eventually(only_kept, what="the dropped previews' audio being deleted")
        dropped = f"/mashups/{mashup_id}/previews/{ids[0]}"
        assert (await on_b.get(dropped, headers=owner.headers)).status_code == 404
        latest = f"/mashups/{mashup_id}/previews/{ids[-1]}"
        assert (await on_b.get(latest, headers=editor.headers)).status_code == 200

        # The export: the whole mashup in high quality, announced in the room, served as FLAC.
        export_url = f"/mashups/{mashup_id}/export"
        not_yet = await on_a.get(export_url, headers=owner.headers)
        assert (not_yet.status_code, not_yet.json()["code"]) == (404, "export_not_found")
        asked = await on_b.post(export_url, headers=editor.headers)
        assert asked.status_code == 202, asked.text
        assert asked.json()["status"] == "generating"
        export_id = asked.json()["id"]
        await owner_room.until_state(
            lambda s: (
                s.export is not None
                and s.export.id == export_id
                and s.export.status != "generating"
            )
        )
        export = owner_room.state.export
        assert export is not None and export.status == "completed", export
        assert export.url == export_url and export.requested_by == editor.id
        length = dsp.timeline_duration_seconds(owner_room.state.timeline)
        assert export.duration_seconds == pytest.approx(length, abs=0.01)
        flac = await on_a.get(export_url, headers=owner.headers)
        assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
        audio = dsp.decode(flac.content, filename="export.flac")
        assert audio.duration_seconds == pytest.approx(length, abs=0.01)
        row = await db.fetchrow(
            "SELECT generation_status::text AS status, output_storage_key, download_count"
            " FROM mashups WHERE id = $1",
            uuid.UUID(mashup_id),
        )
        # The export leaves the generation's status alone (nothing was generated here), and
        # the download wrote nothing: a GET never writes (downloads are counted in /metrics).
        assert row is not None and dict(row) == {
            "status": "pending",
            "output_storage_key": f"exports/{folder.name}/{uuid.UUID(export_id).hex}.flac",
            "download_count": 0,
        }
        metrics = (await on_a.get("/metrics")).text
        downloads = [
            line
            for line in metrics.splitlines()
            if line.startswith("blendtune_http_requests_total{")
            and 'method="GET"' in line
            and '/export"' in line
            and 'status="200"' in line
        ]
        assert downloads and float(downloads[0].split()[-1]) >= 1, metrics[-2000:]
        assert (storage / row["output_storage_key"]).is_file()
        stranger = await make_user(db)
        assert (await on_b.get(export_url, headers=stranger.headers)).status_code == 404

        # The owner makes the editor a viewer: their open connection loses edit rights at once.
        demoted = await on_a.put(
            f"/mashups/{mashup_id}/members/{editor.id}",
            json={"role": "viewer"},
            headers=owner.headers,
        )
        assert demoted.status_code == 200
        await editor_room.until_state(
            lambda s: any(m.user_id == editor.id and m.role == "viewer" for m in s.members)
        )
        refused = await editor_room.send_ops(
            [{"op": "move_clip", "clip": "c1", "position_beats": 4}]
        )
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        viewer_export = await on_b.post(export_url, headers=editor.headers)
        assert (viewer_export.status_code, viewer_export.json()["code"]) == (403, "forbidden")
        # Removed altogether: their connection is closed (4403, not a member).
        removed = await on_a.delete(
            f"/mashups/{mashup_id}/members/{editor.id}", headers=owner.headers
        )
        assert removed.status_code == 204
        assert await editor_room.client.closed() == 4403

        # Deleting the mashup deletes the export and the previews from storage.
        output = storage / row["output_storage_key"]
        deleted = await on_a.delete(f"/mashups/{mashup_id}", headers=owner.headers)
        assert deleted.status_code == 204
        assert not output.exists()
        assert list(folder.iterdir()) == []
        assert owner_room.state.timeline.bpm == 120.0
        await owner_room.close()
