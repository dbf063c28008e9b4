// The page: accounts, navigation, lists, and the room connection shared by both room views.
// The room logic itself (RoomClient, reducers, fractional keys) is app.js; the views of each
// room kind are blend.js and mashup.js; uploads are library.js. See docs/web-client.md.

import { RoomClient, SERVER_ACTOR, applyBlendOp, applyMashupOp } from "./app.js";
import { setupBlend, renderBlend } from "./blend.js";
import {
  $,
  ApiError,
  TOKEN_KEY,
  action,
  api,
  avatar,
  colourOf,
  copyText,
  describe,
  el,
  onSubmit,
  relativeTime,
  toast,
  whenSignedOut,
} from "./dom.js";
import { historyChanged, resetHistory, setupHistory } from "./history.js";
import { loadLibrary, setupLibrary, stopLibrary } from "./library.js";
import { leaveMashup, loadSourcesPicker, mashupBatch, renderMashup, setupMashup } from "./mashup.js";

let me = null; // whoami
let profile = null; // GET /me
let room = null; // {client, kind, id, detail}

export const session = {
  get me() {
    return me;
  },
  get room() {
    return room;
  },
  nameOf,
  edit: (ops) => room?.client.edit(ops),
  canEdit,
  view,
  scheduleRender,
  refreshDetail,
  presence,
};

// ------------------------------------------------------------------ views and routes

