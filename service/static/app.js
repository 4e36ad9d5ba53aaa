// cbir search page: pick, drop or paste an image, POST it to /search, show the ranked results.
"use strict";

const $ = (id) => document.getElementById(id);
const fileInput = $("file");
const drop = $("drop");
const preview = $("preview");
const results = $("results");
const message = $("message");
const statusLine = $("status");
const THUMB_SIZE = 256;

let pending = null;    // AbortController of the search in flight
let previewUrl = null; // object URL shown in the preview, revoked when replaced
let generation = 0;    // bumped by every new query; a stale result click then gives up

function showError(text) {
  message.textContent = text;
  message.hidden = false;
}

function clearError() {
  message.hidden = true;
  message.textContent = "";
}

function setLoading(on) {
  document.body.classList.toggle("loading", on);
  results.setAttribute("aria-busy", String(on));
  if (on) statusLine.textContent = "Searching…";
}

// "CODE: detail" from a JSON error body, or the HTTP status when the body is not JSON.
async function errorText(response) {
  try {
    const body = await response.json();
    if (body && (body.error || body.detail)) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      return [body.error, detail].filter(Boolean).join(": ");
    }
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

function showPreview(blob) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(blob);
  preview.src = previewUrl;
  preview.alt = blob.name ? `Query image: ${blob.name}` : "Query image";
  preview.hidden = false;
  drop.classList.add("has-image");
  $("choose").textContent = "Choose another image";
}

// A query the browser cannot display (the server will say why) leaves no broken-image icon.
preview.addEventListener("error", () => {
  preview.hidden = true;
  drop.classList.remove("has-image");
});

function thumbUrl(url) {
  const u = new URL(url, location.href);
  u.searchParams.set("size", String(THUMB_SIZE));
  return u.pathname + u.search;
}

function basename(path) {
  return String(path).split(/[\\/]/).pop();
}

function renderResults(items) {
  results.replaceChildren(...items.map((hit, i) => {
    const li = document.createElement("li");
    li.dataset.id = String(hit.id);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "hit";
    const name = basename(hit.path);
    const score = Number(hit.score).toFixed(3);
    button.title = `${hit.path} — search with this image`;
    button.setAttribute("aria-label", `Rank ${i + 1}, ${name}, score ${score}. Search with it.`);
    button.addEventListener("click", () => searchWithResult(hit));
    const img = document.createElement("img");
    img.src = thumbUrl(hit.url);
    img.alt = name;
    img.loading = "lazy";
    img.decoding = "async";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `#${i + 1}`;
    const caption = document.createElement("span");
    caption.className = "score";
    caption.textContent = score;
    button.append(img, rank, caption);
    li.append(button);
    return li;
  }));
}

async function search(blob) {
  generation += 1;
  if (pending) pending.abort();
  const controller = new AbortController();
  pending = controller;
  clearError();
  showPreview(blob);
  setLoading(true);
  const form = new FormData();
  form.append("image", blob, blob.name || "query.jpg");
  try {
    const k = encodeURIComponent($("k").value);
    const response = await fetch(`/search?k=${k}`, {
      method: "POST", body: form, signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    renderResults(body.results);
    const n = body.results.length;
    statusLine.textContent = `${n} result${n === 1 ? "" : "s"} in ${body.took_ms.toFixed(1)} ms`;
  } catch (err) {
    if (err.name === "AbortError") return;
    statusLine.textContent = "";
    results.replaceChildren(); // the old results belong to another query
    showError(`Search failed: ${err.message}`);
  } finally {
    if (pending === controller) {
      pending = null;
      setLoading(false);
    }
  }
}

async function searchWithResult(hit) {
  const mine = ++generation;
  clearError();
  setLoading(true);
  window.scrollTo({ top: 0, behavior: "smooth" });
  try {
    const response = await fetch(hit.url);
    if (!response.ok) throw new Error(await errorText(response));
    const blob = await response.blob();
    if (mine !== generation) return; // another query started meanwhile
    await search(new File([blob], basename(hit.path), { type: blob.type || "image/jpeg" }));
  } catch (err) {
    if (mine !== generation) return;
    setLoading(false);
    statusLine.textContent = "";
    showError(`Could not load image ${hit.id}: ${err.message}`);
    return;
  }
  // The clicked button is gone; keyboard users go on from the new best result.
  const first = results.querySelector(".hit");
  if (first) first.focus({ preventScroll: true });
}

function firstImage(files) {
  // An unknown type (empty string) goes to the server, which says whether it can decode it.
  return Array.from(files || []).find((f) => !f.type || f.type.startsWith("image/"));
}

function onFiles(files) {
  const file = firstImage(files);
  if (file) search(file);
  else if (files && files.length) showError("That is not an image file.");
}

// While the index is still loading the service answers 503 with Retry-After: ask again then.
async function loadStats() {
  try {
    const response = await fetch("/stats");
    if (response.status === 503) {
      $("stats").textContent = "Index loading…";
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      setTimeout(loadStats, Math.min(seconds, 10) * 1000);
      return;
    }
    if (!response.ok) throw new Error(await errorText(response));
    const stats = await response.json();
    const m = stats.manifest || {};
    const dim = stats.dim ?? stats.dimension ?? m.dim;
    const parts = [`${stats.count} images`, m.backbone, m.pooling, dim && `d=${dim}`];
    $("stats").textContent = parts.filter(Boolean).join(" · ");
    $("banner").hidden = !stats.random_weights;
  } catch (err) {
    $("stats").textContent = "";
    showError(`Could not read the index statistics: ${err.message}`);
  }
}

fileInput.addEventListener("change", () => {
  onFiles(fileInput.files);
  fileInput.value = ""; // choosing the same file again fires change again
});
["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => {
  e.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => {
  drop.classList.remove("over");
}));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  onFiles(e.dataTransfer.files);
});
// A file dropped outside the zone must not navigate away from the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
document.addEventListener("paste", (e) => {
  const file = firstImage(e.clipboardData && e.clipboardData.files);
  if (file) {
    e.preventDefault();
    search(file);
  }
});

loadStats();
