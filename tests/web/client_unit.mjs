// Unit checks of the web client's RoomClient against a scripted socket (run by test_client.py).
// Each step follows docs/protocol.md, "What a client does" and "Close codes".
import assert from "node:assert/strict";
import { RoomClient, keyForMove, compareStrings } from "../../server/static/app.js";

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));
const ME = "0b2e0000-0000-0000-0000-000000000001";
const OTHER = "9d410000-0000-0000-0000-000000000002";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code) {
    this.readyState = 3;
    this.closedWith = code;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  serverClose(code) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}
const latest = () => FakeSocket.all[FakeSocket.all.length - 1];

function welcome(seq, extra = {}) {
  return {
    type: "welcome", v: 2, room_id: "r", kind: "blend", member_id: "m.1", user_id: ME,
    role: "owner", seq, resumed: false, future_field: 1,
    state: { name: "Friday", items: [], members: [], library: {}, generation: 0 },
    members: [{ id: "m.1", user_id: ME, role: "owner", state: null }],
    heartbeat_seconds: 20, limits: { max_frame_bytes: 65536, ops_per_second: 50,
      max_batch_ops: 100, presence_max_bytes: 1024 },
    ...extra,
  };
}

const errors = [];
const fatal = [];
const client = new RoomClient("blend", "r", {
  url: "ws://example/rooms/blend/r",
  WebSocket: FakeSocket,
  onError: (text) => errors.push(text),
  onFatal: (error) => fatal.push(error.code),
});
client.start();

// A fresh join: hello without a token (the cookie authenticates) and without last_seq.
let ws = latest();
assert.equal(ws.url, "ws://example/rooms/blend/r");
ws.open();
assert.deepEqual(ws.sent, [{ type: "hello", v: 2 }]);
ws.receive(welcome(5));
assert.equal(client.status, "live");
assert.equal(client.seq, 5);

// An edit is pending until its ack, then applied at the ack's seq.
const renamed = client.edit([{ op: "rename", name: "  Road   trip " }]);
assert.deepEqual(ws.sent[1], { type: "ops", op_id: renamed, ops: [{ op: "rename", name: "  Road   trip " }] });
assert.equal(client.state.name, "Friday", "nothing is applied before the ack");
ws.receive({ type: "ack", op_id: renamed, seq: 6, duplicate: false });
assert.equal(client.state.name, "Road trip");
assert.equal(client.seq, 6);
assert.equal(client.pending.size, 0);

// Another member's batch, presence, joins, leaves, pings; unknown types are ignored.
ws.receive({ type: "batch", seq: 7, author: OTHER, op_id: "x-1", ops: [{ op: "rename", name: "Mix" }] });
assert.equal(client.state.name, "Mix");
ws.receive({ type: "joined", member: { id: "m.2", user_id: OTHER, role: "member", state: null } });
ws.receive({ type: "presence", id: "m.2", state: { selection: ["g1.0"] } });
assert.deepEqual(client.members.get("m.2").state, { selection: ["g1.0"] });
ws.receive({ type: "something_new", x: 1 });
ws.receive({ type: "ping" });
assert.deepEqual(ws.sent[ws.sent.length - 1], { type: "pong" });
ws.receive({ type: "left", id: "m.2" });
assert.equal(client.members.has("m.2"), false);
// Version 2: a tick's roster changes in one message (an id may be in it that we know).
ws.receive({ type: "members", joined: [{ id: "m.3", user_id: OTHER, role: "member", state: { cursor: 1 } },
  { id: "m.1", user_id: ME, role: "owner", state: null }], left: ["m.2", "m.9"] });
assert.deepEqual([...client.members.keys()].sort(), ["m.1", "m.3"]);
assert.deepEqual(client.members.get("m.3").state, { cursor: 1 });
ws.receive({ type: "members", joined: [], left: ["m.3"] });
assert.deepEqual([...client.members.keys()], ["m.1"]);

// Rejections: a rate-limited batch stays pending (resent later), a refused one is dropped.
const limited = client.edit([{ op: "rename", name: "A" }]);
ws.receive({ type: "error", code: "rate_limited", detail: "slow down", op_id: limited });
assert.ok(client.pending.has(limited));
const refused = client.edit([{ op: "remove", item: "t-19" }]);
ws.receive({ type: "error", code: "not_found", detail: "no such item", op_id: refused });
assert.ok(!client.pending.has(refused));
assert.ok(errors.some((e) => e.startsWith("not_found")), errors.join("; "));

