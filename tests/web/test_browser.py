"""The web client in a real browser (Debian's chromium under Playwright), as two people.

A few long scenarios rather than many short ones: each browser start and sign-up costs
seconds on a loaded 2-core machine. Every wait is a condition (Playwright's ``expect``
retries until it holds or times out); screenshots of the key screens go to reports/web/.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from pedalboard.io import AudioFile
from playwright.async_api import FilePayload, Page, expect

from tests.accounts.helpers import verification_link, wait_for_email
from tests.mashups.generation_support import song
from tests.support import ServerProcess, make_user
from tests.web.conftest import Person

PASSWORD = "correct horse battery staple"
SLOW = 60_000  # uploads are analysed, blends woven and audio rendered by the server meanwhile


def timeline_seconds(timeline: dict[str, Any]) -> float:
    """Where the last clip ends, in seconds (the renderer's arithmetic, docs/audio.md)."""
    bpm = timeline["bpm"]
    ends: list[float] = []
    for clip in timeline["clips"]:
        factor = bpm / clip["source_bpm"] if clip["source_bpm"] else 1.0
        start = clip["position_beats"] * 60 / bpm
        ends.append(start + (clip["out_seconds"] - clip["in_seconds"]) / factor)
    return max(ends)


async def sign_up(person: Person, server: ServerProcess) -> dict[str, str]:
    """Register through the form; the first attempt has a weak password, shown by its field."""
    tag = uuid.uuid4().hex[:8]
    account = {
        "email": f"{person.name}-{tag}@example.com",
        "username": f"{person.name}_{tag}",
        "password": PASSWORD,
    }
    page = person.page
    await page.goto(f"{server.url}/")
    await page.fill("#register-email", account["email"])
    await page.fill("#register-username", account["username"])
    await page.fill("#register-password", "short")
    await page.click("text=Create account")
    # The problem's field error sits next to the field (no protocol words, no "see errors").
    await expect(page.locator("#register-password-error")).to_be_visible()
    await expect(page.locator("#register-password")).to_have_attribute("aria-invalid", "true")
    await page.fill("#register-password", account["password"])
    await page.click("text=Create account")
    await expect(page.locator("#check-heading")).to_have_text("Check your email")
    await expect(page.locator("#check-address")).to_have_text(account["email"])
    await expect(page.locator("#unverified")).to_be_visible()
    return account


async def import_taste(page: Page, lines: list[str]) -> None:
    await page.goto(page.url.split("#")[0] + "#/")
    await page.fill("#connect-user", "me")
    await page.fill("#connect-token", "access-token")
    await page.click("#connect-form button[type=submit]")
    await expect(page.locator("#connections li")).to_have_count(1)
    await page.fill("#import-tracks", "\n".join(lines))
    await page.click("#import-form button[type=submit]")
    await expect(page.locator("#connections li")).to_contain_text("imported")


async def playlist_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator("#playlist li").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    return ids


async def drag_by(page: Page, selector: str, dx: float, *, at: str = "middle") -> None:
    """Press on a clip (its middle, or 3 px inside an edge), move by dx pixels, release."""
    target = page.locator(selector)
    await target.scroll_into_view_if_needed()
    box = await target.bounding_box()
    assert box is not None
    x = {"middle": box["x"] + box["width"] / 2, "start": box["x"] + 3}.get(
        at, box["x"] + box["width"] - 3
    )
    y = box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + dx / 2, y, steps=3)
    await page.mouse.move(x + dx, y, steps=3)
    await page.mouse.up()