function showView(name) {
  for (const view of document.querySelectorAll("[data-view]")) {
    view.hidden = view.dataset.view !== name;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === (location.hash || "#/");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// #/ blends, #/mashups, #/library, #/account, #/blend/<id>, #/mashup/<id>.
async function route() {
  if (!me) return;
  const [, page = "", id] = (location.hash || "#/").slice(1).split("/");
  if (!(page === "blend" || page === "mashup") || room?.id !== id) leaveRoom();
  if (page !== "library") stopLibrary();
  switch (page) {
    case "mashups":
      showView("mashups");
      await loadMashups();
      break;
    case "library":
      showView("library");
      await loadLibrary();
      break;
    case "account":
      showView("account");
      await loadAccount();
      break;
    case "blend":
    case "mashup":
      if (room?.id !== id) await openRoom(page, id);
      break;
    default:
      showView("blends");
      await loadBlends();
  }
}

function go(hash) {
  if (location.hash === hash) route().catch(report);
  else location.hash = hash;
}

function report(error) {
  toast(describe(error), "error");
}

// ------------------------------------------------------------------ accounts

function signedOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  profile = null;
  leaveRoom();
  stopLibrary();
  $("#whoami").replaceChildren();
  $("#nav").hidden = true;
  $("#unverified").hidden = true;
  showView("login");
}

async function signedIn() {
  me = await api("GET", "/auth/whoami");
  profile = await api("GET", "/me").catch(() => null);
  const name = profile?.profile?.display_name || profile?.username || "you";
  $("#whoami").replaceChildren(avatar(me.user_id, name), el("span", {}, name));
  $("#nav").hidden = false;
  $("#unverified").hidden = me.email_verified;
}

async function verifyFromLink() {
  showView("verify");
  const token = new URLSearchParams(location.search).get("token") ?? "";
  // The token is single use: keep it out of the history and of any later Referer.
  history.replaceState(null, "", "/verify");
  try {
    if (!token) throw new ApiError(400, { code: "invalid_token" });
    await api("POST", "/auth/verify", { token });
    $("#verify-heading").textContent = "You're verified";
    $("#verify-text").textContent = "Your email address is confirmed. Thanks!";
  } catch (error) {
    $("#verify-heading").textContent = "This link did not work";
    $("#verify-text").textContent =
      {
        token_used: "This link was already used: your address is confirmed.",
        token_expired: "This link has expired. Sign in and ask for a new one.",
        invalid_token: "This link is not valid. Copy the whole link from the email, or ask for a new one.",
      }[error.code === "invalid_request" ? "invalid_token" : error.code] ?? describe(error);
  }
  $("#verify-continue").hidden = false;
}

// The reset email's link: the token stays in this page's memory only, out of the address bar.
function resetFromLink() {
  showView("reset");
  const token = new URLSearchParams(location.search).get("token") ?? "";
  history.replaceState(null, "", "/reset-password");
  onSubmit($("#reset-form"), async ({ password }) => {
    try {
      await api("POST", "/auth/password-reset/confirm", { token, password });
    } catch (error) {
      const words = {
        token_used: "This link was already used. Ask for a new one from the sign-in page.",
        token_expired: "This link has expired (links work for one hour). Ask for a new one from the sign-in page.",
        invalid_token: "This link is not valid. Copy the whole link from the email, or ask for a new one.",
      }[error.code === "invalid_request" && !token ? "invalid_token" : error.code];
      throw words ? new ApiError(error.status, { code: "link", detail: words }) : error;
    }
    $("#reset-form").hidden = true;
    $("#reset-done").hidden = false;
  });
}

async function loadAccount() {
  const [account, sessions] = await Promise.all([api("GET", "/me"), api("GET", "/auth/sessions")]);
  profile = account;
  $("#account-email").textContent =
    `${account.email} · ${account.email_verified ? "confirmed" : "not confirmed yet"} · @${account.username}`;
  $("#profile-name").value = account.profile?.display_name ?? "";
  $("#sessions").replaceChildren(
    ...sessions.map((s) =>
      el(
        "li",
        {},
        `${browserName(s.user_agent)}, signed in ${relativeTime(s.created_at)}, last active ${relativeTime(s.last_activity)}`,
        s.current
          ? el("strong", {}, " (this browser)")
          : el(
              "button",
              {
                type: "button",
                class: "small",
                onclick: action(async () => {
                  await api("DELETE", `/auth/sessions/${s.id}`);
                  toast("Signed out there.");
                  await loadAccount();
                }),
              },
              "Sign out there",
            ),
      ),
    ),
  );
}

function browserName(agent) {
  if (!agent) return "A device";
  for (const name of ["Firefox", "Edg", "Chrome", "Safari"]) {
    if (agent.includes(name)) return name === "Edg" ? "Edge" : name;
  }
  return agent.split(/[\s/]/)[0] || "A device";
}

// ------------------------------------------------------------------ lists

function shareBox(code, onRotate, onRevoke) {
  if (!code) {
    return el(
      "div",
      { class: "share-code" },
      el("span", {}, "No share code. "),
      onRotate ? el("button", { type: "button", class: "small", onclick: action(onRotate) }, "Issue a code") : null,
    );
  }
  return el(
    "div",
    { class: "share-code" },
    el("span", {}, "Share code "),
    el("code", { class: "code" }, code.code),
    el(
      "button",
      {
        type: "button",
        class: "small",
        "aria-label": `Copy the share code ${code.code}`,
        onclick: action(async () => {
          toast((await copyText(code.code)) ? "Share code copied." : "Select the code to copy it.");
        }),
      },
      "Copy",
    ),
    el("span", { class: "hint" }, ` expires ${relativeTime(code.expires_at)} `),
    onRotate ? el("button", { type: "button", class: "small", onclick: action(onRotate) }, "New code") : null,
    onRevoke ? el("button", { type: "button", class: "small", onclick: action(onRevoke) }, "Turn off") : null,
  );
}

async function loadBlends() {
  const [blends, connections] = await Promise.all([api("GET", "/blends"), api("GET", "/taste/connections")]);
  $("#blends").replaceChildren(
    ...blends.map((b) =>
      el(
        "li",
        { class: "tile" },
        el("h2", {}, b.name),
        el(
          "p",
          { class: "hint" },
          `${b.member_count} ${b.member_count === 1 ? "member" : "members"} · ${blendStatus(b.status)}`,
        ),
        b.my_status === "accepted"
          ? el("a", { class: "button", href: `#/blend/${b.id}`, "aria-label": `Open ${b.name}` }, "Open")
          : el(
              "button",
              {
                type: "button",
                "aria-label": `Accept the invitation to ${b.name}`,
                onclick: action(async () => {
                  await api("POST", `/blends/${b.id}/accept`);
                  go(`#/blend/${b.id}`);
                }),
              },
              "Accept invitation",
            ),
      ),
    ),
  );
  $("#no-blends").hidden = blends.length > 0;
  $("#connections").replaceChildren(
    ...connections.map((c) =>
      el(
        "li",
        {},
        `${c.provider === "spotify" ? "Spotify" : "Apple Music"} connected` +
          (c.last_sync_at ? `, top tracks imported ${relativeTime(c.last_sync_at)}` : ", no top tracks yet"),
        " ",
        el(
          "button",
          {
            type: "button",
            class: "small",
            onclick: action(async () => {
              await api("DELETE", `/taste/connections/${c.provider}`);
              await loadBlends();
            }),
          },
          "Disconnect",
        ),
      ),
    ),
  );
}

function blendStatus(status) {
  return { pending: "weaving soon", processing: "weaving…", completed: "up to date" }[status] ?? status;
}

async function loadMashups() {
  const mashups = await api("GET", "/mashups");
  $("#mashups").replaceChildren(
    ...mashups.map((m) =>
      el(
        "li",
        { class: "tile" },
        el("h2", {}, m.name),
        el("p", { class: "hint" }, `${roleName(m.my_role)} · ${m.member_count} ${m.member_count === 1 ? "member" : "members"}`),
        el("a", { class: "button", href: `#/mashup/${m.id}`, "aria-label": `Open ${m.name}` }, "Open"),
      ),
    ),
  );
  $("#no-mashups").hidden = mashups.length > 0;
}

function roleName(role) {
  return { owner: "You own it", editor: "You edit", viewer: "You listen", member: "Member" }[role] ?? role;
}

// Top tracks typed as "Artist — Title" lines (a dash or a hyphen with spaces around it).
function parseTracks(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line, n) => {
      const [artist, ...title] = line.split(/\s+[—–-]\s+/);
      const name = title.length ? title.join(" - ") : artist;
      return {
        track_id: `typed-${n}-${name}`.slice(0, 255),
        name: name.slice(0, 255),
        artist: (title.length ? artist : "Unknown artist").slice(0, 255),
      };
    });
}

