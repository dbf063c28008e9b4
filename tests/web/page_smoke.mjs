// The page (app.js's UI half) against a real server, under a minimal DOM stand-in, since no
// browser is installed here: sign in through the form, open a blend, move a track and react
// through its buttons, render a mashup preview into the <audio> element, sign out.
// Input: a JSON object on argv[2]. Output: "ok" or an assertion error (exit code 1).
import assert from "node:assert/strict";

const { http, email, password, blendName, mashupName, username, address } = JSON.parse(process.argv[2]);

// ---- a DOM just large enough for app.js
class Text {
  constructor(text) {
    this.textContent = String(text);
  }
}
class Element {
  constructor(tag, attributes = {}) {
    this.tagName = tag.toUpperCase();
    this.childNodes = [];
    this.attributes = {};
    this.dataset = {};
    this.listeners = {};
    this.hidden = false;
    this.parent = null;
    this.value = "";
    this.elements = {};
    for (const [k, v] of Object.entries(attributes)) this.setAttribute(k, v);
  }
  get children() {
    return this.childNodes.filter((n) => n instanceof Element);
  }
  get lastChild() {
    return this.childNodes.at(-1);
  }
  get textContent() {
    return this.childNodes.map((n) => n.textContent).join("");
  }
  set textContent(text) {
    this.childNodes = [new Text(text)];
  }
  append(...nodes) {
    for (const node of nodes) {
      const child = node instanceof Element || node instanceof Text ? node : new Text(node);
      child.parent = this;
      this.childNodes.push(child);
    }
  }
  prepend(node) {
    node.parent = this;
    this.childNodes.unshift(node);
  }
  replaceChildren(...nodes) {
    this.childNodes = [];
    this.append(...nodes);
  }
  remove() {
    this.parent.childNodes = this.parent.childNodes.filter((n) => n !== this);
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
    if (name === "value") this.value = String(value);
  }
  getAttribute(name) {
    return this.attributes[name] ?? null;
  }
  set src(url) {
    this.attributes.src = url;
  }
  get src() {
    return this.attributes.src;
  }
  addEventListener(type, listener) {
    (this.listeners[type] ||= []).push(listener);
  }
  dispatch(type, event = {}) {
    event.target ??= this;
    event.preventDefault ??= () => {};
    for (let node = this; node; node = node.parent) {
      for (const listener of node.listeners[type] || []) listener(event);
    }
  }
  closest(selector) {
    assert.equal(selector, "li[data-id]");
    for (let node = this; node; node = node.parent) {
      if (node.tagName === "LI" && node.dataset.id) return node;
    }
    return null;
  }
  focus() {
    document.activeElement = this;
  }
  reset() {}
  play() {
    this.played = true;
    return Promise.resolve();
  }
  find(predicate) {
    for (const child of this.children) {
      if (predicate(child)) return child;
      const found = child.find(predicate);
      if (found) return found;
    }
    return null;
  }
}

const byId = new Map();
const views = ["loading", "login", "home", "room"].map((view) => {
  const section = new Element("section");
  section.dataset.view = view;
  section.hidden = view !== "loading";
  return section;
});
globalThis.document = {
  activeElement: null,
  createElement: (tag) => new Element(tag),
  querySelector(selector) {
    if (!selector.startsWith("#")) return null;
    if (!byId.has(selector)) byId.set(selector, new Element(selector === "#player" ? "audio" : "div"));
    return byId.get(selector);
  },
  querySelectorAll: (selector) => (selector === "[data-view]" ? views : []),
};
globalThis.CSS = { escape: (text) => text };
globalThis.requestAnimationFrame = (fn) => setTimeout(fn, 0);
globalThis.location = { protocol: "http:", host: new URL(http).host };
const storage = new Map();
globalThis.sessionStorage = {
  getItem: (k) => storage.get(k) ?? null,
  setItem: (k, v) => storage.set(k, String(v)),
  removeItem: (k) => storage.delete(k),
};
globalThis.FormData = class {
  constructor(form) {
    this.form = form;
  }
  entries() {
    return Object.entries(form_values.get(this.form)).values();
  }
};
const form_values = new Map();
function fill(selector, values) {
  const form = document.querySelector(selector);
  form_values.set(form, values);
  for (const [name, value] of Object.entries(values)) form.elements[name] = { value };
  return form;
}
const nodeFetch = globalThis.fetch;
// The page speaks from a client address of its own (the server trusts X-Forwarded-For from
// loopback), so other tests' sign-ins do not use up its rate-limit budget.
globalThis.fetch = (path, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("X-Forwarded-For", address);
  return nodeFetch(new URL(path, http), { ...init, headers });
};