async def test_two_friends_blend_and_mash_up_together(
    server: ServerProcess, people: Any, db: asyncpg.Connection
) -> None:
    alice: Person = await people("alice")
    bob: Person = await people("bob")
    a, b = alice.page, bob.page

    # ---- sign up, verify by the emailed link (read from the outbox, as without SMTP)
    alice_account = await sign_up(alice, server)
    bob_account = await sign_up(bob, server)
    await alice.screenshot("check-email")
    link = verification_link((await wait_for_email(db, alice_account["email"], "Confirm"))["body"])
    assert link.startswith(f"{server.url}/verify?token=")
    await a.goto(link)
    await expect(a.locator("#verify-heading")).to_have_text("You're verified")
    await alice.screenshot("verified")
    assert "token" not in a.url  # the single-use token leaves the address bar
    await a.click("#verify-continue")
    await expect(a.locator("#blends-heading")).to_be_visible()
    await expect(a.locator("#unverified")).to_be_hidden()
    await expect(b.locator("#unverified")).to_be_visible()

    # ---- taste, a blend, the share code, the friend joins
    shared = [f"Shared Artist — Shared Song {i}" for i in range(3)]
    await import_taste(a, shared + [f"Alice Artist — Alice Song {i}" for i in range(8)])
    await import_taste(b, [f"Bob Artist — Bob Song {i}" for i in range(8)] + shared)
    await a.fill("#blend-name", "Friday mix")
    await a.click("text=Create blend")
    await expect(a.locator("#blend-title")).to_have_text("Friday mix")
    code = (await a.locator("#blend-share .code").inner_text()).strip()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code), code
    await expect(a.locator("#blend-share")).to_contain_text(re.compile("expires in [67] days"))
    await b.fill("#blend-code", code.lower().replace("-", " "))  # forgiving input
    await b.click("text=Join blend")
    await expect(b.locator("#blend-title")).to_have_text("Friday mix")
    for page, other in ((a, bob_account), (b, alice_account)):
        await expect(page.locator("#blend-present")).to_contain_text(other["username"])
    # Woven from both tastes, with the shared song first; both see the same playlist.
    await expect(a.locator("#playlist li")).to_have_count(19, timeout=SLOW)
    await expect(b.locator("#playlist li")).to_have_count(19, timeout=SLOW)
    await expect(a.locator("#blend-match")).to_contain_text("Taste match")
    before = await playlist_ids(a)
    assert await playlist_ids(b) == before

    # ---- both edit and see each other live: a keyboard move, a reaction, a drag
    await a.locator("#playlist li").nth(2).focus()
    await a.keyboard.press("Alt+ArrowUp")
    moved = [before[0], before[2], before[1], *before[3:]]
    await expect(b.locator("#playlist li").nth(1)).to_have_attribute("data-id", before[2])
    await expect(a.locator("#playlist li").nth(1)).to_be_focused()  # focus follows the track
    first = b.locator("#playlist li").first
    await first.locator("select").select_option("🔥")
    await expect(a.locator("#playlist li").first.locator(".reactions")).to_have_text("🔥")
    await b.locator("#playlist li").nth(4).drag_to(b.locator("#playlist li").nth(0))
    moved = [moved[4], *moved[:4], *moved[5:]]
    await expect(a.locator("#playlist li").first).to_have_attribute("data-id", moved[0])
    assert await playlist_ids(a) == moved
    await expect(b.locator("#connection")).to_have_text("")  # live and nothing waiting
    await alice.screenshot("blend-room")

    # ---- the blend's history: Alice restores the playlist as her move left it, then undoes
    panel = a.locator("#blend-history")
    await panel.locator("summary").click()
    await expect(panel.locator(".changes li").first).to_contain_text(
        f"{bob_account['username']} moved item {moved[0]}"
    )
    mine = panel.locator(".changes li", has_text=f"{alice_account['username']} moved item")
    await mine.get_by_role("button", name="Restore").click()
    after_mine = [before[0], before[2], before[1], *before[3:]]
    await expect(b.locator("#playlist li").first).to_have_attribute("data-id", after_mine[0])
    assert await playlist_ids(b) == after_mine
    reacted = b.locator(f"#playlist li[data-id='{before[0]}'] .reactions")
    await expect(reacted).to_have_text("")  # (Bob reacted after that change)
    await a.click("[data-view=blend] [data-history=undo]")
    await expect(b.locator("#playlist li").first).to_have_attribute("data-id", moved[0])
    await expect(reacted).to_have_text("🔥")
    await panel.locator("summary").click()  # closed again

    # ---- uploads: two songs made with numpy, by the picker, with live status until ready
    # (Songs with sections, so the upload analysis finds what the generator needs.)
    songs = {
        "drums.wav": song(120.0, root_hz=220.0, key="A minor")[0],
        "tone.wav": song(120.0, root_hz=329.63, key="E minor")[0],
    }
    await a.goto(f"{server.url}/#/library")
    await a.set_input_files(
        "#upload-files",
        [FilePayload(name=name, mimeType="audio/wav", buffer=data) for name, data in songs.items()],
    )
    await expect(a.locator("#uploads tr")).to_have_count(2, timeout=SLOW)
    await expect(a.locator("#uploads td.ok")).to_have_count(2, timeout=SLOW)
    await expect(a.locator("#uploads")).to_contain_text("BPM")
    await alice.screenshot("library")

    # ---- a mashup together: sources, clips, moves and trims, cursors
    await a.goto(f"{server.url}/#/mashups")
    await a.fill("#mashup-name", "Night drive")
    await a.fill("#mashup-duration", "16")
    await a.click("text=Create mashup")
    await expect(a.locator("#mashup-title")).to_have_text("Night drive")
    for name in ("drums.wav", "tone.wav"):
        await a.select_option("#input-upload", label=name)
        await a.click("text=Add source")
        await expect(a.locator("#inputs")).to_contain_text(name)
    code = (await a.locator("#mashup-share .code").inner_text()).strip()
    await b.goto(f"{server.url}/#/mashups")
    await b.fill("#mashup-code", code)
    await b.click("text=Join mashup")
    await expect(b.locator("#mashup-title")).to_have_text("Night drive")
    await expect(b.locator("#inputs li")).to_have_count(2)

    await a.click("[aria-label='Add a clip of drums.wav']")
    await expect(b.locator(".clip")).to_have_count(1)
    await b.click("[aria-label='Add a clip of tone.wav']")
    await expect(a.locator(".clip")).to_have_count(2)
    drums = ".lane:nth-child(1) .clip"
    tone = ".lane:nth-child(2) .clip"
    # Waveforms drawn from the server's peaks, for the uploader and for the friend alike.
    for page in (a, b):
        await expect(page.locator(".clip[data-waveform=peaks]")).to_have_count(2)
    inked = await b.locator(f"{tone} canvas").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
        ".filter((v, i) => i % 4 === 3 && v > 0).length"
    )
    assert inked > 100, inked
    await expect(a.locator(drums)).to_have_attribute("data-beats", "0")
    await expect(a.locator(tone)).to_have_attribute("data-beats", "16")  # the next bar

    await drag_by(a, drums, 4 * 16)  # four beats at the default zoom (16 px a beat)
    await expect(b.locator(drums)).to_have_attribute("data-beats", "4")
    await drag_by(b, tone, -2 * 16, at="end")  # trim two beats (1 s at 120 BPM) off the end
    await expect(a.locator(tone)).to_have_attribute("data-out", "7")
    await drag_by(b, tone, 2 * 16, at="start")  # and two beats off the start: audio stays put
    await expect(a.locator(tone)).to_have_attribute("data-in", "1")
    await expect(a.locator(tone)).to_have_attribute("data-beats", "18")

    # Each sees the other's pointer (named) and selection (ringed in their colour).
    lanes = await a.locator("#lanes").bounding_box()
    assert lanes is not None
    await a.mouse.move(lanes["x"] + 20 * 16, lanes["y"] + 10)
    await expect(b.locator(".cursor")).to_contain_text(alice_account["username"])
    await b.locator(tone).hover()
    await expect(a.locator(".cursor")).to_contain_text(bob_account["username"])
    await expect(a.locator(f"{tone}.watched")).to_be_visible()  # bob selected it by trimming
    await expect(b.locator(f"{drums}.watched")).to_be_visible()

    # The clip inspector: gain and an effect, seen by the other.
    await a.locator(drums).click()
    await a.fill("#clip-gain", "-3")
    await a.select_option("#clip-effect", "reverb")
    await a.click("#clip-add-effect")
    await expect(a.locator("#clip-effects")).to_contain_text("Reverb")
    await a.click("text=Apply to clip")
    await b.locator(drums).click()
    await expect(b.locator("#clip-effects")).to_contain_text("Reverb")
    await expect(b.locator("#clip-gain")).to_have_value("-3")
    await b.select_option("#master-effect", "limiter")
    await b.click("#master-add-effect")
    await expect(a.locator("#master-effects")).to_contain_text("Limiter")
    await alice.screenshot("mashup-room")

    # ---- a preview of a window: the <audio> source decodes to the requested length
    await a.fill("#preview-start", "1")
    await a.fill("#preview-duration", "4")
    await a.click("text=Render preview")
    await expect(a.locator("#player")).to_have_attribute(
        "src", re.compile("/previews/"), timeout=SLOW
    )
    seconds = await a.evaluate(
        """async () => {
            const response = await fetch(document.querySelector("#player").src);
            const audio = await new OfflineAudioContext(1, 1, 44100)
                .decodeAudioData(await response.arrayBuffer());
            return audio.duration;
        }"""
    )
    assert abs(seconds - 4.0) < 0.06, seconds

    # ---- export and download: the file is the whole timeline
    await a.click("#export")
    await expect(a.locator("#download")).to_be_visible(timeout=SLOW)
    await expect(b.locator("#download")).to_be_visible()
    async with a.expect_download() as waiting:
        await a.click("#download")
    download = await waiting.value
    exported = decode_seconds((await download.path()).read_bytes())
    cookies = {c["name"]: c["value"] for c in await alice.context.cookies()}
    async with httpx.AsyncClient(base_url=server.url, cookies=cookies) as http:
        mashups = (await http.get("/mashups")).json()
        detail = (await http.get(f"/mashups/{mashups[0]['id']}")).json()
    assert abs(exported - timeline_seconds(detail["timeline"])) < 0.05, exported

    # ---- roles: Alice makes Bob a listener, and an editor again; his controls follow live
    role = f"[aria-label='Role of {bob_account['username']}']"
    await a.select_option(role, "viewer")
    await expect(b.locator("[aria-label='Add a clip of drums.wav']")).to_be_disabled()
    await expect(b.locator("#generate")).to_be_disabled()
    await a.select_option(role, "editor")
    await expect(b.locator("#generate")).to_be_enabled()

    # ---- a generated draft replaces the timeline, with progress, for everyone
    b.once("dialog", lambda dialog: dialog.accept())  # "replace the timeline?"
    await b.click("#generate")
    await expect(a.locator("#generate-status")).to_have_text(
        re.compile("Draft ready"), timeout=SLOW
    )
    await expect(b.locator("#generate-status")).to_have_text(re.compile("Draft ready"))
    generated = b.locator(".clip[data-id^='gen-']")
    await expect(generated.first).to_be_visible()
    assert await b.locator(".clip").count() == await generated.count()
    await expect(a.locator(".clip")).to_have_count(await generated.count())
    await expect(b.locator("#generate")).to_have_text("Generate another draft")
    await expect(b.locator("#generate")).to_be_enabled()
    await alice.screenshot("generated")

    # ---- deleting an upload takes it (and its clip) out of the mashup, for everyone
    await a.goto(f"{server.url}/#/library")
    a.once("dialog", lambda dialog: dialog.accept())
    await a.click("[aria-label='Delete tone.wav']")
    await expect(a.locator("#uploads tr")).to_have_count(1)
    await expect(b.locator("#inputs li")).to_have_count(1)
    drums_only = b.locator(".clip", has_text="drums.wav")
    await expect(b.locator(".clip")).to_have_count(await drums_only.count())

    # ---- the same client at phone width: nothing wider than the screen
    await b.set_viewport_size({"width": 390, "height": 844})
    await bob.screenshot("mashup-phone")
    assert await b.evaluate("document.documentElement.scrollWidth") <= 390
    await b.goto(f"{server.url}/#/")
    await expect(b.locator("#blends li")).to_have_count(1)
    assert await b.evaluate("document.documentElement.scrollWidth") <= 390
    await bob.screenshot("blends-phone")

    # ---- Bob leaves the blend; Alice deletes the mashup
    await b.click("#blends a.button")
    b.once("dialog", lambda dialog: dialog.accept())
    await b.click("#blend-leave")
    await expect(b.locator("#no-blends")).to_be_visible()
    await a.goto(f"{server.url}/#/mashup/{mashups[0]['id']}")
    await expect(a.locator("#mashup-leave")).to_have_text("Delete this mashup")
    a.once("dialog", lambda dialog: dialog.accept())
    await a.click("#mashup-leave")
    await expect(a.locator("#no-mashups")).to_be_visible()


