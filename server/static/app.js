// Blendtune web client: one ES module, no framework, no build step.
//
// Written against the project's contracts: docs/protocol.md (rooms), docs/accounts.md (sign-in),
// docs/blends.md and docs/mashups.md (REST and each room kind's state and ops). The pure parts
// (fractional keys, the two room reducers, RoomClient) touch no DOM, so they also run under Node
// (tests/web). The UI at the bottom only starts in a browser. See docs/web-client.md.

// ------------------------------------------------------------------ fractional index keys
// Base-62 digits in ASCII order, read as a fraction; a key never ends in "0" (docs/blends.md,
// rooms.fractional). The same midpoint as the server's, so keys we compute match its own.

export const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE = DIGITS.length;
const MAX_KEY_LENGTH = 128;

export function isValidKey(key) {
  return (
    typeof key === "string" &&
    key.length > 0 &&
    key.length <= MAX_KEY_LENGTH &&
    key[key.length - 1] !== "0" &&
    [...key].every((c) => DIGITS.includes(c))
  );
}

// A key strictly between `before` and `after`; null means the start / the end.
export function keyBetween(before, after) {
  for (const key of [before, after]) {
    if (key !== null && !isValidKey(key)) throw new Error(`invalid fractional key: ${key}`);
  }
  if (before !== null && after !== null && before >= after) {
    throw new Error(`keys out of order: ${before} >= ${after}`);
  }
  return midpoint(before || "", after);
}

// `count` ascending keys strictly between `before` and `after`, evenly spread.
export function keysBetween(before, after, count) {
  if (count <= 0) return [];
  if (count === 1) return [keyBetween(before, after)];
  const middle = keyBetween(before, after);
  const half = Math.floor(count / 2);
  return [
    ...keysBetween(before, middle, half),
    middle,
    ...keysBetween(middle, after, count - half - 1),
  ];
}

function midpoint(low, high) {
  if (high !== null) {
    let n = 0;
    while (n < high.length && (n < low.length ? low[n] : "0") === high[n]) n += 1;
    if (n > 0) return high.slice(0, n) + midpoint(low.slice(n), high.slice(n));
  }
  const digitLow = low ? DIGITS.indexOf(low[0]) : 0;
  const digitHigh = high !== null ? DIGITS.indexOf(high[0]) : BASE;
  if (digitHigh - digitLow > 1) return DIGITS[Math.floor((digitLow + digitHigh + 1) / 2)];
  if (high !== null && high.length > 1) return high[0];
  return DIGITS[digitLow] + midpoint(low.slice(1), null);
}

