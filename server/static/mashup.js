// The mashup room's view: sources, a timeline editor on a beat grid (drag to move, edge handles
// to trim, keyboard too), the clip inspector (gain, fades, pitch, mute, effects), project tempo
// and key, everyone's pointer and selection, previews with a playhead, and the export
// (docs/mashups.md, "The mashup room"; the clip fields are dsp.Clip, docs/audio.md).

import { keyBetween } from "./app.js";
import { $, action, api, avatar, clock, colourOf, el, keyed, syncChildren, toast } from "./dom.js";
import { uploadState } from "./library.js";

const NOTES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
const KEYS = NOTES.flatMap((n) => [`${n} major`, `${n} minor`]);
const MAX_PREVIEW_SECONDS = 30;

// The effect whitelist with its defaults (dsp/effects.py): an effect is sent whole, so every
// member's state holds exactly what the server's does.
export const EFFECTS = {
  gain: { label: "Gain", gain_db: 0.0 },
  highpass: { label: "High-pass", cutoff_hz: 80.0 },
  lowpass: { label: "Low-pass", cutoff_hz: 8000.0 },
  low_shelf: { label: "Low shelf", cutoff_hz: 200.0, gain_db: 0.0, q: 0.7071 },
  high_shelf: { label: "High shelf", cutoff_hz: 6000.0, gain_db: 0.0, q: 0.7071 },
  peak: { label: "Peak EQ", cutoff_hz: 1000.0, gain_db: 0.0, q: 0.7071 },
  compressor: { label: "Compressor", threshold_db: -18.0, ratio: 4.0, attack_ms: 5.0, release_ms: 100.0 },
  limiter: { label: "Limiter", threshold_db: -3.0, release_ms: 100.0 },
  noise_gate: { label: "Noise gate", threshold_db: -60.0, ratio: 10.0, attack_ms: 1.0, release_ms: 100.0 },
  distortion: { label: "Distortion", drive_db: 20.0 },
  clipping: { label: "Clipping", threshold_db: -6.0 },
  bitcrush: { label: "Bitcrush", bit_depth: 8.0 },
  chorus: { label: "Chorus", rate_hz: 1.0, depth: 0.25, centre_delay_ms: 7.0, feedback: 0.0, mix: 0.5 },
  phaser: { label: "Phaser", rate_hz: 1.0, depth: 0.5, centre_frequency_hz: 1300.0, feedback: 0.0, mix: 0.5 },
  delay: { label: "Delay", delay_seconds: 0.25, feedback: 0.3, mix: 0.3 },
  reverb: { label: "Reverb", room_size: 0.5, damping: 0.5, wet_level: 0.33, dry_level: 0.4, width: 1.0 },
};

export function effectOf(type) {
  const { label, ...parameters } = EFFECTS[type];
  return { type, ...parameters };
}

let session = null;
let selected = null; // the selected clip's id
let pxPerBeat = 16;
let drag = null; // {clip, mode: "move"|"start"|"end", x0, beats, inDelta, outDelta}
let myPreview = null; // the id of the preview this page asked for
const readyPreviews = new Map(); // preview id -> preview, announced in this session
let playing = null; // the preview the player holds: {start_seconds, ...}
let lastExportStatus = null;

// ---- timeline arithmetic (the renderer's: docs/audio.md)

function factor(clip, timeline) {
  return clip.source_bpm ? timeline.bpm / clip.source_bpm : 1;
}
function clipBeats(clip, timeline) {
  return ((clip.out_seconds - clip.in_seconds) / factor(clip, timeline)) * (timeline.bpm / 60);
}
function beatsToSeconds(beats, timeline) {
  return (beats * 60) / timeline.bpm;
}
function round3(x) {
  return Math.round(x * 1000) / 1000;
}

function room() {
  return session.room;
}
function state() {
  return session.view();
}
function clipById(id) {
  return state()?.timeline.clips.find((c) => c.id === id);
}
function inputOf(trackId) {
  return (state()?.inputs || []).find((t) => t.track_id === trackId);
}