async def test_a_server_restart_loses_nothing_and_history_restores(
    start_server: Any, people: Any, backends: Any
) -> None:
    """Both browsers reconnect without a reload, and an edit made while the server was down
    reaches everyone once it is back. Then the history: undo and redo, and the history panel
    (name a version, see each other's changes, restore the version and a change, undo a
    restore)."""
    server: ServerProcess = await start_server()
    conn = await asyncpg.connect(backends.database_url)
    try:
        owner, friend = await make_user(conn), await make_user(conn)
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        created = await http.post(
            "/mashups",
            json={"name": "Restart", "target_duration_seconds": 60},
            headers=owner.headers,
        )
        mashup = created.json()
        joined = await http.post(
            "/mashups/join", json={"code": mashup["share_code"]["code"]}, headers=friend.headers
        )
        assert joined.status_code == 200, joined.text
    pages: list[Page] = []
    persons: list[Person] = []
    for user in (owner, friend):
        person: Person = await people(user.username)
        persons.append(person)
        await person.context.add_cookies(
            [{"name": "bt_session", "value": user.token, "url": server.url}]
        )
        await person.page.goto(f"{server.url}/#/mashup/{mashup['id']}")
        await expect(person.page.locator("#mashup-title")).to_have_text("Restart")
        await person.page.evaluate("window.sameDocument = true")  # gone if the page reloads
        pages.append(person.page)
    a, b = pages

    async def set_tempo(page: Page, bpm: str) -> None:
        await page.fill("#project-bpm", bpm)
        await page.click("#project-form button[type=submit]")

    await set_tempo(a, "100")
    await expect(b.locator("#project-bpm")).to_have_value("100")

    server.terminate()  # a graceful stop: members are told to reconnect (1012)
    for page in pages:
        await expect(page.locator("#connection")).to_have_text("Reconnecting…")
    await set_tempo(b, "110")  # kept pending while the server is away
    await expect(b.locator("#project-bpm")).to_have_value("110")
    server.start()
    await server.wait_ready()
    for page in pages:  # live again, with nothing left waiting for the server
        await expect(page.locator("#connection")).to_have_text("", timeout=SLOW)
    for page in pages:
        await expect(page.locator("#project-bpm")).to_have_value("110")
        assert await page.evaluate("window.sameDocument") is True
    await set_tempo(a, "120")
    await expect(b.locator("#project-bpm")).to_have_value("120")
    # Undo is per person: Alice's undo takes back her 120, not Bob's 110; redo brings it back.
    await a.click("[data-view=mashup] [data-history=undo]")
    await expect(b.locator("#project-bpm")).to_have_value("110")
    await a.locator("#lanes").click()  # keyboard shortcuts work outside text fields
    await a.keyboard.press("Control+Shift+Z")
    await expect(b.locator("#project-bpm")).to_have_value("120")
    await expect(a.locator("#project-bpm")).to_have_value("120")
    async with httpx.AsyncClient(base_url=server.url) as http:
        detail = (await http.get(f"/mashups/{mashup['id']}", headers=owner.headers)).json()
    assert detail["timeline"]["bpm"] == 120

    # The history panel: the changes, newest first, who made them and what they did.
    panel_a, panel_b = (page.locator("#mashup-history") for page in pages)
    await panel_a.locator("summary").click()
    newest = panel_a.locator(".changes li").first
    await expect(newest).to_contain_text(f"{owner.username} redid #")
    await expect(newest).to_contain_text("(now)")
    # Alice names the state; Bob, whose panel is open, sees it with her name and its seq.
    await panel_b.locator("summary").click()
    await a.fill("#mashup-version-label", "At 120")
    await panel_a.get_by_role("button", name="Save version").click()
    version_b = panel_b.locator(".versions li")
    await expect(version_b).to_contain_text(re.compile(rf"At 120 by {owner.username} · #\d+"))
    # Bob's later change shows in Alice's open panel as it happens.
    await set_tempo(b, "130")
    await expect(newest).to_contain_text(f"{friend.username} set the tempo to 130 BPM")
    await persons[0].screenshot("history-panel")
    # Alice restores the version: a new change of hers, seen by Bob; her undo takes it back.
    await panel_a.get_by_role("button", name="Restore version “At 120”").click()
    await expect(b.locator("#project-bpm")).to_have_value("120")
    await expect(newest).to_contain_text(f"{owner.username} restored a named version")
    await a.click("[data-view=mashup] [data-history=undo]")
    await expect(b.locator("#project-bpm")).to_have_value("130")
    # Bob restores the room as it was after a change (Bob's own 110, made while away).
    change = panel_b.locator(".changes li", has_text="set the tempo to 110 BPM")
    await change.get_by_role("button", name="Restore").click()
    await expect(a.locator("#project-bpm")).to_have_value("110")
    await expect(panel_a.locator(".changes li").first).to_contain_text(
        f"{friend.username} restored #"
    )