// Byte-wise (UTF-8) order is code point order; JS's `<` compares UTF-16 units instead.
export function compareStrings(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

// The key for moving `list[from]` to position `to` (list sorted, each entry with `.key`).
// Neighbours with equal keys (concurrent moves) leave no key strictly between them: then the
// item goes right after the left neighbour's run of equal keys.
export function keyForMove(keys, from, to) {
  const rest = keys.filter((_, i) => i !== from);
  let before = to > 0 ? rest[to - 1] : null;
  let after = to < rest.length ? rest[to] : null;
  if (before !== null && after !== null && compareStrings(before, after) >= 0) {
    after = rest.slice(to).find((k) => compareStrings(k, before) > 0) ?? null;
  }
  return keyBetween(before, after);
}

// ------------------------------------------------------------------ room kinds (pure reducers)
// Only confirmed batches (ack or batch, in seq order) are applied: no optimistic edits, so
// nothing ever needs rolling back (docs/protocol.md, "What a client does": "or simply wait").

export const SERVER_ACTOR = "00000000-0000-0000-0000-000000000000";
export const EMOJI = ["❤️", "🔥", "😍", "😂", "😮", "😢", "👍", "👎", "🎉", "💤"];

function sortItems(items) {
  return items.sort((a, b) => compareStrings(a.index, b.index) || compareStrings(a.id, b.id));
}

// docs/blends.md, "The blend room". `author` is the batch's author (a user id).
export function applyBlendOp(state, op, author) {
  const find = (id) => state.items.find((item) => item.id === id);
  switch (op.op) {
    // ops:blend:begin
    case "reorder": {
      const item = find(op.item);
      if (item) item.index = op.index;
      sortItems(state.items);
      break;
    }
    case "remove":
      state.items = state.items.filter((item) => item.id !== op.item);
      break;
    case "add": {
      const held = (state.library[author] || []).find((entry) => entry.song.key === op.song);
      if (!held) break;
      state.items.push({
        id: op.item,
        index: op.index,
        song: held.song,
        contributed_by: author,
        contributors: [author, ...held.contributors.filter((u) => u !== author)],
        added_by: author,
        reactions: {},
      });
      sortItems(state.items);
      break;
    }
    case "react": {
      const item = find(op.item);
      if (!item) break;
      item.reactions = { ...item.reactions };
      if (op.emoji === null) delete item.reactions[author];
      else item.reactions[author] = op.emoji;
      break;
    }
    case "rename":
      state.name = op.name.split(/\s+/).filter(Boolean).join(" ");
      break;
    case "sync":
      state.name = op.name ?? (state.name || op.default_name);
      state.owner_id = op.owner_id;
      state.settings = op.settings;
      state.members = op.members;
      break;
    case "woven": {
      // Reactions follow their song; songs added by hand stay after the woven ones.
      const reactions = {};
      for (const item of state.items) {
        if (Object.keys(item.reactions || {}).length) reactions[item.song.key] = item.reactions;
      }
      const woven = sortItems([...op.items]).map((item) => ({
        ...item,
        reactions: reactions[item.song.key] ?? item.reactions ?? {},
      }));
      const keys = new Set(woven.map((item) => item.song.key));
      const kept = state.items.filter((i) => i.added_by != null && !keys.has(i.song.key));
      const last = woven.length ? woven[woven.length - 1].index : null;
      const indices = keysBetween(last, null, kept.length);
      kept.forEach((item, n) => {
        item.index = indices[n];
      });
      state.items = sortItems([...woven, ...kept]);
      state.library = op.library;
      state.taste_match = op.taste_match;
      state.generation = op.generation;
      break;
    }
    // ops:blend:end
    default:
      break; // an op this client does not know changes nothing it shows
  }
  return state;
}

const PREVIEWS_KEPT = 5;

// docs/mashups.md, "The mashup room".
export function applyMashupOp(state, op) {
  const timeline = state.timeline;
  const clip = timeline.clips.find((c) => c.id === op.clip);
  switch (op.op) {
    // ops:mashup:begin
    case "add_clip":
      timeline.clips.push(op.clip);
      state.order[op.clip.id] = op.index;
      break;
    case "move_clip":
      if (clip) clip.position_beats = op.position_beats;
      break;
    case "trim_clip":
      if (clip) Object.assign(clip, { in_seconds: op.in_seconds, out_seconds: op.out_seconds });
      break;
    case "set_clip":
      if (clip) {
        for (const [field, value] of Object.entries(op)) {
          if (field !== "op" && field !== "clip") clip[field] = value;
        }
      }
      break;
    case "set_clip_effects":
      if (clip) clip.effects = op.effects;
      break;
    case "reorder_clip":
      if (clip) state.order[op.clip] = op.index;
      break;
    case "remove_clip":
      timeline.clips = timeline.clips.filter((c) => c.id !== op.clip);
      delete state.order[op.clip];
      break;
    case "set_tempo":
      timeline.bpm = op.bpm;
      break;
    case "set_key":
      timeline.key = op.key;
      break;
    case "set_master":
      timeline.master = op.effects;
      break;
    case "sync": {
      if (op.version < (state.sync_version ?? 0)) break; // an older picture: ignored
      const inputs = new Set(op.inputs.map((t) => t.track_id));
      timeline.clips = timeline.clips.filter((c) => inputs.has(c.track_id));
      const kept = new Set(timeline.clips.map((c) => c.id));
      state.order = Object.fromEntries(Object.entries(state.order).filter(([k]) => kept.has(k)));
      Object.assign(state, {
        name: op.name,
        owner_id: op.owner_id,
        target_duration_seconds: op.target_duration_seconds,
        members: op.members,
        inputs: op.inputs,
        sync_version: op.version,
      });
      break;
    }
    case "preview_ready":
      state.previews = [...(state.previews || []), op.preview].slice(-PREVIEWS_KEPT);
      break;
    case "export":
      state.export = op.export;
      break;
    case "preview_started":
    case "preview_failed":
      break; // announcements only
    // ops:mashup:end
    default:
      break;
  }
  timeline.clips.sort(
    (a, b) =>
      compareStrings(state.order[a.id] ?? "", state.order[b.id] ?? "") ||
      compareStrings(a.id, b.id),
  );
  return state;
}

const REDUCERS = { blend: applyBlendOp, mashup: applyMashupOp };

// ------------------------------------------------------------------ the room connection

const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const STABLE_AFTER_MS = 10_000;
const WELCOME_TIMEOUT_MS = 15_000;

// Codes after which reconnecting cannot help (docs/protocol.md, "Close codes").
export class RoomClosed extends Error {
  constructor(code, reason) {
    super(reason || `closed with ${code}`);
    this.code = code;
  }
}

// One member's connection to one room: hello/welcome, the gapless seq stream, pending batches
// resent after a reconnect, heartbeats, and reconnection as the close-code table says.
// Callbacks: onUpdate() after any change to state/members/pending/status; onBatch(ops, author,
// seq) for every applied batch; onError(message) for rejections and errors; onNotice(message);
// onFatal(RoomClosed) when the room will not be rejoined.
export class RoomClient {
  constructor(kind, roomId, options = {}) {
    this.kind = kind;
    this.roomId = roomId;
    this.url = options.url; // ws(s)://host/rooms/<kind>/<id>; never with a token in it
    this.token = options.token ?? null; // null: the bt_session cookie authenticates
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.welcomeTimeoutMs = options.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
    this.reduce = REDUCERS[kind];
    for (const name of ["onUpdate", "onBatch", "onError", "onNotice", "onFatal"]) {
      this[name] = options[name] ?? (() => {});
    }
    this.state = null;
    this.seq = null;
    this.members = new Map(); // member id -> {id, user_id, role, state}
    this.pending = new Map(); // op_id -> ops, in send order
    this.status = "connecting";
    this.welcome = null;
    this.ws = null;
    this.attempt = 0;
    this.liveSince = null;
    this.stopped = false;
    this.opCounter = 0;
    this.devicePrefix = `w${Math.random().toString(36).slice(2, 8)}`;
    this.timers = new Set();
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    clearInterval(this.heartbeatTimer);
    if (this.ws) this.detach(this.ws).close(1000, "leaving");
    this.ws = null;
    this.setStatus("closed");
  }

  get live() {
    return this.status === "live";
  }

  // Send one batch; it stays pending (and is resent with the same op_id after a reconnect)
  // until its ack, a batch of ours carrying it, or a rejection.
  edit(ops) {
    this.opCounter += 1;
    const opId = `${this.devicePrefix}-${String(this.opCounter).padStart(6, "0")}`;
    this.pending.set(opId, ops);
    if (this.live) this.send({ type: "ops", op_id: opId, ops });
    this.onUpdate();
    return opId;
  }

  setPresence(state) {
    if (this.live) this.send({ type: "presence", state });
  }

  // ---- socket plumbing

  connect() {
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    this.welcome = null;
    this.setStatus("connecting");
    ws.onopen = () => {
      const hello = { type: "hello", v: 1 };
      if (this.token) hello.token = this.token;
      if (this.state !== null) hello.last_seq = this.seq; // resume; else a fresh join
      this.send(hello);
      // The protocol sets no deadline for the welcome; a server that never sends one (stuck on
      // its database, say) is left for another try rather than waited on forever.
      this.later(this.welcomeTimeoutMs, () => {
        if (this.ws === ws && this.welcome === null) {
          this.detach(ws).close(4000, "no welcome");
          this.ws = null;
          this.reconnect(this.backoff());
        }
      });
    };
    ws.onmessage = (event) => {
      this.heardAt = Date.now();
      this.pingSentAt = null;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server sends JSON text frames only
      }
      this.handle(message);
    };
    ws.onclose = (event) => {
      this.detach(ws);
      if (this.ws === ws) this.ws = null;
      clearInterval(this.heartbeatTimer);
      this.closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    return ws;
  }

  send(message) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
  }

  setStatus(status) {
    this.status = status;
    this.onUpdate();
  }

  later(ms, fn) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  // ---- messages (docs/protocol.md)

  handle(m) {
    switch (m.type) {
      // messages:begin
      case "welcome":
        this.welcomed(m);
        break;
      case "batch":
        if (!this.inOrder(m.seq)) return;
        if (m.author === this.welcome.user_id && this.pending.has(m.op_id)) {
          this.pending.delete(m.op_id); // ours: its ack was lost to a reconnect
        }
        this.apply(m.ops, m.author, m.seq);
        break;
      case "ack": {
        const ops = this.pending.get(m.op_id);
        this.pending.delete(m.op_id);
        // A duplicate is not part of the seq stream: we have that seq or get it on resume.
        if (m.duplicate) break;
        if (ops === undefined) {
          this.resync(`ack for an unknown batch ${m.op_id}`); // a seq we cannot apply
          return;
        }
        if (!this.inOrder(m.seq)) return;
        this.apply(ops, this.welcome.user_id, m.seq);
        break;
      }
      case "error":
        this.rejected(m);
        break;
      case "presence": {
        const member = this.members.get(m.id);
        if (member) member.state = m.state;
        break;
      }
      case "joined":
        this.members.set(m.member.id, m.member);
        break;
      case "left":
        this.members.delete(m.id);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        break; // any message resets the heartbeat clock
      case "notice":
        this.onNotice(`${m.code}: ${m.detail}`);
        break;
      // messages:end
      default:
        return; // unknown types from a newer server are ignored
    }
    this.onUpdate();
  }

  welcomed(m) {
    if (m.v !== 1 || m.kind !== this.kind) {
      this.fatal(new RoomClosed(4400, `unexpected welcome (v ${m.v}, kind ${m.kind})`));
      return;
    }
    this.welcome = m;
    this.liveSince = Date.now();
    this.members = new Map(m.members.map((member) => [member.id, member]));
    if (!m.resumed) {
      // A snapshot: replace what we had. Resumed: keep our seq; the missed batches follow.
      this.state = m.state;
      this.seq = m.seq;
    }
    this.status = "live";
    this.heardAt = Date.now();
    this.pingSentAt = null;
    const every = Math.max(1, m.heartbeat_seconds) * 1000;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.heartbeat(every), Math.min(every / 4, 1000));
    for (const [opId, ops] of this.pending) this.send({ type: "ops", op_id: opId, ops });
  }

  // Every batch or (non-duplicate) ack must be exactly seq + 1; anything else is a gap.
  inOrder(seq) {
    if (this.seq !== null && seq === this.seq + 1) return true;
    this.resync(`seq ${seq} after ${this.seq}`);
    return false;
  }

  apply(ops, author, seq) {
    for (const op of ops) this.reduce(this.state, op, author);
    this.seq = seq;
    this.onBatch(ops, author, seq);
  }

  rejected(m) {
    const ops = m.op_id ? this.pending.get(m.op_id) : undefined;
    if (ops !== undefined && (m.code === "rate_limited" || m.code === "unavailable")) {
      // Dropped, not applied: resend later with the same op_id.
      this.onError(`${m.code}: ${m.detail} (will resend)`);
      this.later(1000 + Math.random() * 1000, () => {
        if (this.live && this.pending.has(m.op_id)) {
          this.send({ type: "ops", op_id: m.op_id, ops });
        }
      });
      return;
    }
    if (ops !== undefined) this.pending.delete(m.op_id); // rejected: it changed nothing
    this.onError(`${m.code}: ${m.detail}`);
  }

  heartbeat(everyMs) {
    const now = Date.now();
    if (this.pingSentAt !== null) {
      if (now - this.pingSentAt > everyMs) this.resync("no pong"); // the link is dead
      return;
    }
    if (now - this.heardAt > 2 * everyMs) {
      this.pingSentAt = now;
      this.send({ type: "ping" });
    }
  }

  // Close and rejoin at once with last_seq (a fresh join when we have no state yet).
  resync(why) {
    if (this.ws) this.detach(this.ws).close(4000, why.slice(0, 100));
    this.ws = null;
    clearInterval(this.heartbeatTimer);
    this.reconnect(0);
  }

  reconnect(delayMs) {
    if (this.stopped) return;
    this.setStatus(delayMs > 0 ? `reconnecting in ${(delayMs / 1000).toFixed(1)} s` : "connecting");
    this.later(delayMs, () => {
      if (!this.stopped) this.connect();
    });
  }

  backoff(firstMs = BACKOFF_FIRST_MS) {
    // Exponential with jitter, so a restarting server is not stampeded.
    const ceiling = Math.min(BACKOFF_MAX_MS, firstMs * 2 ** this.attempt);
    this.attempt += 1;
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  fatal(error) {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.ws) this.detach(this.ws).close(1000);
    this.ws = null;
    clearInterval(this.heartbeatTimer);
    this.setStatus(`closed (${error.code})`);
    this.onFatal(error);
  }

  closed(code, reason) {
    if (this.stopped) return;
    // Back off from scratch only after a connection that lasted: a server that closes right
    // after every welcome (a flapping Redis, say) must not be hammered.
    if (this.liveSince !== null && Date.now() - this.liveSince > STABLE_AFTER_MS) this.attempt = 0;
    this.liveSince = null;
    switch (code) {
      // close-codes:begin
      case 1012: // the process is shutting down: another one takes us at once
      case 4409: {
        // resync: resume with last_seq, resend pending; at once the first time
        const delay = this.attempt === 0 ? 0 : this.backoff();
        this.attempt = Math.max(this.attempt, 1);
        this.reconnect(delay);
        break;
      }
      case 1011:
      case 1013:
      case 4408:
        this.reconnect(this.backoff());
        break;
      case 4429: // flooding: a pause first
        this.reconnect(this.backoff(5000));
        break;
      case 4460: // the room is full
        this.reconnect(this.backoff(5000));
        break;
      case 1000:
      case 1009:
      case 4400:
      case 4401:
      case 4403:
      case 4404:
        this.fatal(new RoomClosed(code, reason || CLOSE_REASONS[code]));
        break;
      // close-codes:end
      default: // 1006 (network loss) and anything unknown
        this.reconnect(this.backoff());
    }
  }
}

