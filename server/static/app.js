// Blendtune web client: the room logic (no framework, no build step).
//
// Written against the project's contracts: docs/protocol.md (rooms), docs/accounts.md (sign-in),
// docs/blends.md and docs/mashups.md (REST and each room kind's state and ops). The pure parts
// (fractional keys, the two room reducers, RoomClient) touch no DOM, so they also run under Node
// (tests/web). The page itself is page.js, loaded at the bottom only in a browser. See
// docs/web-client.md.

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
    case "put_item": // history batches only (undo, redo, restore): the item back whole
      state.items = state.items.filter((item) => item.id !== op.item.id);
      state.items.push(op.item);
      sortItems(state.items);
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
    case "generation": {
      // An older update of the same generation (a lower version) was overtaken: ignored.
      const current = state.generation;
      const next = op.generation;
      if (!(current && current.id === next.id && next.version < current.version)) {
        state.generation = next;
      }
      break;
    }
    case "generated": // a generated draft replaces the whole timeline and the clips' order
      state.timeline = op.timeline;
      state.order = { ...op.order };
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
// onVersion(version) when a member (this page included) names a version; onHistory(done) when an
// undo, redo or restore of ours is applied; onFatal(RoomClosed) when the room will not be
// rejoined.
// Version 2: roster changes come as "members" messages (docs/protocol.md).
export const PROTOCOL_VERSION = 2;

export class RoomClient {
  constructor(kind, roomId, options = {}) {
    this.kind = kind;
    this.roomId = roomId;
    this.url = options.url; // ws(s)://host/rooms/<kind>/<id>; never with a token in it
    this.token = options.token ?? null; // null: the bt_session cookie authenticates
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.welcomeTimeoutMs = options.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
    this.reduce = REDUCERS[kind];
    const callbacks = ["onUpdate", "onBatch", "onError", "onNotice", "onFatal", "onVersion", "onHistory"];
    for (const name of callbacks) {
      this[name] = options[name] ?? (() => {});
    }
    this.state = null;
    this.seq = null;
    this.members = new Map(); // member id -> {id, user_id, role, state}
    this.pending = new Map(); // op_id -> ops (or a history message), in send order
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
    return this.request(ops);
  }

  // Undo or redo this user's own edits (docs/protocol.md, "History"): the server computes the
  // batch, and its ack carries the ops. Pending and resent exactly like an edit.
  undo() {
    return this.request({ type: "undo" });
  }

  redo() {
    return this.request({ type: "redo" });
  }

  // Bring the room back to a named version ({version: id}) or to a seq ({seq}), as a new batch
  // of ours (undoable); answered like an undo.
  restore(target) {
    return this.request(target.version ? { type: "restore", version: target.version } : { type: "restore", seq: target.seq });
  }

  // Name the room's state (at `seq`, or its latest): answered with a `version` message, to
  // every member, that carries our op_id. Pending and resent like the rest (a resent one is a
  // duplicate, named once).
  nameVersion(label, seq = null) {
    return this.request(seq === null ? { type: "version", label } : { type: "version", label, seq });
  }

  // `what` is a batch's ops, or a history message without its op_id.
  request(what) {
    this.opCounter += 1;
    const opId = `${this.devicePrefix}-${String(this.opCounter).padStart(6, "0")}`;
    this.pending.set(opId, what);
    if (this.live) this.sendPending(opId, what);
    this.onUpdate();
    return opId;
  }

  sendPending(opId, what) {
    this.send(Array.isArray(what) ? { type: "ops", op_id: opId, ops: what } : { ...what, op_id: opId });
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
      const hello = { type: "hello", v: PROTOCOL_VERSION };
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
        const sent = this.pending.get(m.op_id);
        this.pending.delete(m.op_id);
        // A duplicate is not part of the seq stream: we have that seq or get it on resume.
        if (m.duplicate) break;
        if (sent === undefined) {
          this.resync(`ack for an unknown batch ${m.op_id}`); // a seq we cannot apply
          return;
        }
        if (!this.inOrder(m.seq)) return;
        // An undo's or redo's ops are the server's: its ack carries them.
        this.apply(Array.isArray(sent) ? sent : (m.ops ?? []), this.welcome.user_id, m.seq);
        if (m.history) this.onHistory(m.history);
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
      case "joined": // protocol version 1 only; version 2 sends "members"
        this.members.set(m.member.id, m.member);
        break;
      case "left":
        this.members.delete(m.id);
        break;
      case "members": // a tick's roster changes: each id's latest entry, or gone
        for (const member of m.joined) this.members.set(member.id, member);
        for (const id of m.left) this.members.delete(id);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        break; // any message resets the heartbeat clock
      case "notice":
        this.onNotice(`${m.code}: ${m.detail}`);
        break;
      case "version": // a member named the room's state (docs/protocol.md, "History")
        if (m.version.author === this.welcome.user_id && this.pending.has(m.op_id)) {
          this.pending.delete(m.op_id); // ours: the answer (not in the seq stream)
        }
        if (!m.duplicate) this.onVersion(m.version);
        break;
      // messages:end
      default:
        return; // unknown types from a newer server are ignored
    }
    this.onUpdate();
  }

  welcomed(m) {
    if (m.v !== PROTOCOL_VERSION || m.kind !== this.kind) {
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
    for (const [opId, what] of this.pending) this.sendPending(opId, what);
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
    const sent = m.op_id ? this.pending.get(m.op_id) : undefined;
    const resend = ["rate_limited", "unavailable", "too_many_pending", "busy"];
    if (sent !== undefined && resend.includes(m.code)) {
      // Dropped, not applied: resend later with the same op_id.
      this.onError(`${m.code}: ${m.detail} (will resend)`);
      this.later(1000 + Math.random() * 1000, () => {
        if (this.live && this.pending.has(m.op_id)) this.sendPending(m.op_id, sent);
      });
      return;
    }
    if (sent !== undefined) this.pending.delete(m.op_id); // rejected: it changed nothing
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
// The page's modules (page.js and what it imports) touch the DOM; they load only in a browser,
// so Node (tests/web) can import this module for the room logic alone.

if (typeof document !== "undefined") import("./page.js");
