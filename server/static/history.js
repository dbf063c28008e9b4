// The history panel of both rooms: the named versions and the changes (who, when, what), a
// form to name the current state, and Restore on any version or change still in the kept
// history. Restores are requests to the room (RoomClient.restore): the server makes them a new
// batch of ours, so Undo takes them back. The lists are read over REST (docs/protocol.md,
// "History over REST") when the panel opens, and again while it is open whenever the room
// changes or someone names a version.

import { SERVER_ACTOR } from "./app.js";
import { $, api, el, relativeTime, toast } from "./dom.js";

const PAGE = 50; // changes per page ("Show older" reads the next)
const REFRESH_MS = 300; // batches arriving together refresh the lists once

let session = null;
let shown = { roomId: null, seq: 0, oldest: 0, entries: [], versions: [], more: false };
let refreshTimer = null;
let loading = null;

export function setupHistory(context) {
  session = context;
  for (const panel of document.querySelectorAll("[data-history-panel]")) build(panel);
}

// A new room on screen: nothing of the last one is shown, and the panel starts closed.
export function resetHistory() {
  clearTimeout(refreshTimer);
  shown = { roomId: session.room?.id ?? null, seq: 0, oldest: 0, entries: [], versions: [], more: false };
  for (const panel of document.querySelectorAll("[data-history-panel]")) {
    panel.open = false;
    render(panel);
  }
}

// The room changed (a batch) or a version was named: read the lists again if they are shown.
export function historyChanged() {
  if (!openPanel()) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => load().catch(report), REFRESH_MS);
}

function openPanel() {
  const kind = session.room?.kind;
  const panel = kind ? $(`[data-view="${kind}"] [data-history-panel]`) : null;
  return panel?.open ? panel : null;
}

function build(panel) {
  const kind = panel.closest("[data-view]").dataset.view;
  const labelId = `${kind}-version-label`;
  const form = el(
    "form",
    { class: "version-form", novalidate: "" },
    el("label", { for: labelId }, "Name this version"),
    el("input", { id: labelId, name: "label", maxlength: "100", required: "", autocomplete: "off", placeholder: "Before the drop" }),
    el("button", { type: "submit" }, "Save version"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = form.elements.label;
    const label = input.value.trim();
    if (!label || !session.canEdit()) return;
    session.room.client.nameVersion(label);
    input.value = "";
  });
  const older = el("button", { type: "button", class: "small older" }, "Show older changes");
  older.addEventListener("click", () => load({ older: true }).catch(report));
  panel.replaceChildren(
    el("summary", {}, "History and versions"),
    form,
    el("h3", {}, "Versions"),
    el("ul", { class: "versions", "aria-label": "Named versions" }),
    el("p", { class: "empty versions-empty" }, "No named versions yet."),
    el("h3", {}, "Changes"),
    el("ol", { class: "changes", "aria-label": "Changes, newest first" }),
    older,
  );
  panel.addEventListener("toggle", () => {
    if (panel.open) load().catch(report);
  });
  panel.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-restore]");
    if (!button || !session.canEdit()) return;
    const { version, seq } = button.dataset;
    session.room.client.restore(version ? { version } : { seq: Number(seq) });
  });
}

// The newest page of changes (as many as are shown, so "Show older" pages stay), or the next
// older page; the versions with it.
async function load({ older = false } = {}) {
  const room = session.room;
  if (!room) return;
  if (loading) await loading.catch(() => {});
  const base = `/${room.kind}s/${room.id}`;
  const before = older ? shown.entries.at(-1)?.seq : undefined;
  const limit = older ? PAGE : Math.min(200, Math.max(PAGE, shown.entries.length));
  const query = before === undefined ? `?limit=${limit}` : `?before=${before}&limit=${PAGE}`;
  loading = Promise.all([api("GET", `${base}/history${query}`), older ? null : api("GET", `${base}/versions`)]);
  const [page, versions] = await loading.finally(() => {
    loading = null;
  });
  if (session.room !== room) return; // left meanwhile
  const entries = older ? [...shown.entries, ...page.entries] : page.entries;
  shown = {
    roomId: room.id,
    seq: page.seq,
    oldest: page.oldest,
    entries,
    versions: versions ? versions.versions : shown.versions,
    more: page.entries.length === (older ? PAGE : limit) && entries.at(-1)?.seq > page.oldest + 1,
  };
  const panel = openPanel();
  if (panel) render(panel);
}

function who(userId, name) {
  if (userId === SERVER_ACTOR) return "Blendtune";
  return session.nameOf(userId) === "someone" && name ? name : session.nameOf(userId);
}

function when(iso) {
  return el("time", { datetime: iso, title: new Date(iso).toLocaleString() }, relativeTime(iso));
}

function restoreButton(target, label, enabled) {
  const dataset = { restore: "", ...target };
  const button = el("button", { type: "button", class: "small", dataset, "aria-label": label }, "Restore");
  button.disabled = !enabled;
  return button;
}

function render(panel) {
  const editable = Boolean(session.room) && session.canEdit();
  const versions = shown.versions.map((v) =>
    el(
      "li",
      { dataset: { version: v.id } },
      el("strong", { class: "label" }, v.label),
      el("span", { class: "hint" }, ` by ${who(v.author, v.author_name)} · #${v.seq} · `, when(v.created_at)),
      restoreButton({ version: v.id }, `Restore version “${v.label}”`, editable),
    ),
  );
  $(".versions", panel).replaceChildren(...versions);
  $(".versions-empty", panel).hidden = versions.length > 0 || shown.roomId === null;
  const changes = shown.entries.map((e) => {
    const current = e.seq === shown.seq;
    return el(
      "li",
      { dataset: { seq: String(e.seq) }, class: current ? "current" : "" },
      el("span", { class: "who" }, who(e.author, e.author_name)),
      " ",
      el("span", { class: "summary" }, e.summary),
      el("span", { class: "hint" }, ` · #${e.seq} · `, when(e.at)),
      current
        ? el("span", { class: "hint now" }, " (now)")
        : restoreButton({ seq: String(e.seq) }, `Restore the room as it was after change #${e.seq}`, editable && e.seq >= shown.oldest),
    );
  });
  $(".changes", panel).replaceChildren(...changes);
  $(".older", panel).hidden = !shown.more;
  $(".version-form button", panel).disabled = !editable;
}

function report(error) {
  toast(`The history could not be read: ${error.message ?? error}`, "error");
}