export const CLOSE_REASONS = {
  1000: "the server closed the room connection",
  1009: "a message was too large",
  4400: "the client sent an invalid hello",
  4401: "your session is no longer valid: sign in again",
  4403: "you are not a member of this room",
  4404: "this room does not exist (any more)",
};

// ------------------------------------------------------------------ the page

const TOKEN_KEY = "blendtune.token";

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || String(status);
  }
}

// REST with the session: the HttpOnly cookie goes along by itself (same origin); the token,
// when we have it, as a Bearer header too (docs/accounts.md: the header wins).
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) }; // not ours (a proxy's error page, say)
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/auth/login") signedOut();
    throw new ApiError(response.status, data || {});
  }
  return data;
}

const $ = (selector) => document.querySelector(selector);

// Build an element; children are nodes or text (always set as text, never parsed as HTML).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function say(text, level = "info") {
  const line = el("li", { class: level }, `${new Date().toLocaleTimeString()} ${text}`);
  const log = $("#log");
  log.prepend(line);
  while (log.children.length > 30) log.lastChild.remove();
}

function showView(name) {
  for (const view of document.querySelectorAll("[data-view]")) {
    view.hidden = view.dataset.view !== name;
  }
}

// Run an async UI action; problem details become a message with their code.
function action(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await fn(event);
    } catch (error) {
      say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), "error");
    }
  };
}