// ------------------------------------------------------------------ rooms

function roomUrl(kind, id) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/rooms/${kind}/${encodeURIComponent(id)}`;
}

async function refreshDetail() {
  if (!room) return;
  room.detail = await api("GET", `/${room.kind}s/${room.id}`);
  scheduleRender();
}

async function openRoom(kind, id) {
  leaveRoom();
  const detail = await api("GET", `/${kind}s/${id}`);
  const client = new RoomClient(kind, id, {
    url: roomUrl(kind, id),
    token: sessionStorage.getItem(TOKEN_KEY),
    onUpdate: scheduleRender,
    onBatch: (ops, author) => {
      if (kind === "mashup") mashupBatch(ops, author);
      historyChanged();
      // Membership changes come as a sync: the share code and roles live in the detail.
      if (ops.some((op) => op.op === "sync")) {
        refreshDetail().catch(() => {});
        if (kind === "mashup") loadSourcesPicker().catch(() => {});
      }
    },
    onError: (text) => roomError(text),
    onNotice: () => {},
    onVersion: (version) => {
      if (version.author === me.user_id) toast(`Saved version “${version.label}”.`);
      historyChanged();
    },
    onHistory: (done) => {
      const verb = { undo: "Undone", redo: "Redone", restore: "Restored" }[done.action] ?? "Done";
      toast(
        done.skipped
          ? `${verb}; ${done.skipped} ${done.skipped === 1 ? "change was" : "changes were"} left as others changed ${done.skipped === 1 ? "it" : "them"} since.`
          : `${verb}.`,
      );
    },
    onFatal: (error) => {
      toast(error.message, "error");
      if (error.code === 4401) signedOut();
      else if (error.code === 4403 || error.code === 4404) go(kind === "blend" ? "#/" : "#/mashups");
    },
  });
  room = { client, kind, id, detail };
  resetHistory();
  const owner = detail.owner_id === me.user_id;
  $(`#${kind}-leave`).textContent = owner ? `Delete this ${kind}` : `Leave this ${kind}`;
  showView(kind);
  client.start();
  if (kind === "mashup") await loadSourcesPicker();
  scheduleRender();
}

