// Drives the web client's RoomClient against a real server (run by test_client.py):
// two members edit a woven blend, one leaves and resumes, a regeneration arrives, and every
// client's state must equal a fresh snapshot; then a mashup preview is announced.
// Input: a JSON object on argv[2]. Output: "ok" or an assertion error (exit code 1).
import assert from "node:assert/strict";
import { RoomClient, keyBetween, keyForMove } from "../../server/static/app.js";

const input = JSON.parse(process.argv[2]);
const { http, ws, blend, mashup, alice, bob } = input;

async function until(predicate, what, within = 20_000) {
  const deadline = Date.now() + within;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function open(kind, id, user) {
  const errors = [];
  const batches = [];
  const client = new RoomClient(kind, id, {
    url: `${ws}/rooms/${kind}/${id}`,
    token: user.token,
    onError: (text) => errors.push(text),
    onBatch: (ops) => batches.push(...ops),
    onFatal: (error) => errors.push(`fatal ${error.code}`),
  });
  client.errors = errors;
  client.batches = batches;
  client.start();
  return client;
}

// Key order does not matter for equality; stringify canonically.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const settled = (...clients) => () =>
  clients.every((c) => c.live && c.pending.size === 0) &&
  clients.every((c) => c.seq === clients[0].seq);

// ---- the blend
const a = open("blend", blend, alice);
const b = open("blend", blend, bob);
await until(() => a.live && b.live && a.state.items.length > 0 && b.state.items.length > 0, "both in the room");
await until(() => [...a.members.values()].some((m) => m.user_id === bob.id), "alice to see bob");

// Bob moves the last track to the top; Alice sees it.
const last = b.state.items[b.state.items.length - 1];
b.edit([{ op: "reorder", item: last.id, index: keyForMove(b.state.items.map((i) => i.index), b.state.items.length - 1, 0) }]);
await until(() => a.state.items[0]?.id === last.id, "the move to reach alice");

// Alice reacts; Bob moves the top track down one; Bob adds a song of his own by hand.
a.edit([{ op: "react", item: last.id, emoji: "🔥" }]);
await until(() => b.state.items.find((i) => i.id === last.id)?.reactions[alice.id] === "🔥", "the reaction");
b.edit([{ op: "reorder", item: last.id, index: keyForMove(b.state.items.map((i) => i.index), 0, 1) }]);
await until(() => a.state.items[1]?.id === last.id, "the move down");
const spare = b.state.library[bob.id].find((s) => !b.state.items.some((i) => i.song.key === s.song.key));
assert.ok(spare, "bob has a song not in the playlist");
const end = b.state.items[b.state.items.length - 1].index;
b.edit([{ op: "add", item: "hand-1", song: spare.song.key, index: keyBetween(end, null) }]);
await until(() => a.state.items.some((i) => i.id === "hand-1"), "the added song");

// A refused edit comes back with its code and changes nothing.
b.edit([{ op: "reorder", item: "no-such-item", index: "V" }]);
await until(() => b.errors.some((e) => e.startsWith("not_found")), "the not_found rejection");
await until(settled(a, b), "both settled");

// Bob leaves; Alice edits meanwhile; Bob comes back and resumes from his last seq.
b.stop();
await until(() => ![...a.members.values()].some((m) => m.user_id === bob.id), "bob to leave");
a.edit([{ op: "rename", name: "Road   trip" }]);
a.edit([{ op: "remove", item: a.state.items[2].id }]);
await until(settled(a), "alice settled");
b.start();
await until(() => b.live && b.seq === a.seq, "bob to catch up");
assert.equal(b.welcome.resumed, true, "bob resumed instead of loading a snapshot");
assert.equal(b.state.name, "Road trip");

// A regeneration arrives as a server batch (sync + woven) and is applied by both.
const generation = a.state.generation;
const answer = await fetch(`${http}/blends/${blend}/regenerate`, {
  method: "POST",
  headers: { Authorization: `Bearer ${bob.token}` },
});
assert.equal(answer.status, 202);
await until(() => a.state.generation > generation && b.state.generation > generation, "the regeneration");
await until(settled(a, b), "both settled after the regeneration");

// Every client's state is the server's: compare with a fresh snapshot.
const fresh = open("blend", blend, alice);
await until(() => fresh.live && fresh.seq === a.seq, "a fresh snapshot");
assert.equal(fresh.welcome.resumed, false);
assert.equal(canonical(a.state), canonical(fresh.state), "alice's state is the snapshot");
assert.equal(canonical(b.state), canonical(fresh.state), "bob's state is the snapshot");
assert.ok(fresh.state.items.some((i) => i.id === "hand-1"), "the hand-added song survived");
for (const c of [a, b, fresh]) c.stop();

// ---- the mashup: a preview requested over REST is announced in the room
const m = open("mashup", mashup, alice);
await until(() => m.live, "the mashup room");
const accepted = await fetch(`${http}/mashups/${mashup}/previews`, {
  method: "POST",
  headers: { Authorization: `Bearer ${alice.token}`, "Content-Type": "application/json" },
  body: JSON.stringify({ start_seconds: 0, duration_seconds: 1 }),
});
assert.equal(accepted.status, 202, await accepted.clone().text());
const { id: previewId } = await accepted.json();
await until(
  () => m.batches.some((op) => (op.op === "preview_ready" && op.preview.id === previewId) ||
    (op.op === "preview_failed" && op.id === previewId)),
  "the preview's announcement",
  60_000,
);
assert.ok(m.batches.some((op) => op.op === "preview_started" && op.id === previewId));
const outcome = m.batches.find((op) => op.op === "preview_ready" || op.op === "preview_failed");
const result = { preview: outcome.op, code: outcome.code ?? null };
if (outcome.op === "preview_ready") {
  assert.equal(m.state.previews[m.state.previews.length - 1].id, previewId);
  const audio = await fetch(`${http}${outcome.preview.url}`, {
    headers: { Authorization: `Bearer ${alice.token}` },
  });
  result.status = audio.status;
  result.type = audio.headers.get("content-type");
}
m.stop();
console.log(JSON.stringify(result));