// ---- setup

export function setupMashup(context) {
  session = context;
  $("#project-key").replaceChildren(el("option", { value: "" }, "No key"), ...KEYS.map((k) => el("option", { value: k }, k)));
  for (const select of [$("#clip-effect"), $("#master-effect")]) {
    select.replaceChildren(...Object.entries(EFFECTS).map(([type, e]) => el("option", { value: type }, e.label)));
  }
  $("#master-add-effect").addEventListener("click", () => {
    const master = [...state().timeline.master, effectOf($("#master-effect").value)];
    session.edit([{ op: "set_master", effects: master }]);
  });
  $("#zoom").addEventListener("input", (event) => {
    pxPerBeat = Number(event.target.value);
    session.scheduleRender();
  });
  for (const form of [$("#project-form"), $("#clip-form")]) {
    form.addEventListener("input", (event) => {
      if (event.target.name) event.target.dataset.dirty = "1";
    });
  }
  $("#project-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    settle(form);
    const timeline = state().timeline;
    const ops = [];
    const bpm = Number(form.elements.bpm.value);
    if (bpm && bpm !== timeline.bpm) ops.push({ op: "set_tempo", bpm });
    const key = form.elements.key.value || null;
    if (key !== timeline.key) ops.push({ op: "set_key", key });
    if (ops.length) session.edit(ops);
  });
  $("#add-input").addEventListener(
    "submit",
    action(async (event) => {
      event.preventDefault();
      const id = event.target.elements.upload.value;
      if (!id) return;
      await api("POST", `/mashups/${room().id}/inputs`, { uploaded_track_id: id });
      toast("Source added.");
    }),
  );
  $("#clip-form").addEventListener("submit", (event) => {
    event.preventDefault();
    applyInspector();
    settle(event.target);
  });
  $("#clip-add-effect").addEventListener("click", () => {
    const clip = clipById(selected);
    if (!clip) return;
    const effects = [...clip.effects, effectOf($("#clip-effect").value)];
    session.edit([{ op: "set_clip_effects", clip: clip.id, effects }]);
  });
  $("#clip-remove").addEventListener("click", () => {
    if (selected) session.edit([{ op: "remove_clip", clip: selected }]);
    select(null);
  });
  $("#preview-form").addEventListener(
    "submit",
    action(async (event) => {
      event.preventDefault();
      const form = event.target;
      await requestPreview(Number(form.elements.start.value), Number(form.elements.duration.value));
    }),
  );
  $("#preview-visible").addEventListener(
    "click",
    action(async () => {
      // The part of the timeline scrolled into view, up to the longest preview allowed.
      const box = $("#timeline");
      const timeline = state().timeline;
      const start = beatsToSeconds(box.scrollLeft / pxPerBeat, timeline);
      const length = Math.min(MAX_PREVIEW_SECONDS, beatsToSeconds(box.clientWidth / pxPerBeat, timeline));
      await requestPreview(round3(start), round3(length));
    }),
  );
  $("#preview-selection").addEventListener(
    "click",
    action(async () => {
      const clip = clipById(selected);
      if (!clip) {
        toast("Select a clip first.");
        return;
      }
      const timeline = state().timeline;
      const start = beatsToSeconds(clip.position_beats, timeline);
      const length = Math.min(MAX_PREVIEW_SECONDS, beatsToSeconds(clipBeats(clip, timeline), timeline));
      await requestPreview(round3(start), round3(length));
    }),
  );
  $("#generate").addEventListener(
    "click",
    action(async () => {
      const clips = state().timeline.clips.length;
      if (clips && !confirm("Replace the timeline with a generated draft? You can generate another one after.")) return;
      await api("POST", `/mashups/${room().id}/generate`, {});
    }),
  );
  $("#export").addEventListener(
    "click",
    action(async () => {
      await api("POST", `/mashups/${room().id}/export`);
    }),
  );
  const player = $("#player");
  player.addEventListener("play", tickPlayhead);
  player.addEventListener("seeked", drawPlayhead);

  const lanes = $("#lanes");
  lanes.addEventListener("pointerdown", startDrag);
  window.addEventListener("pointermove", (event) => {
    if (drag) moveDrag(event);
    const box = lanes.getBoundingClientRect();
    if (room()?.kind === "mashup" && event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom) {
      session.presence({ cursor: round3((event.clientX - box.left + lanes.scrollLeft) / pxPerBeat) });
    }
  });
  window.addEventListener("pointerup", endDrag);
  lanes.addEventListener("keydown", clipKeys);
  lanes.addEventListener("focusin", (event) => {
    const node = event.target.closest(".clip");
    if (node && node.dataset.id !== selected) select(node.dataset.id);
  });
}