// A rejected edit, in words (the room's codes: docs/protocol.md and the kinds' pages).
const REJECTIONS = {
  not_found: "Someone else just removed that, so your change was not applied.",
  forbidden: "You can only listen in this room: your change was not applied.",
  conflict: "That clashed with someone else's change; try again.",
  duplicate: "That song is already in the playlist.",
  rate_limited: "Slow down a little: your change will be sent again in a moment.",
  nothing_to_undo: "Nothing of yours left to undo.",
  nothing_to_redo: "Nothing to redo.",
  history_unavailable: "That is older than the history this room keeps.",
  unknown_version: "That version no longer exists.",
  too_many_versions: "This room has as many named versions as it can keep (500).",
  unavailable: "The server is busy: your change will be sent again in a moment.",
};

function roomError(text) {
  const [, code = "", detail = text] = /^(\w+): (.*)$/s.exec(text) ?? [];
  const words = REJECTIONS[code] ?? `That change was not applied: ${detail.replace(/ \(will resend\)$/, "")}`;
  toast(words, code === "rate_limited" || code === "unavailable" ? "info" : "error");
}

function leaveRoom() {
  if (room) {
    room.client.stop();
    if (room.kind === "mashup") leaveMashup();
  }
  room = null;
  $("#connection").textContent = "";
  $("#connection").className = "";
}

// Edits made while reconnecting stay pending and are sent after the welcome, so the controls
// stay usable then; the role is the room's (members), else the last welcome's.
function undoRedo(action) {
  if (canEdit()) room.client[action]();
}

function canEdit() {
  const welcome = room?.client.welcome ?? room?.lastWelcome;
  if (!welcome || room.client.status.startsWith("closed")) return false;
  const mine = (room.client.state?.members || []).find((m) => m.user_id === me.user_id);
  return (mine?.role ?? welcome.role) !== "viewer";
}

function nameOf(userId) {
  if (userId === SERVER_ACTOR) return "Blendtune";
  const member = (view()?.members || room?.detail?.members || []).find((m) => m.user_id === userId);
  return member ? member.display_name || member.username : "someone";
}

// What the page shows: the confirmed state with this page's pending edits applied on a copy.
// A rejected edit leaves pending and so disappears; the confirmed state is never rolled back
// (docs/protocol.md, "What a client does": rebase pending edits over remote batches).
const APPLY = { blend: applyBlendOp, mashup: applyMashupOp };
let viewCache = { state: null, pending: null, seq: null, view: null };

function view() {
  const client = room?.client;
  if (!client?.state) return null;
  if (!client.pending.size) return client.state;
  const key = JSON.stringify([...client.pending.keys()]);
  if (viewCache.state === client.state && viewCache.pending === key && viewCache.seq === client.seq) {
    return viewCache.view;
  }
  const copy = structuredClone(client.state);
  for (const ops of client.pending.values()) {
    if (!Array.isArray(ops)) continue; // a history request: the server decides what it changes
    for (const op of ops) APPLY[room.kind](copy, op, me.user_id);
  }
  viewCache = { state: client.state, pending: key, seq: client.seq, view: copy };
  return copy;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderRoom();
  });
}

// The connection, said calmly: nothing while live, "reconnecting…" otherwise.
function connectionText(client) {
  if (client.live) return client.pending.size ? "Saving…" : "";
  if (client.status.startsWith("closed")) return "Disconnected";
  return client.welcome || client.state ? "Reconnecting…" : "Connecting…";
}