async function until(predicate, what, within = 20_000) {
  const deadline = Date.now() + within;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
const $ = (selector) => document.querySelector(selector);
const view = (name) => views.find((v) => v.dataset.view === name);
const log = () => $("#log").textContent;

// ---- the page
await import("../../server/static/app.js");
await until(() => !view("login").hidden, "the sign-in form (no session yet)");

fill("#login-form", { email, password }).dispatch("submit");
await until(() => !view("home").hidden && $("#blends").children.length > 0, "my blends");
assert.ok(sessionStorage.getItem("blendtune.token"), "the token is kept for this tab");
assert.match($("#whoami").textContent, new RegExp(username));

const openBlend = $("#blends").find((n) => n.getAttribute("aria-label") === `Open ${blendName}`);
openBlend.dispatch("click");
const rows = () => $("#playlist").children;
await until(() => !view("room").hidden && rows().length > 0, "the playlist");
await until(() => $("#room-status").textContent.startsWith("live"), "the live room");
assert.match($("#present").textContent, new RegExp(`${username} \\(owner\\) — you`));
assert.match(rows()[0].textContent, / from /);
assert.match($("#share-code").textContent, /Share code: \w{4}-\w{4}/);

// Move the last track up to the top with its ↑ button, one step at a time.
const title = (row) => row.find((n) => n.getAttribute("class") === "title").textContent;
const lastTitle = title(rows().at(-1));
for (let step = rows().length - 1; step > 0; step -= 1) {
  const row = rows().find((r) => title(r) === lastTitle);
  row.find((n) => n.getAttribute("aria-label") === `Move ${lastTitle.split(" — ")[0]} up`).dispatch("click");
  await until(() => title(rows()[step - 1]) === lastTitle, `the move to ${step - 1}`);
}
// React to it through the select.
const select = rows()[0].find((n) => n.tagName === "SELECT");
select.dispatch("change", { target: { value: "🔥" } });
await until(() => rows()[0].textContent.includes("🔥"), "the reaction");
// Focusing a row sends presence (nobody else is here to see it; it must not be an error).
rows()[0].find((n) => n.tagName === "BUTTON").dispatch("focusin");

// The mashup: request a preview; its announcement loads the player.
$("#back").dispatch("click");
await until(() => !view("home").hidden && $("#mashups").children.length > 0, "my mashups");
$("#mashups").find((n) => n.getAttribute("aria-label") === `Open ${mashupName}`).dispatch("click");
await until(
  () => $("#timeline-info").textContent.includes("BPM") && $("#room-status").textContent.startsWith("live"),
  "the mashup room",
);
assert.equal($("#clips").children.length, 0);
fill("#preview-form", { start: "0", duration: "1" }).dispatch("submit");
await until(() => /\/mashups\/.+\/previews\/.+/.test($("#player").src ?? ""), "the preview in the player", 60_000);
assert.ok($("#player").played, "the requested preview starts");
assert.match(log(), /ready/);
assert.doesNotMatch(log(), /rejected|error/i);

$("#logout").dispatch("click");
await until(() => !view("login").hidden, "signed out");
assert.equal(sessionStorage.getItem("blendtune.token"), null);
console.log("ok");
process.exit(0);