export function leaveMashup() {
  selected = null;
  drag = null;
  myPreview = null;
  laneCache.clear();
  cursorCache.clear();
  memberCache.clear();
  readyPreviews.clear();
  playing = null;
  lastExportStatus = null;
  const player = $("#player");
  player.pause();
  player.removeAttribute("src");
  $("#playhead").hidden = true;
  $("#download").hidden = true;
  $("#export-progress").hidden = true;
  $("#export-status").textContent = "";
  $("#preview-status").textContent = "";
}

// A field the person has typed into keeps their value over live updates until they apply it
// (or pick another clip); every other field shows the room's state.
function show(field, value) {
  if (field.dataset.dirty) return;
  if (field.type === "checkbox") field.checked = value;
  else field.value = value;
}

function settle(form) {
  for (const field of form.elements) delete field.dataset.dirty;
}

function select(id) {
  if (id !== selected) settle($("#clip-form"));
  selected = id;
  session.presence({ selection: id ? [id] : [] });
  session.scheduleRender();
}

// ---- editing

function addClip(input) {
  const timeline = state().timeline;
  const end = Math.max(0, ...timeline.clips.map((c) => c.position_beats + clipBeats(c, timeline)));
  const position = Math.ceil(end / 4) * 4; // the next bar
  const out = round3(Math.min(input.duration_seconds - 0.1, 8));
  if (out <= 0.1) {
    toast("That source is too short to cut a clip from.", "error");
    return;
  }
  const orders = Object.values(state().order).sort();
  const id = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
  // A whole dsp.Clip, defaults included: every member applies exactly what the server stores.
  const clip = {
    id,
    track_id: input.track_id,
    in_seconds: 0,
    out_seconds: out,
    position_beats: position,
    gain_db: 0,
    fade_in_seconds: 0,
    fade_out_seconds: 0,
    pitch_shift_semitones: 0,
    source_bpm: null,
    source_key: null,
    effects: [],
    muted: false,
    stem: "full",
  };
  session.edit([{ op: "add_clip", clip, index: keyBetween(orders.length ? orders[orders.length - 1] : null, null) }]);
  selected = id;
}

function applyInspector() {
  const clip = clipById(selected);
  if (!clip) return;
  const form = $("#clip-form");
  const number = (name) => Number(form.elements[name].value);
  const op = {
    op: "set_clip",
    clip: clip.id,
    gain_db: number("gain_db"),
    fade_in_seconds: number("fade_in_seconds"),
    fade_out_seconds: number("fade_out_seconds"),
    pitch_shift_semitones: number("pitch_shift_semitones"),
    muted: form.elements.muted.checked,
    stem: form.elements.stem.value,
  };
  const input = inputOf(clip.track_id);
  const lock = form.elements.lock.checked && input;
  op.source_bpm = lock ? (input.bpm ?? null) : null;
  op.source_key = lock ? (input.key_signature ?? null) : null;
  session.edit([op]);
}