async def test_a_forgotten_password(
    server: ServerProcess, people: Any, db: asyncpg.Connection
) -> None:
    """Ask for a link on the sign-in page, choose a new password on the link's page (a weak
    one first), then sign in with it."""
    user = await make_user(db, password_hash=PasswordHasher().hash("the old password!"))
    person: Person = await people("forgetful")
    page = person.page
    await page.goto(f"{server.url}/")
    await page.click("text=Forgot your password?")
    await page.fill("#forgot-email", user.email)
    await page.click("text=Send me a reset link")
    await expect(page.locator("#forgot-sent")).to_be_visible()
    body = (await wait_for_email(db, user.email, "Reset"))["body"]
    link = re.search(r"http://\S+/reset-password\?token=\S+", body)
    assert link, body
    await page.goto(link.group(0))
    await expect(page.locator("#reset-heading")).to_be_visible()
    await expect(page).not_to_have_url(re.compile("token"))  # the token leaves the address bar
    await page.fill("#reset-password", "password123")
    await page.click("text=Change my password")
    await expect(page.locator("#reset-password-error")).to_be_visible()  # too common
    await page.fill("#reset-password", "a much better passphrase")
    await page.click("text=Change my password")
    await expect(page.locator("#reset-done")).to_be_visible()
    await page.click("#reset-done a")
    await page.fill("#login-email", user.email)
    await page.fill("#login-password", "a much better passphrase")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#blends-heading")).to_be_visible()