function renderRoom() {
  if (!room) return;
  const { client, kind } = room;
  if (client.welcome) room.lastWelcome = client.welcome;
  const status = $("#connection");
  status.textContent = connectionText(client);
  status.className = client.live ? "live" : "away";
  status.dataset.state = client.live ? (client.pending.size ? "saving" : "live") : "reconnecting";
  renderPresent(client, $(`#${kind}-present`));
  for (const button of document.querySelectorAll(`[data-view="${kind}"] [data-history]`)) {
    button.disabled = !canEdit();
  }
  const detail = room.detail;
  const owner = detail.owner_id === me.user_id;
  const base = `/${kind}s/${room.id}/share-code`;
  $(`#${kind}-share`).replaceChildren(
    shareBox(
      detail.share_code,
      owner
        ? async () => {
            await api("POST", base, {});
            await refreshDetail();
            toast("A new share code is ready; the old one no longer works.");
          }
        : null,
      owner && detail.share_code
        ? async () => {
            await api("DELETE", base);
            await refreshDetail();
            toast("Nobody can join with a code now.");
          }
        : null,
    ),
  );
  const shown = view();
  if (!shown) return;
  $(`#${kind}-title`).textContent = shown.name;
  if (kind === "blend") renderBlend(room);
  else renderMashup(room);
}

function renderPresent(client, list) {
  const seen = new Set();
  const people = [];
  for (const member of client.members.values()) {
    if (seen.has(member.user_id)) continue; // two tabs of one person: one face
    seen.add(member.user_id);
    people.push(member);
  }
  list.replaceChildren(
    ...people.map((m) => {
      const you = m.user_id === me.user_id;
      const name = `${nameOf(m.user_id)}${you ? " (you)" : ""}`;
      const item = el("li", { class: "person", dataset: { user: m.user_id } }, avatar(m.user_id, nameOf(m.user_id)), el("span", {}, name));
      item.style.setProperty("--who", colourOf(m.user_id));
      return item;
    }),
  );
}

// Presence: what this member is looking at and where their pointer is, at most a few updates a
// second (newest wins).
let presenceTimer = null;
let presenceNext = null;
function presence(state) {
  presenceNext = { ...(presenceNext || {}), ...state };
  if (presenceTimer) return;
  presenceTimer = setTimeout(() => {
    presenceTimer = null;
    room?.client.setPresence(presenceNext);
  }, 150);
}

// ------------------------------------------------------------------ wiring