// Keyboard editing of the focused clip.
function clipKeys(event) {
  const node = event.target.closest(".clip");
  if (!node) return;
  const clip = clipById(node.dataset.id);
  if (!clip || !session.canEdit()) return;
  const timeline = state().timeline;
  if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    session.edit([{ op: "remove_clip", clip: clip.id }]);
    select(null);
    return;
  }
  if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
  event.preventDefault();
  const step = event.key === "ArrowLeft" ? -1 : 1;
  if (event.shiftKey) {
    const seconds = beatsToSeconds(step, timeline) * factor(clip, timeline);
    const out = round3(clip.out_seconds + seconds);
    if (out > clip.in_seconds + 0.05) session.edit([{ op: "trim_clip", clip: clip.id, in_seconds: clip.in_seconds, out_seconds: out }]);
  } else {
    session.edit([{ op: "move_clip", clip: clip.id, position_beats: Math.max(0, clip.position_beats + step) }]);
  }
}

// Drag: the body moves the clip, the edges trim it; everything snaps to whole beats.
function startDrag(event) {
  const node = event.target.closest(".clip");
  if (!node || event.button !== 0) return;
  const clip = clipById(node.dataset.id);
  if (!clip) return;
  select(clip.id);
  node.focus();
  if (!session.canEdit()) return;
  const mode = event.target.classList.contains("handle-start") ? "start" : event.target.classList.contains("handle-end") ? "end" : "move";
  drag = { clip, node, mode, x0: event.clientX, beats: 0 };
  event.preventDefault();
}

function moveDrag(event) {
  const beats = Math.round((event.clientX - drag.x0) / pxPerBeat);
  if (beats === drag.beats) return;
  drag.beats = beats;
  const preview = draggedClip();
  if (preview) placeClip(drag.node, preview, state().timeline);
}

// The clip as the drag would leave it (null when the drag would make it invalid).
function draggedClip() {
  const { clip, mode, beats } = drag;
  const timeline = state().timeline;
  const seconds = beatsToSeconds(beats, timeline) * factor(clip, timeline);
  const duration = inputOf(clip.track_id)?.duration_seconds ?? Infinity;
  if (mode === "move") return { ...clip, position_beats: Math.max(0, clip.position_beats + beats) };
  if (mode === "end") {
    const out = round3(Math.min(clip.out_seconds + seconds, duration));
    return out > clip.in_seconds + 0.05 ? { ...clip, out_seconds: out } : null;
  }
  // The start edge: the audio under the rest of the clip stays where it was.
  const start = round3(clip.in_seconds + seconds);
  const position = clip.position_beats + beats;
  if (start < 0 || start >= clip.out_seconds - 0.05 || position < 0) return null;
  return { ...clip, in_seconds: start, position_beats: position };
}

function endDrag() {
  if (!drag) return;
  const moved = drag.beats !== 0 ? draggedClip() : null;
  const { clip } = drag;
  drag = null;
  if (!moved) {
    session.scheduleRender();
    return;
  }
  const ops = [];
  if (moved.in_seconds !== clip.in_seconds || moved.out_seconds !== clip.out_seconds) {
    ops.push({ op: "trim_clip", clip: clip.id, in_seconds: moved.in_seconds, out_seconds: moved.out_seconds });
  }
  if (moved.position_beats !== clip.position_beats) {
    ops.push({ op: "move_clip", clip: clip.id, position_beats: moved.position_beats });
  }
  session.edit(ops);
}

// ---- previews and export

async function requestPreview(start, duration) {
  $("#preview-status").textContent = "Rendering…";
  const accepted = await api("POST", `/mashups/${room().id}/previews`, { start_seconds: start, duration_seconds: duration });
  myPreview = accepted.id;
  // The announcement may have beaten the 202 here.
  if (readyPreviews.has(accepted.id)) play(readyPreviews.get(accepted.id), true);
}