async def test_schema_works_offline(server: ServerProcess, people: Any) -> None:
    """/schema renders Swagger UI from this server alone: every request stays on its origin."""
    person: Person = await people("reader")
    requested: list[str] = []
    person.page.on("request", lambda request: requested.append(request.url))
    await person.page.goto(f"{server.url}/schema")
    await expect(person.page.locator(".swagger-ui .info .title")).to_contain_text("Blendtune")
    await expect(person.page.locator(".opblock-tag-section").first).to_be_visible()
    assert requested and all(url.startswith(server.url) for url in requested), requested
    await person.screenshot("schema")


@pytest.mark.parametrize("path", ["/", "/verify"])
async def test_pages_load_under_their_csp(server: ServerProcess, people: Any, path: str) -> None:
    # No session: the page starts (its scripts ran under the CSP) and shows sign-in, or says
    # that a link without a token is not valid.
    person: Person = await people("visitor")
    await person.page.goto(server.url + path)
    if path == "/":
        await expect(person.page.locator("#login-heading")).to_be_visible()
        await person.screenshot("sign-in")
    else:
        await expect(person.page.locator("#verify-heading")).to_have_text("This link did not work")


def decode_seconds(data: bytes) -> float:
    with AudioFile(io.BytesIO(data)) as f:
        return float(f.frames / f.samplerate)