let me = null; // whoami
let room = null; // {client, kind, id, detail}

function signedOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  leaveRoom();
  $("#whoami").textContent = "";
  $("#logout").hidden = true;
  showView("login");
}

async function signedIn() {
  me = await api("GET", "/auth/whoami");
  const profile = await api("GET", "/me").catch(() => null);
  $("#whoami").textContent = `Signed in as ${profile?.username ?? me.user_id}`;
  $("#logout").hidden = false;
  showView("home");
  await loadHome();
}

async function loadHome() {
  const [blends, mashups] = await Promise.all([api("GET", "/blends"), api("GET", "/mashups")]);
  const open = (kind, id) => action(() => openRoom(kind, id));
  $("#blends").replaceChildren(
    ...blends.map((b) =>
      el(
        "li",
        {},
        `${b.name} (${b.member_count} members, ${b.status}${b.my_status === "pending" ? ", invited" : ""}) `,
        b.my_status === "accepted"
          ? el("button", { type: "button", "aria-label": `Open ${b.name}`, onclick: open("blend", b.id) }, "Open")
          : el(
              "button",
              { type: "button", "aria-label": `Accept the invitation to ${b.name}`, onclick: action(() => acceptInvite(b.id)) },
              "Accept",
            ),
      ),
    ),
  );
  $("#mashups").replaceChildren(
    ...mashups.map((m) =>
      el(
        "li",
        {},
        `${m.name} (${m.my_role}, ${m.member_count} members) `,
        el("button", { type: "button", "aria-label": `Open ${m.name}`, onclick: open("mashup", m.id) }, "Open"),
      ),
    ),
  );
  $("#no-blends").hidden = blends.length > 0;
  $("#no-mashups").hidden = mashups.length > 0;
}