function main() {
  whenSignedOut(signedOut);
  onSubmit($("#login-form"), async ({ email, password }, form) => {
    const login = await api("POST", "/auth/login", { email, password });
    sessionStorage.setItem(TOKEN_KEY, login.token);
    form.reset();
    await signedIn();
    await route();
  });
  onSubmit($("#register-form"), async ({ email, password, username }, form) => {
    await api("POST", "/auth/register", { email, password, username });
    const login = await api("POST", "/auth/login", { email, password });
    sessionStorage.setItem(TOKEN_KEY, login.token);
    form.reset();
    await signedIn();
    $("#check-address").textContent = email;
    showView("check-email");
  });
  onSubmit($("#forgot-form"), async ({ email }, form) => {
    await api("POST", "/auth/password-reset", { email });
    form.hidden = true;
    $("#forgot-sent").hidden = false;
  });
  $("#resend-verification").addEventListener(
    "click",
    action(async () => {
      await api("POST", "/auth/verify/resend");
      toast("We sent you a new link.");
    }),
  );
  $("#logout").addEventListener(
    "click",
    action(async () => {
      await api("POST", "/auth/logout").catch(() => {});
      signedOut();
    }),
  );
  $("#logout-others").addEventListener(
    "click",
    action(async () => {
      await api("DELETE", "/auth/sessions");
      toast("Signed out everywhere else.");
      await loadAccount();
    }),
  );
  onSubmit($("#profile-form"), async ({ display_name }) => {
    await api("PATCH", "/me", { display_name: display_name.trim() || null });
    await signedIn();
    toast("Saved.");
  });
  onSubmit($("#delete-account"), async ({ password }) => {
    await api("DELETE", "/me", { password });
    signedOut();
    toast("Your account is deleted.");
  });
  onSubmit($("#create-blend"), async ({ name }, form) => {
    const detail = await api("POST", "/blends", { name });
    form.reset();
    go(`#/blend/${detail.id}`);
  });
  onSubmit($("#join-blend"), async ({ code }, form) => {
    const detail = await api("POST", "/blends/join", { code });
    form.reset();
    go(`#/blend/${detail.id}`);
  });
  onSubmit($("#connect-form"), async ({ provider, provider_user_id, access_token }, form) => {
    await api("PUT", `/taste/connections/${provider}`, { provider_user_id, access_token });
    form.reset();
    toast("Connected. Now import your top tracks.");
    await loadBlends();
  });
  onSubmit($("#import-form"), async ({ provider, range, tracks }, form) => {
    const list = parseTracks(tracks);
    await api("PUT", `/taste/connections/${provider}/top-tracks/${range}`, { tracks: list });
    form.reset();
    toast(`Imported ${list.length} top ${list.length === 1 ? "track" : "tracks"}; your blends are being rewoven.`);
    await loadBlends();
  });
  onSubmit($("#create-mashup"), async ({ name, duration }, form) => {
    const detail = await api("POST", "/mashups", { name, target_duration_seconds: Number(duration) });
    form.reset();
    go(`#/mashup/${detail.id}`);
  });
  onSubmit($("#join-mashup"), async ({ code }, form) => {
    const detail = await api("POST", "/mashups/join", { code });
    form.reset();
    go(`#/mashup/${detail.id}`);
  });
  for (const kind of ["blend", "mashup"]) {
    $(`#${kind}-leave`).addEventListener(
      "click",
      action(async () => {
        if (!room) return;
        const { id, detail } = room;
        const owner = detail.owner_id === me.user_id;
        const question = owner
          ? `Delete “${view()?.name ?? detail.name}” for everyone? This cannot be undone.`
          : `Leave “${view()?.name ?? detail.name}”? You can join again with its share code.`;
        if (!confirm(question)) return;
        if (owner) await api("DELETE", `/${kind}s/${id}`);
        else if (kind === "blend") await api("POST", `/blends/${id}/leave`);
        else await api("DELETE", `/mashups/${id}/members/${me.user_id}`);
        leaveRoom();
        toast(owner ? "Deleted." : "You left.");
        go(kind === "blend" ? "#/" : "#/mashups");
      }),
    );
  }
  setupLibrary();
  setupBlend(session);
  setupMashup(session);
  setupHistory(session);
  window.addEventListener("hashchange", () => route().catch(report));
  // Undo and redo your own changes in the room (the server keeps the history).
  for (const button of document.querySelectorAll("[data-history]")) {
    button.addEventListener("click", () => undoRedo(button.dataset.history));
  }
  document.addEventListener("keydown", (event) => {
    if (!room || !(event.ctrlKey || event.metaKey) || event.altKey) return;
    if (event.target.closest?.("input, textarea, select")) return; // their own undo
    const key = event.key.toLowerCase();
    if (key === "z" || key === "y") {
      event.preventDefault();
      undoRedo(key === "y" || event.shiftKey ? "redo" : "undo");
    }
  });

  if (location.pathname === "/verify") {
    verifyFromLink();
    return;
  }
  if (location.pathname === "/reset-password") {
    resetFromLink();
    return;
  }
  // The cookie may still hold a session (a reload, a new tab): ask before showing the form.
  signedIn()
    .then(route)
    .catch((error) => {
      if (me === null) showView("login");
      else report(error);
    });
}

main();