function play(preview, start) {
  const audio = $("#player");
  playing = preview;
  if (audio.getAttribute("src") !== preview.url) audio.src = preview.url; // with the session cookie
  audio.dataset.previewId = preview.id;
  audio.dataset.seconds = String(preview.duration_seconds);
  $("#preview-status").textContent = `Ready: ${clock(preview.start_seconds)} to ${clock(preview.start_seconds + preview.duration_seconds)}`;
  if (start) audio.play().catch(() => {}); // autoplay may be refused; the controls remain
}

// Announcements from the room (server batches).
export function mashupBatch(ops) {
  for (const op of ops) {
    if (op.op === "preview_ready") {
      readyPreviews.set(op.preview.id, op.preview);
      if (op.preview.id === myPreview) play(op.preview, true);
    } else if (op.op === "preview_failed" && op.id === myPreview) {
      $("#preview-status").textContent = op.code === "superseded" ? "Replaced by a newer preview." : `The preview failed: ${op.detail}`;
    } else if (op.op === "generated") {
      toast(`${session.nameOf(op.requested_by)} generated a new draft of the timeline.`);
    } else if (op.op === "export") {
      const status = op.export.status;
      if (status !== lastExportStatus && status === "completed") toast("The export is ready to download.");
      if (status !== lastExportStatus && status === "failed") toast(`The export failed: ${op.export.detail}`, "error");
      lastExportStatus = status;
    }
  }
}

function tickPlayhead() {
  drawPlayhead();
  if (!$("#player").paused) requestAnimationFrame(tickPlayhead);
}

function drawPlayhead() {
  const head = $("#playhead");
  if (!playing || !state()) {
    head.hidden = true;
    return;
  }
  const seconds = playing.start_seconds + $("#player").currentTime;
  head.hidden = false;
  head.style.setProperty("--x", `${(seconds * state().timeline.bpm * pxPerBeat) / 60}px`);
}

// ---- rendering

const peaks = new Map(); // track id -> peaks document, or null when the server has none

function waveform(clip, width, height) {
  const canvas = el("canvas", { class: "wave", width: String(Math.max(1, Math.round(width))), height: String(height), "aria-hidden": "true" });
  const doc = peaks.get(clip.track_id);
  if (doc === undefined) {
    peaks.set(clip.track_id, null);
    api("GET", `/uploads/${clip.track_id}/peaks`)
      .then((found) => {
        peaks.set(clip.track_id, found);
        session.scheduleRender();
      })
      .catch(() => {}); // no peaks (not computed, or not ours): a plain bar
    return canvas;
  }
  if (!doc || !doc.levels?.length) return canvas;
  const seconds = clip.out_seconds - clip.in_seconds;
  // The coarsest level with at least one peak per pixel.
  const perPixel = seconds / Math.max(1, width);
  const level = [...doc.levels].sort((a, b) => b.seconds_per_peak - a.seconds_per_peak).find((l) => l.seconds_per_peak <= perPixel) ?? doc.levels[0];
  const context = canvas.getContext("2d");
  context.fillStyle = "rgba(255,255,255,0.85)";
  const mid = height / 2;
  // Scaled to the track's own loudest peak, so a quiet track still shows its shape.
  let loudest = 1;
  for (let i = 0; i < level.max.length; i += 1) loudest = Math.max(loudest, level.max[i], -level.min[i]);
  for (let x = 0; x < width; x += 1) {
    const from = Math.floor((clip.in_seconds + x * perPixel) / level.seconds_per_peak);
    const to = Math.max(from + 1, Math.floor((clip.in_seconds + (x + 1) * perPixel) / level.seconds_per_peak));
    let low = 0;
    let high = 0;
    for (let i = from; i < to && i < level.max.length; i += 1) {
      low = Math.min(low, level.min[i]);
      high = Math.max(high, level.max[i]);
    }
    context.fillRect(x, mid - (high / loudest) * mid, 1, Math.max(1, ((high - low) / loudest) * mid));
  }
  return canvas;
}

function placeClip(node, clip, timeline) {
  node.style.setProperty("--x", `${clip.position_beats * pxPerBeat}px`);
  node.style.setProperty("--w", `${Math.max(8, clipBeats(clip, timeline) * pxPerBeat)}px`);
  node.querySelector(".times").textContent = `${clock(clip.in_seconds)}–${clock(clip.out_seconds)}`;
}