async function acceptInvite(id) {
  await api("POST", `/blends/${id}/accept`);
  await openRoom("blend", id);
}

// ---- the room view

function roomUrl(kind, id) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/rooms/${kind}/${encodeURIComponent(id)}`;
}

async function openRoom(kind, id) {
  leaveRoom();
  const detail = await api("GET", `/${kind}s/${id}`);
  const client = new RoomClient(kind, id, {
    url: roomUrl(kind, id),
    token: sessionStorage.getItem(TOKEN_KEY),
    onUpdate: scheduleRender,
    onBatch: (ops, author) => onBatch(ops, author),
    onError: (text) => say(`rejected: ${text}`, "error"),
    onNotice: (text) => say(`notice: ${text}`),
    onFatal: (error) => {
      say(`room closed (${error.code}): ${error.message}`, "error");
      if (error.code === 4401) signedOut();
    },
  });
  room = { client, kind, id, detail, preview: null, readyPreviews: new Set() };
  $("#room-title").textContent = detail.name;
  const code = detail.share_code;
  $("#share-code").textContent = code ? `Share code: ${code.code} (until ${code.expires_at})` : "";
  $("#blend-room").hidden = kind !== "blend";
  $("#mashup-room").hidden = kind !== "mashup";
  showView("room");
  client.start();
}

function leaveRoom() {
  if (room) room.client.stop();
  room = null;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function nameOf(userId) {
  if (userId === SERVER_ACTOR) return "Blendtune";
  const member = (room?.client.state?.members || []).find((m) => m.user_id === userId);
  return member ? member.display_name || member.username : userId.slice(0, 8);
}

function render() {
  if (!room) return;
  const { client } = room;
  // Keep keyboard focus on the same control across re-renders.
  const focused = document.activeElement?.dataset?.key;
  $("#room-status").textContent =
    `${client.status}${client.seq !== null ? `, seq ${client.seq}` : ""}` +
    `${client.pending.size ? `, ${client.pending.size} edit(s) waiting for the server` : ""}` +
    `${client.welcome ? `, your role: ${client.welcome.role}` : ""}`;
  $("#present").replaceChildren(
    ...[...client.members.values()].map((m) =>
      el(
        "li",
        {},
        `${nameOf(m.user_id)} (${m.role})${m.id === client.welcome?.member_id ? " — you" : ""}`,
        Array.isArray(m.state?.selection) && m.state.selection.length
          ? ` — looking at ${m.state.selection.join(", ")}`
          : "",
      ),
    ),
  );
  if (client.state) {
    $("#room-title").textContent = client.state.name;
    if (room.kind === "blend") renderBlend(client);
    else renderMashup(client);
  }
  if (focused) document.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function canEdit(client) {
  return client.live && client.welcome && client.welcome.role !== "viewer";
}

// The kinds' list ops: blend items and mashup clips are both ordered by fractional keys.
const LIST_OPS = {
  blend: { reorder: "reorder", remove: "remove", field: "item" },
  mashup: { reorder: "reorder_clip", remove: "remove_clip", field: "clip" },
};

// Move entries[from] to position `to` with the kind's reorder op.
function move(entries, from, to) {
  if (to < 0 || to >= entries.length || to === from) return;
  const ops = LIST_OPS[room.kind];
  let index;
  try {
    index = keyForMove(
      entries.map((e) => e.index),
      from,
      to,
    );
  } catch (error) {
    say(String(error), "error");
    return;
  }
  room.client.edit([{ op: ops.reorder, [ops.field]: entries[from].id, index }]);
}

function remove(entry) {
  const ops = LIST_OPS[room.kind];
  room.client.edit([{ op: ops.remove, [ops.field]: entry.id }]);
}

let dragged = null;

// One row of a reorderable list; `label` names the entry for screen readers.
function sortableRow(entries, n, label, ...content) {
  const entry = entries[n];
  const editable = canEdit(room.client);
  return el(
    "li",
    {
      draggable: editable ? "true" : null,
      dataset: { id: entry.id },
      ondragstart: (event) => {
        dragged = n;
        event.dataTransfer.setData("text/plain", entry.id); // Firefox starts no drag without it
      },
      ondragover: (event) => event.preventDefault(),
      ondrop: (event) => {
        event.preventDefault();
        if (dragged !== null) move(entries, dragged, n);
        dragged = null;
      },
    },
    ...content,
    el(
      "span",
      { class: "controls" },
      el(
        "button",
        {
          type: "button",
          disabled: !editable || n === 0,
          "aria-label": `Move ${label} up`,
          dataset: { key: `up-${entry.id}` },
          onclick: () => move(entries, n, n - 1),
        },
        "↑",
      ),
      el(
        "button",
        {
          type: "button",
          disabled: !editable || n === entries.length - 1,
          "aria-label": `Move ${label} down`,
          dataset: { key: `down-${entry.id}` },
          onclick: () => move(entries, n, n + 1),
        },
        "↓",
      ),
      el(
        "button",
        {
          type: "button",
          disabled: !editable,
          "aria-label": `Remove ${label}`,
          dataset: { key: `remove-${entry.id}` },
          onclick: () => remove(entry),
        },
        "Remove",
      ),
    ),
  );
}

function renderBlend(client) {
  const { state } = client;
  const items = state.items.map((item) => ({ ...item }));
  const mine = client.welcome.user_id;
  $("#playlist").replaceChildren(
    ...items.map((item, n) => {
      const counts = {};
      for (const emoji of Object.values(item.reactions || {})) counts[emoji] = (counts[emoji] || 0) + 1;
      const react = el(
        "select",
        {
          "aria-label": `React to ${item.song.name}`,
          disabled: !canEdit(client),
          dataset: { key: `react-${item.id}` },
          onchange: (event) =>
            client.edit([{ op: "react", item: item.id, emoji: event.target.value || null }]),
        },
        el("option", { value: "" }, "no reaction"),
        ...EMOJI.map((e) => el("option", { value: e, selected: item.reactions?.[mine] === e }, e)),
      );
      return sortableRow(
        items,
        n,
        item.song.name,
        el("span", { class: "title" }, `${item.song.name} — ${item.song.artist}`),
        el(
          "span",
          { class: "attribution" },
          ` from ${nameOf(item.contributed_by)}` +
            (item.contributors.length > 1 ? ` (also ${item.contributors.filter((u) => u !== item.contributed_by).map(nameOf).join(", ")})` : "") +
            (item.added_by ? `, added by ${nameOf(item.added_by)}` : ""),
        ),
        " ",
        Object.entries(counts)
          .map(([emoji, count]) => `${emoji}${count > 1 ? count : ""}`)
          .join(" "),
        " ",
        react,
      );
    }),
  );
  $("#playlist-empty").hidden = items.length > 0;
}

function renderMashup(client) {
  const { state } = client;
  const timeline = state.timeline;
  const inputs = Object.fromEntries((state.inputs || []).map((t) => [t.track_id, t]));
  $("#timeline-info").textContent =
    `${timeline.bpm} BPM${timeline.key ? `, ${timeline.key}` : ""}, ${timeline.clips.length} clip(s)`;
  const clips = timeline.clips.map((clip) => ({ ...clip, index: state.order[clip.id] ?? "" }));
  $("#clips").replaceChildren(
    ...clips.map((clip, n) =>
      sortableRow(
        clips,
        n,
        `clip ${clip.id}`,
        el(
          "span",
          { class: "title" },
          `${clip.id}: ${inputs[clip.track_id]?.name ?? clip.track_id} ` +
            `${clip.in_seconds.toFixed(2)}–${clip.out_seconds.toFixed(2)} s at beat ${clip.position_beats}` +
            `${clip.muted ? " (muted)" : ""}`,
        ),
      ),
    ),
  );
  $("#clips-empty").hidden = clips.length > 0;
  $("#previews").replaceChildren(
    ...(state.previews || []).map((p) =>
      el(
        "li",
        {},
        `${p.start_seconds}–${p.start_seconds + p.duration_seconds} s at seq ${p.seq}, by ${nameOf(p.requested_by)} `,
        el("button", { type: "button", onclick: () => play(p.url, true) }, "Play"),
      ),
    ),
  );
}

function play(url, start) {
  const audio = $("#player");
  if (audio.getAttribute("src") !== url) audio.src = url; // fetched with the session cookie
  if (start) audio.play().catch(() => {}); // autoplay may be refused; the controls remain
}

function onBatch(ops) {
  if (!room || room.kind !== "mashup") return;
  for (const op of ops) {
    if (op.op === "preview_started") {
      say(`preview ${op.id.slice(0, 8)} rendering (by ${nameOf(op.requested_by)})`);
    } else if (op.op === "preview_ready") {
      room.readyPreviews.add(op.preview.id);
      say(`preview ${op.preview.id.slice(0, 8)} ready`);
      play(op.preview.url, op.preview.id === room.preview);
    } else if (op.op === "preview_failed") {
      say(`preview ${op.id.slice(0, 8)} failed: ${op.code} ${op.detail}`, "error");
    }
  }
}

async function requestPreview() {
  const form = $("#preview-form");
  const accepted = await api("POST", `/mashups/${room.id}/previews`, {
    start_seconds: Number(form.elements.start.value),
    duration_seconds: Number(form.elements.duration.value),
  });
  room.preview = accepted.id;
  say(`preview requested (${accepted.status})`);
  // The announcement may have beaten the 202 here.
  if (room.readyPreviews.has(accepted.id)) play(accepted.url, true);
}

// Presence: what this member is looking at, at most a few updates a second (newest wins).
let presenceTimer = null;
let presenceNext;
function presence(selection) {
  presenceNext = { selection };
  if (presenceTimer) return;
  presenceTimer = setTimeout(() => {
    presenceTimer = null;
    room?.client.setPresence(presenceNext);
  }, 300);
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function main() {
  $("#login-form").addEventListener(
    "submit",
    action(async (event) => {
      const { email, password } = formValues(event.target);
      const session = await api("POST", "/auth/login", { email, password });
      sessionStorage.setItem(TOKEN_KEY, session.token);
      event.target.reset();
      await signedIn();
    }),
  );
  $("#register-form").addEventListener(
    "submit",
    action(async (event) => {
      const { email, password, username } = formValues(event.target);
      await api("POST", "/auth/register", { email, password, username });
      const session = await api("POST", "/auth/login", { email, password });
      sessionStorage.setItem(TOKEN_KEY, session.token);
      event.target.reset();
      await signedIn();
    }),
  );
  $("#logout").addEventListener(
    "click",
    action(async () => {
      await api("POST", "/auth/logout").catch(() => {});
      signedOut();
    }),
  );
  $("#create-blend").addEventListener(
    "submit",
    action(async (event) => {
      const detail = await api("POST", "/blends", { name: formValues(event.target).name });
      event.target.reset();
      say(`blend created; share code ${detail.share_code?.code ?? "none"}`);
      await openRoom("blend", detail.id);
    }),
  );
  $("#join-blend").addEventListener(
    "submit",
    action(async (event) => {
      const detail = await api("POST", "/blends/join", { code: formValues(event.target).code });
      event.target.reset();
      await openRoom("blend", detail.id);
    }),
  );
  $("#create-mashup").addEventListener(
    "submit",
    action(async (event) => {
      const values = formValues(event.target);
      const detail = await api("POST", "/mashups", {
        name: values.name,
        target_duration_seconds: Number(values.duration),
      });
      event.target.reset();
      await openRoom("mashup", detail.id);
    }),
  );
  $("#join-mashup").addEventListener(
    "submit",
    action(async (event) => {
      const detail = await api("POST", "/mashups/join", { code: formValues(event.target).code });
      event.target.reset();
      await openRoom("mashup", detail.id);
    }),
  );
  $("#preview-form").addEventListener("submit", action(requestPreview));
  $("#back").addEventListener(
    "click",
    action(async () => {
      leaveRoom();
      showView("home");
      await loadHome();
    }),
  );
  for (const list of [$("#playlist"), $("#clips")]) {
    list.addEventListener("focusin", (event) => {
      const row = event.target.closest("li[data-id]");
      if (row) presence([row.dataset.id]);
    });
  }
  // The cookie may still hold a session (a reload, a new tab): ask before showing the form.
  signedIn().catch((error) => {
    if (me === null) showView("login");
    else say(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), "error");
  });
}

if (typeof document !== "undefined") main();
