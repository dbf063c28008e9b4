// My uploads: pick or drop audio files, watch each upload's progress, then its storage and
// analysis status live (polled while something is still in progress), retry a failed one,
// delete one (docs/catalog.md, "Uploads").

import { $, action, api, bytes, clock, describe, el, relativeTime, toast, upload } from "./dom.js";

let pollTimer = null;
let active = false;

export function setupLibrary() {
  const input = $("#upload-files");
  input.addEventListener("change", () => {
    sendFiles([...input.files]);
    input.value = "";
  });
  const zone = $("#dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    sendFiles([...event.dataTransfer.files]);
  });
}

async function sendFiles(files) {
  await Promise.all(files.map(sendFile));
  if (active) await loadLibrary();
}

async function sendFile(file) {
  const bar = el("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name}` });
  const line = el("li", {}, el("span", {}, `${file.name} `), bar);
  $("#upload-progress").append(line);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    await upload("/uploads", form, (fraction) => {
      bar.value = fraction;
    });
    line.remove();
    toast(`${file.name} uploaded.`);
  } catch (error) {
    bar.remove();
    line.classList.add("error");
    line.append(el("span", { role: "alert" }, `could not be uploaded: ${describe(error)}`));
    setTimeout(() => line.remove(), 15_000);
  }
}

export function stopLibrary() {
  active = false;
  clearTimeout(pollTimer);
  pollTimer = null;
}

// Words for the two status machines (upload, then analysis).
export function uploadState(u) {
  if (u.upload_status === "failed") return { text: "Upload failed", failed: true };
  if (u.upload_status !== "uploaded") return { text: u.retry_count ? "Storing (retrying)…" : "Storing…", busy: true };
  if (u.analysis_status === "failed") {
    return { text: `Analysis failed: ${u.analysis?.error ?? "unknown reason"}`, failed: true };
  }
  if (u.analysis_status !== "completed") return { text: "Analysing…", busy: true };
  return { text: u.has_stems ? "Ready, with stems" : "Ready", ready: true };
}

export async function loadLibrary() {
  active = true;
  clearTimeout(pollTimer);
  const page = await api("GET", "/uploads?limit=100");
  const uploads = page.items;
  $("#uploads").replaceChildren(
    ...uploads.map((u) => {
      const state = uploadState(u);
      return el(
        "tr",
        { dataset: { id: u.id } },
        el(
          "th",
          { scope: "row" },
          u.original_filename,
          el("span", { class: "hint" }, ` ${bytes(u.file_size_bytes)}, added ${relativeTime(u.created_at)}`),
        ),
        el("td", { class: state.failed ? "error" : state.ready ? "ok" : "busy" }, state.text),
        el("td", {}, u.bpm ? `${Math.round(u.bpm)} BPM` : "–"),
        el("td", {}, u.key_signature ?? "–"),
        el("td", {}, clock(u.duration_seconds)),
        el(
          "td",
          {},
          state.failed && u.upload_status === "failed" ? retryButton(u) : "",
          el(
            "button",
            {
              type: "button",
              class: "small",
              "aria-label": `Delete ${u.original_filename}`,
              onclick: action(async () => {
                if (!confirm(`Delete ${u.original_filename}? It also leaves the mashups it is in.`)) return;
                await api("DELETE", `/uploads/${u.id}`);
                toast(`${u.original_filename} deleted.`);
                await loadLibrary();
              }),
            },
            "Delete",
          ),
        ),
      );
    }),
  );
  $("#no-uploads").hidden = uploads.length > 0;
  $("#uploads-table").hidden = uploads.length === 0;
  // Poll while something is on its way (a second apart; stops when everything is settled).
  if (active && uploads.some((u) => uploadState(u).busy)) {
    pollTimer = setTimeout(() => loadLibrary().catch(() => {}), 1000);
  }
  return uploads;
}

function retryButton(u) {
  return el(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": `Retry ${u.original_filename}`,
      onclick: action(async () => {
        await api("POST", `/uploads/${u.id}/retry`);
        await loadLibrary();
      }),
    },
    "Retry",
  );
}