const laneCache = new Map(); // clip id -> {signature, node}
const cursorCache = new Map(); // user id -> {signature, node}
const memberCache = new Map(); // user id -> {signature, node}

function pruneCache(cache, nodes) {
  const live = new Set(nodes);
  for (const [key, entry] of cache) if (!live.has(entry.node)) cache.delete(key);
}

function buildLane(clip, input, who, editable, timeline) {
  const node = el(
    "div",
    {
      class: `clip stem-${clip.stem ?? "full"}${clip.id === selected ? " selected" : ""}${clip.muted ? " muted" : ""}${who.length ? " watched" : ""}`,
      tabindex: "0",
      role: "button",
      "aria-pressed": clip.id === selected ? "true" : "false",
      "aria-label": `${input?.name ?? "clip"}, beat ${clip.position_beats + 1}, ${clock(clip.in_seconds)} to ${clock(clip.out_seconds)} of the source`,
      dataset: {
        id: clip.id,
        beats: String(clip.position_beats),
        in: String(clip.in_seconds),
        out: String(clip.out_seconds),
        waveform: peaks.get(clip.track_id) ? "peaks" : "bar", // a plain bar until peaks arrive
      },
    },
    waveform(clip, clipBeats(clip, timeline) * pxPerBeat, 40),
    el("span", { class: "label" }, `${input?.name ?? "source removed"}${clip.stem && clip.stem !== "full" ? ` (${clip.stem})` : ""}`),
    el("span", { class: "times" }),
    editable ? el("span", { class: "handle handle-start", "aria-hidden": "true" }) : null,
    editable ? el("span", { class: "handle handle-end", "aria-hidden": "true" }) : null,
    ...who.map((u) => el("span", { class: "tag" }, avatar(u, session.nameOf(u)))),
  );
  if (who.length) node.style.setProperty("--who", colourOf(who[0]));
  return el("div", { class: "lane" }, node);
}