// A gap (seq 9 after 7) closes the socket and resumes at once with last_seq 7 ...
ws.receive({ type: "batch", seq: 9, author: OTHER, op_id: "x-2", ops: [] });
assert.equal(ws.readyState, 3);
assert.equal(client.seq, 7);
await tick();
ws = latest();
ws.open();
assert.deepEqual(ws.sent[0], { type: "hello", v: 2, last_seq: 7 });
// ... a resumed welcome keeps the state and seq; pending batches are resent with their op_id;
// the missed batches follow, ours among them (its ack was lost): it counts as the ack.
ws.receive(welcome(8, { resumed: true, state: null }));
assert.equal(client.state.name, "Mix");
assert.equal(client.seq, 7);
assert.deepEqual(ws.sent.slice(1), [{ type: "ops", op_id: limited, ops: [{ op: "rename", name: "A" }] }]);
ws.receive({ type: "batch", seq: 8, author: ME, op_id: limited, ops: [{ op: "rename", name: "A" }] });
assert.equal(client.state.name, "A");
assert.equal(client.pending.size, 0);
// A duplicate ack answers a resend; it is not part of the seq stream.
ws.receive({ type: "ack", op_id: limited, seq: 8, duplicate: true });
assert.equal(client.seq, 8);

// 1012 (server restart): reconnect at once with last_seq and resend what is pending.
const during = client.edit([{ op: "rename", name: "B" }]);
ws.serverClose(1012);
const restarted = client.edit([{ op: "rename", name: "C" }]);
await tick();
ws = latest();
ws.open();
assert.deepEqual(ws.sent[0], { type: "hello", v: 2, last_seq: 8 });
ws.receive(welcome(9, { resumed: false, state: { name: "B", items: [], members: [], library: {} } }));
assert.equal(client.seq, 9, "a snapshot welcome sets seq");
assert.deepEqual(ws.sent.slice(1).map((m) => m.op_id), [during, restarted]);
ws.receive({ type: "ack", op_id: during, seq: 6, duplicate: true });
ws.receive({ type: "ack", op_id: restarted, seq: 10, duplicate: false });
assert.equal(client.state.name, "C");
assert.equal(client.seq, 10);

// A repeated seq is a gap too.
ws.receive({ type: "batch", seq: 10, author: OTHER, op_id: "x-3", ops: [] });
await tick();
ws = latest();
ws.open();
assert.equal(ws.sent[0].last_seq, 10);
ws.receive(welcome(10, { resumed: true, state: null }));

// 1013 and network loss back off (not at once); 4403 gives up.
const before = FakeSocket.all.length;
ws.serverClose(1013);
await tick();
assert.equal(FakeSocket.all.length, before, "1013 waits before reconnecting");
await tick(600);
assert.equal(FakeSocket.all.length, before + 1, "then reconnects");
ws = latest();
ws.open();
ws.receive(welcome(10, { resumed: true, state: null }));
ws.serverClose(4403);
await tick(600);
assert.equal(FakeSocket.all.length, before + 1, "4403 is not retried");
assert.deepEqual(fatal, [4403]);

// The token, when known, goes in the hello; never in the URL.
const withToken = new RoomClient("blend", "r2", {
  url: "ws://example/rooms/blend/r2", token: "tok", WebSocket: FakeSocket,
});
withToken.start();
latest().open();
assert.deepEqual(latest().sent[0], { type: "hello", v: 2, token: "tok" });
assert.ok(!latest().url.includes("tok"));
latest().serverClose(4401);
assert.equal(withToken.status, "closed (4401)");

// Moves by fractional keys, including neighbours whose keys tie.
const keys = ["V", "k", "t"];
const up = keyForMove(keys, 2, 0);
assert.ok(compareStrings(up, "V") < 0);
const down = keyForMove(keys, 0, 1);
assert.ok(compareStrings("k", down) < 0 && compareStrings(down, "t") < 0);
const tied = keyForMove(["V", "V", "k", "t"], 3, 1);
assert.ok(compareStrings("V", tied) < 0 && compareStrings(tied, "k") < 0);

