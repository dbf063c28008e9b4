// The blend room's view: the woven playlist with attribution, reactions, reordering by drag and
// by keyboard, songs added from your taste, the taste match (docs/blends.md, "The blend room").

import { EMOJI, keyForMove, keyBetween } from "./app.js";
import { $, avatar, el, keyed, syncChildren } from "./dom.js";

let session = null;
let dragged = null;
const rows = new Map(); // item id -> {signature, node}

export function setupBlend(context) {
  session = context;
  const list = $("#playlist");
  list.addEventListener("focusin", (event) => {
    const row = event.target.closest("li[data-id]");
    if (row) session.room?.client.setPresence({ selection: [row.dataset.id] });
  });
  // Keyboard: ↑/↓ walk the list, Alt+↑/↓ move the focused track.
  list.addEventListener("keydown", (event) => {
    const row = event.target.closest("li[data-id]");
    if (!row || !["ArrowUp", "ArrowDown"].includes(event.key)) return;
    const rows = [...list.children];
    const n = rows.indexOf(row);
    const to = event.key === "ArrowUp" ? n - 1 : n + 1;
    event.preventDefault();
    if (event.altKey) {
      pendingFocus = row.dataset.id;
      move(n, to);
    } else {
      rows[to]?.focus();
    }
  });
}

let pendingFocus = null;

function items() {
  return session.view().items;
}

function move(from, to) {
  const list = items();
  if (to < 0 || to >= list.length || to === from) return;
  const index = keyForMove(
    list.map((item) => item.index),
    from,
    to,
  );
  session.edit([{ op: "reorder", item: list[from].id, index }]);
}

function percent(score) {
  return `${Math.round(score * 100)}%`;
}

let shownRoom = null;

export function renderBlend(room) {
  const { client } = room;
  if (shownRoom !== room) rows.clear(); // item ids repeat across blends (g<generation>.<n>)
  shownRoom = room;
  const state = session.view();
  const editable = session.canEdit();
  const mine = session.me.user_id;
  // Keep keyboard focus where it was across the re-render: on the same track's row or control.
  const active = document.activeElement;
  const focusedRow = active?.closest?.("#playlist li[data-id]");
  const focused = focusedRow?.dataset.id ?? pendingFocus;
  const focusedControl = focusedRow && active !== focusedRow ? active.getAttribute("aria-label") : null;
  // Who is looking at which track (presence), as coloured rings.
  const lookers = {};
  for (const member of client.members.values()) {
    if (member.user_id === mine) continue;
    for (const id of member.state?.selection ?? []) (lookers[id] ||= []).push(member.user_id);
  }
  const match = state.taste_match;
  // The group's taste match, each pair's, and the song that brings everyone together.
  const pairs = (match?.pairs ?? []).map(
    (pair) => `${pair.members.map((u) => (u === mine ? "you" : session.nameOf(u))).join(" & ")} ${percent(pair.score)}`,
  );
  $("#blend-match").textContent =
    match?.group != null
      ? `Taste match ${percent(match.group)}` +
        (pairs.length > 1 ? ` (${pairs.join(", ")})` : "") +
        (match.unifying_track ? ` · brought together by “${match.unifying_track.name}” (${match.unifying_track.artist})` : "")
      : "";
  const last = state.items.length - 1;
  const nodes = state.items.map((item, n) => {
    const signature = JSON.stringify([item, n, n === last, editable, lookers[item.id], state.members]);
    return keyed(rows, item.id, signature, () => {
      const counts = {};
      for (const emoji of Object.values(item.reactions || {})) counts[emoji] = (counts[emoji] || 0) + 1;
      const row = el(
        "li",
        {
          tabindex: "0",
          draggable: editable ? "true" : null,
          dataset: { id: item.id },
          "aria-label": `${n + 1}. ${item.song.name} by ${item.song.artist}`,
          ondragstart: (event) => {
            dragged = n;
            event.dataTransfer.setData("text/plain", item.id); // Firefox starts no drag without it
          },
          ondragover: (event) => event.preventDefault(),
          ondrop: (event) => {
            event.preventDefault();
            if (dragged !== null) move(dragged, n);
            dragged = null;
          },
        },
        el(
          "span",
          { class: "contributors" },
          ...item.contributors.slice(0, 3).map((u) => avatar(u, session.nameOf(u))),
        ),
        el(
          "span",
          { class: "song" },
          el("span", { class: "title" }, item.song.name),
          el(
            "span",
            { class: "hint" },
            `${item.song.artist} · from ${session.nameOf(item.contributed_by)}` +
              (item.added_by ? `, added by ${session.nameOf(item.added_by)}` : ""),
          ),
        ),
        el("span", { class: "lookers" }, ...(lookers[item.id] || []).map((u) => avatar(u, `${session.nameOf(u)} is here`))),
        el(
          "span",
          { class: "reactions", "aria-label": "Reactions" },
          Object.entries(counts)
            .map(([emoji, count]) => `${emoji}${count > 1 ? count : ""}`)
            .join(" "),
        ),
        el(
          "span",
          { class: "controls" },
          el(
            "select",
            {
              "aria-label": `React to ${item.song.name}`,
              disabled: !editable,
              onchange: (event) => session.edit([{ op: "react", item: item.id, emoji: event.target.value || null }]),
            },
            el("option", { value: "" }, "React…"),
            ...EMOJI.map((e) => el("option", { value: e, selected: item.reactions?.[mine] === e }, e)),
          ),
          el("button", { type: "button", class: "small", disabled: !editable || n === 0, "aria-label": `Move ${item.song.name} up`, onclick: () => move(n, n - 1) }, "↑"),
          el(
            "button",
            { type: "button", class: "small", disabled: !editable || n === last, "aria-label": `Move ${item.song.name} down`, onclick: () => move(n, n + 1) },
            "↓",
          ),
          el("button", { type: "button", class: "small", disabled: !editable, "aria-label": `Remove ${item.song.name}`, onclick: () => session.edit([{ op: "remove", item: item.id }]) }, "Remove"),
        ),
      );
      return row;
    });
  });
  syncChildren($("#playlist"), nodes, rows);
  $("#playlist-empty").hidden = state.items.length > 0;
  if (focused) {
    const row = $(`#playlist li[data-id="${CSS.escape(focused)}"]`);
    if (row && pendingFocus === focused) pendingFocus = null;
    const control = focusedControl && row?.querySelector(`[aria-label="${CSS.escape(focusedControl)}"]`);
    const target = control || row;
    if (target && document.activeElement !== target) target.focus();
  }
  // Songs from your own taste that the playlist does not have yet.
  const inPlaylist = new Set(state.items.map((item) => item.song.key));
  const mineToAdd = (state.library?.[mine] || []).filter((entry) => !inPlaylist.has(entry.song.key));
  $("#library-songs").replaceChildren(
    ...mineToAdd.map((entry) =>
      el(
        "li",
        {},
        `${entry.song.name} — ${entry.song.artist} `,
        el(
          "button",
          {
            type: "button",
            class: "small",
            disabled: !editable,
            "aria-label": `Add ${entry.song.name}`,
            onclick: () => {
              const last = state.items.length ? state.items[state.items.length - 1].index : null;
              const id = `h${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
              session.edit([{ op: "add", item: id, song: entry.song.key, index: keyBetween(last, null) }]);
            },
          },
          "Add",
        ),
      ),
    ),
  );
  $("#blend-add").hidden = mineToAdd.length === 0;
}