export function renderMashup(r) {
  const { client } = r;
  const s = session.view();
  const timeline = s.timeline;
  const editable = session.canEdit();
  const me = session.me.user_id;
  if (selected && !clipById(selected)) selected = null;

  // Sources.
  $("#inputs").replaceChildren(
    ...(s.inputs || []).map((input) =>
      el(
        "li",
        {},
        el("span", { class: "title" }, input.name),
        el(
          "span",
          { class: "hint" },
          ` ${clock(input.duration_seconds)}${input.bpm ? ` · ${Math.round(input.bpm)} BPM` : ""}${input.key_signature ? ` · ${input.key_signature}` : ""} · from ${session.nameOf(input.owner_id)}`,
        ),
        el("button", { type: "button", class: "small", disabled: !editable, "aria-label": `Add a clip of ${input.name}`, onclick: () => addClip(input) }, "Add clip"),
        input.owner_id === me || r.detail.owner_id === me
          ? el(
              "button",
              {
                type: "button",
                class: "small",
                "aria-label": `Remove the source ${input.name}`,
                onclick: action(() => api("DELETE", `/mashups/${r.id}/inputs/${input.track_id}`)),
              },
              "Remove",
            )
          : null,
      ),
    ),
  );
  $("#add-input").hidden = !editable;

  // People and their roles; the owner changes roles and removes people.
  const owner = r.detail.owner_id === me;
  const people = (s.members || []).map((member) =>
    keyed(memberCache, member.user_id, JSON.stringify([member, owner]), () =>
      el(
        "li",
        {},
        avatar(member.user_id, member.display_name || member.username),
        el("span", {}, ` ${member.display_name || member.username} `),
        owner && member.role !== "owner"
          ? [
              el(
                "select",
                {
                  "aria-label": `Role of ${member.username}`,
                  onchange: action(async (event) => {
                    await api("PUT", `/mashups/${r.id}/members/${member.user_id}`, { role: event.target.value });
                  }),
                },
                el("option", { value: "editor", selected: member.role === "editor" }, "can edit"),
                el("option", { value: "viewer", selected: member.role === "viewer" }, "can listen"),
              ),
              el(
                "button",
                {
                  type: "button",
                  class: "small",
                  "aria-label": `Remove ${member.username} from the mashup`,
                  onclick: action(async () => {
                    if (!confirm(`Remove ${member.display_name || member.username} from this mashup?`)) return;
                    await api("DELETE", `/mashups/${r.id}/members/${member.user_id}`);
                  }),
                },
                "Remove",
              ),
            ]
          : el("span", { class: "hint" }, { owner: "owner", editor: "can edit", viewer: "can listen" }[member.role] ?? member.role),
      ),
    ),
  );
  syncChildren($("#mashup-members"), people, memberCache);

  // Project.
  const form = $("#project-form");
  show(form.elements.bpm, timeline.bpm);
  show(form.elements.key, timeline.key ?? "");
  for (const field of form.elements) if (field.id !== "zoom") field.disabled = !editable;

  // Who points where and who has selected what.
  const others = [...client.members.values()].filter((m) => m.user_id !== me && m.state);
  const selectedBy = {};
  for (const m of others) for (const id of m.state.selection ?? []) (selectedBy[id] ||= []).push(m.user_id);

  const end = Math.max(32, ...timeline.clips.map((c) => c.position_beats + clipBeats(c, timeline))) + 16;
  const width = end * pxPerBeat;
  const lanes = $("#lanes");
  const timelineNode = $("#timeline");
  timelineNode.style.setProperty("--beat", `${pxPerBeat}px`);
  timelineNode.style.setProperty("--width", `${width}px`);
  $("#ruler").replaceChildren(
    ...Array.from({ length: Math.ceil(end / 4) }, (_, bar) => {
      const mark = el("span", { class: "bar" }, String(bar + 1));
      mark.style.setProperty("--x", `${bar * 4 * pxPerBeat}px`);
      return mark;
    }),
  );
  const laneNodes = timeline.clips.map((clip) => {
    const input = inputOf(clip.track_id);
    const who = selectedBy[clip.id] ?? [];
    const signature = JSON.stringify([clip, input?.name, clip.id === selected, who, editable, pxPerBeat, timeline.bpm, Boolean(peaks.get(clip.track_id))]);
    const lane = keyed(laneCache, clip.id, signature, () => buildLane(clip, input, who, editable, timeline));
    const node = lane.firstElementChild;
    const dragging = drag && drag.clip.id === clip.id;
    placeClip(node, dragging ? (draggedClip() ?? clip) : clip, timeline);
    if (dragging) drag.node = node;
    return lane;
  });
  const cursors = others
    .filter((m) => typeof m.state.cursor === "number")
    .map((m) =>
      keyed(cursorCache, m.user_id, JSON.stringify([m.state.cursor, pxPerBeat, session.nameOf(m.user_id)]), () => {
        const line = el("div", { class: "cursor", dataset: { user: m.user_id } }, el("span", {}, session.nameOf(m.user_id)));
        line.style.setProperty("--x", `${m.state.cursor * pxPerBeat}px`);
        line.style.setProperty("--who", colourOf(m.user_id));
        return line;
      }),
    );
  syncChildren(lanes, [...laneNodes, ...cursors]);
  pruneCache(laneCache, laneNodes);
  pruneCache(cursorCache, cursors);
  $("#clips-empty").hidden = timeline.clips.length > 0;
  drawPlayhead();

  // The master chain (after every clip).
  $("#master-effects").replaceChildren(
    ...(timeline.master.length ? [] : [el("span", { class: "hint" }, "none")]),
    ...timeline.master.map((effect, n) =>
      el(
        "span",
        { class: "chip" },
        EFFECTS[effect.type]?.label ?? effect.type,
        el(
          "button",
          {
            type: "button",
            class: "small",
            disabled: !editable,
            "aria-label": `Remove the master effect ${EFFECTS[effect.type]?.label ?? effect.type}`,
            onclick: () => session.edit([{ op: "set_master", effects: timeline.master.filter((_, i) => i !== n) }]),
          },
          "×",
        ),
      ),
    ),
  );
  $("#master-effect").disabled = !editable;
  $("#master-add-effect").disabled = !editable;

  // The inspector.
  const clip = clipById(selected);
  const inspector = $("#clip-form");
  inspector.hidden = !clip;
  if (clip) {
    const input = inputOf(clip.track_id);
    $("#clip-heading").textContent = `Clip of ${input?.name ?? "a removed source"}`;
    const fields = inspector.elements;
    show(fields.gain_db, clip.gain_db);
    show(fields.fade_in_seconds, clip.fade_in_seconds);
    show(fields.fade_out_seconds, clip.fade_out_seconds);
    show(fields.pitch_shift_semitones, clip.pitch_shift_semitones);
    show(fields.muted, clip.muted);
    show(fields.stem, clip.stem ?? "full");
    show(fields.lock, clip.source_bpm !== null || clip.source_key !== null);
    for (const field of inspector.elements) field.disabled = !editable;
    $("#clip-effects").replaceChildren(
      ...clip.effects.map((effect, n) =>
        el(
          "span",
          { class: "chip" },
          EFFECTS[effect.type]?.label ?? effect.type,
          el(
            "button",
            {
              type: "button",
              class: "small",
              disabled: !editable,
              "aria-label": `Remove the effect ${EFFECTS[effect.type]?.label ?? effect.type}`,
              onclick: () => session.edit([{ op: "set_clip_effects", clip: clip.id, effects: clip.effects.filter((_, i) => i !== n) }]),
            },
            "×",
          ),
        ),
      ),
    );
  }

  // Generation: the latest draft's stage and progress, for everyone in the room.
  const generation = s.generation;
  const running = generation?.status === "pending" || generation?.status === "generating";
  $("#generate").disabled = !editable || running || (s.inputs || []).length === 0;
  $("#generate").textContent = generation?.status === "completed" ? "Generate another draft" : "Generate a draft";
  const bar = $("#generate-progress");
  bar.hidden = !running;
  if (running) bar.value = generation.progress;
  $("#generate-status").textContent = generation
    ? {
        pending: "Waiting to start…",
        generating: `${{ loading: "Reading the sources", arranging: "Arranging", rendering: "Rendering" }[generation.stage] ?? "Working"}…`,
        completed: `Draft ready (${generation.target_seconds} s).`,
        failed: `Could not generate: ${generation.detail}`,
      }[generation.status] ?? ""
    : "";

  // Export.
  const exported = s.export;
  const generating = exported?.status === "generating";
  $("#export").disabled = !editable || generating || timeline.clips.length === 0;
  $("#export-progress").hidden = !generating;
  $("#export-status").textContent = exported
    ? { generating: "Exporting…", completed: `Exported, ${clock(exported.duration_seconds)} long.`, failed: `The export failed: ${exported.detail}` }[exported.status] ?? ""
    : "";
  const download = $("#download");
  download.hidden = exported?.status !== "completed";
  if (exported?.status === "completed") {
    download.href = exported.url;
    download.setAttribute("download", `${s.name}.flac`);
  }
}

// The list of my uploads that can become sources (ready, not already a source).
export async function loadSourcesPicker() {
  const page = await api("GET", "/uploads?limit=100");
  const inputs = new Set((state()?.inputs || []).map((t) => t.track_id));
  const ready = page.items.filter((u) => uploadState(u).ready && !inputs.has(u.id));
  $("#input-upload").replaceChildren(
    ...(ready.length ? ready.map((u) => el("option", { value: u.id }, u.original_filename)) : [el("option", { value: "" }, "No ready uploads")]),
  );
}