// A server that closes with 4409 right after every welcome is not hammered: the delays grow.
const flapping = new RoomClient("blend", "r3", { url: "ws://example/rooms/blend/r3", WebSocket: FakeSocket });
const delays = [];
flapping.reconnect = (delay) => delays.push(delay);
flapping.start();
for (let n = 0; n < 4; n += 1) {
  latest().open();
  latest().receive(welcome(1));
  latest().serverClose(4409);
  flapping.connect();
}
assert.equal(delays[0], 0, "the first resync is at once");
assert.ok(delays[3] > delays[1] && delays[1] > 0, delays.join(", "));
flapping.stop();
client.stop();
withToken.stop();

// No welcome after the hello: the client gives that socket up and tries again.
const silent = new RoomClient("blend", "r4", {
  url: "ws://example/rooms/blend/r4", WebSocket: FakeSocket, welcomeTimeoutMs: 20,
});
silent.start();
const unanswered = latest();
unanswered.open();
await tick(50);
assert.equal(unanswered.closedWith, 4000);
await tick(300);
assert.notEqual(latest(), unanswered, "a new socket after the backoff");
silent.stop();

// Undo: pending like an edit (resent with its op_id after a reconnect); its ack carries the
// ops the server computed, applied at the ack's seq.
const done = [];
const undoing = new RoomClient("blend", "r5", {
  url: "ws://example/rooms/blend/r5", WebSocket: FakeSocket, onHistory: (h) => done.push(h),
});
undoing.start();
latest().open();
latest().receive(welcome(3));
const undone = undoing.undo();
assert.deepEqual(latest().sent[1], { type: "undo", op_id: undone });
assert.equal(undoing.state.name, "Friday", "nothing is applied before the ack");
latest().serverClose(1012);
await tick();
latest().open();
latest().receive(welcome(3, { resumed: true, state: null }));
assert.deepEqual(latest().sent.slice(1), [{ type: "undo", op_id: undone }]);
latest().receive({
  type: "ack", op_id: undone, seq: 4, duplicate: false,
  ops: [{ op: "rename", name: "Before" }],
  history: { action: "undo", target: 2, applied: 1, skipped: 0 },
});
assert.equal(undoing.state.name, "Before");
assert.equal(undoing.seq, 4);
assert.deepEqual(done, [{ action: "undo", target: 2, applied: 1, skipped: 0 }]);
const nothing = undoing.redo();
latest().receive({ type: "error", code: "nothing_to_redo", detail: "", op_id: nothing });
assert.equal(undoing.pending.size, 0);
undoing.stop();

// Versions and restore: naming is answered by a `version` message carrying our op_id (to
// every member; not in the seq stream); a restore is answered like an undo.
const named = [];
const versioning = new RoomClient("blend", "r6", {
  url: "ws://example/rooms/blend/r6", WebSocket: FakeSocket,
  onVersion: (v) => named.push(v.label), onHistory: (h) => done.push(h),
});
versioning.start();
latest().open();
latest().receive(welcome(3));
const naming = versioning.nameVersion("Before the drop");
assert.deepEqual(latest().sent[1], { type: "version", op_id: naming, label: "Before the drop" });
const version = { id: "v1", label: "Before the drop", seq: 3, author: ME, created_at: "2026-12-01T17:00:00Z" };
latest().receive({ type: "version", op_id: "c9-000001", duplicate: false, version: { ...version, id: "v0", label: "Theirs", author: "someone-else" } });
assert.equal(versioning.pending.size, 1, "another member's version is not our answer");
latest().receive({ type: "version", op_id: naming, duplicate: false, version });
assert.equal(versioning.pending.size, 0);
assert.equal(versioning.seq, 3, "a version takes no seq");
latest().receive({ type: "version", op_id: naming, duplicate: true, version });
assert.deepEqual(named, ["Theirs", "Before the drop"], "a duplicate names nothing new");
const restoring = versioning.restore({ version: "v1" });
const bySeq = versioning.restore({ seq: 2 });
assert.deepEqual(latest().sent.slice(2), [
  { type: "restore", op_id: restoring, version: "v1" },
  { type: "restore", op_id: bySeq, seq: 2 },
]);
latest().receive({
  type: "ack", op_id: restoring, seq: 4, duplicate: false,
  ops: [{ op: "rename", name: "Then" }],
  history: { action: "restore", target: 3, applied: 1, skipped: 0 },
});
assert.equal(versioning.state.name, "Then");
assert.equal(done.at(-1).action, "restore");
versioning.stop();

console.log("ok");
