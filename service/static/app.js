// cbir search page: a query (an uploaded image, or a stored one: /similar), an optional region
// and filters; ranked results page by page ("More results"), each explainable on request.
// browse.js (the collection, the filter controls) and region.js (the box) use window.cbir.
"use strict";

const $ = (id) => document.getElementById(id);
const fileInput = $("file");
const drop = $("drop");
const preview = $("preview");
const results = $("results");
const message = $("message");
const statusLine = $("status");
const moreButton = $("more");
const THUMB_SIZE = 256;

// The query: {kind: "upload", blob} or {kind: "stored", id, url, path}; its region (x1,y1,x2,y2
// pixels of the upright image) and how many results are shown.
const query = { current: null, box: null, shown: 0 };
let pending = null;    // AbortController of the search in flight
let previewUrl = null; // object URL shown in the preview, revoked when replaced
let generation = 0;    // bumped by every new query; a stale answer is dropped

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

function showQuery(src, label) {
  preview.src = src;
  preview.alt = label;
  preview.hidden = false;
  drop.classList.add("has-image");
  $("choose").textContent = "Choose another image";
  window.cbir.showRegion(src);
  $("browse").hidden = false;
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

// ?folder= and ?tag= (repeated) of the filter controls.
function filterParams() {
  const params = new URLSearchParams();
  const folder = $("folder").value;
  if (folder) params.set("folder", folder);
  for (const option of $("tags").selectedOptions) params.append("tag", option.value);
  return params;
}

// One card: the thumbnail button (search with it) and, for results, "Why?".
function card(hit, label, onClick, why) {
  const li = document.createElement("li");
  li.dataset.id = String(hit.id);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "hit";
  button.title = `${hit.path} — search with this image`;
  button.setAttribute("aria-label", `${label}. Search with it.`);
  button.addEventListener("click", () => onClick(hit));
  const img = document.createElement("img");
  img.src = thumbUrl(hit.url);
  img.alt = basename(hit.path);
  img.loading = "lazy";
  img.decoding = "async";
  button.append(img);
  li.append(button);
  if (why) {
    const explain = document.createElement("button");
    explain.type = "button";
    explain.className = "why";
    explain.textContent = "Why?";
    explain.setAttribute("aria-label", `Why ${basename(hit.path)} matched`);
    explain.addEventListener("click", () => explainHit(hit));
    li.append(explain);
  }
  return { li, button };
}

function resultCard(hit, rank) {
  const score = Number(hit.score).toFixed(3);
  const { li, button } = card(hit, `Rank ${rank}, ${basename(hit.path)}, score ${score}`,
                              searchStored, true);
  const badge = document.createElement("span");
  badge.className = "rank";
  badge.textContent = `#${rank}`;
  const caption = document.createElement("span");
  caption.className = "score";
  caption.textContent = score;
  button.append(badge, caption);
  return li;
}

function searchRequest(k, offset, signal) {
  const params = filterParams();
  params.set("k", String(k));
  if (offset) params.set("offset", String(offset));
  if (query.box) params.set("bbox", query.box.join(","));
  const q = query.current;
  if (q.kind === "stored") return fetch(`/images/${q.id}/similar?${params}`, { signal });
  const form = new FormData();
  form.append("image", q.blob, q.blob.name || "query.jpg");
  return fetch(`/search?${params}`, { method: "POST", body: form, signal });
}

// Search with the current query; ``more``: the next page, appended.
async function runSearch(more = false) {
  if (!query.current) return;
  const mine = ++generation;
  if (pending) pending.abort();
  const controller = new AbortController();
  pending = controller;
  clearError();
  setLoading(true);
  const k = Number($("k").value);
  const offset = more ? query.shown : 0;
  try {
    const response = await searchRequest(k, offset, controller.signal);
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    if (mine !== generation) return;
    const cards = body.results.map((hit, i) => resultCard(hit, offset + i + 1));
    if (more) results.append(...cards);
    else results.replaceChildren(...cards);
    query.shown = offset + body.results.length;
    moreButton.hidden = body.results.length < k;
    const n = query.shown;
    statusLine.textContent = `${n} result${n === 1 ? "" : "s"} in ${body.took_ms.toFixed(1)} ms`;
    $("gallery-section").hidden = true;
  } catch (err) {
    if (err.name === "AbortError") return;
    statusLine.textContent = "";
    moreButton.hidden = true;
    results.replaceChildren(); // the old results belong to another query
    showError(`Search failed: ${err.message}`);
  } finally {
    if (pending === controller) {
      pending = null;
      setLoading(false);
    }
  }
}

function search(blob) {
  query.current = { kind: "upload", blob };
  query.box = null;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(blob);
  showQuery(previewUrl, blob.name ? `Query image: ${blob.name}` : "Query image");
  return runSearch();
}

// A stored image as the query: GET /images/{id}/similar (nothing uploaded or embedded).
function searchStored(hit) {
  query.current = { kind: "stored", id: hit.id, url: hit.url, path: hit.path };
  query.box = null;
  showQuery(hit.url, `Query image: ${basename(hit.path)}`);
  window.scrollTo({ top: 0, behavior: "smooth" });
  return runSearch().then(() => {
    const first = results.querySelector(".hit"); // the clicked button may be gone
    if (first) first.focus({ preventScroll: true });
  });
}

function setBox(box) {
  query.box = box;
  return runSearch();
}

function browse() {
  query.current = null;
  query.box = null;
  results.replaceChildren();
  moreButton.hidden = true;
  statusLine.textContent = "";
  preview.hidden = true;
  drop.classList.remove("has-image");
  $("choose").textContent = "Choose an image";
  $("boxer").hidden = true;
  $("browse").hidden = true;
  $("gallery-section").hidden = false;
}

// The explanation of a result: a PNG of it with the cells behind the similarity highlighted.
async function explainHit(hit) {
  const q = query.current;
  if (!q) return;
  const dialog = $("explain");
  $("explain-text").textContent = "Explaining…";
  if (!dialog.open) dialog.showModal();
  try {
    let response;
    if (q.kind === "stored") {
      response = await fetch(`/images/${hit.id}/explain?query_id=${q.id}`);
    } else {
      const form = new FormData();
      form.append("image", q.blob, q.blob.name || "query.jpg");
      form.append("id", String(hit.id));
      response = await fetch("/explain", { method: "POST", body: form });
    }
    if (!response.ok) throw new Error(await errorText(response));
    const img = $("explain-img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await response.blob());
    $("explain-text").textContent = `${basename(hit.path)}, score ${Number(hit.score).toFixed(3)}:`
      + " the outlined cells hold half of what makes the images alike (whole image, without αQE).";
  } catch (err) {
    $("explain-text").textContent = `Could not explain: ${err.message}`;
  }
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
    window.cbir.ready();
  } catch (err) {
    $("stats").textContent = "";
    showError(`Could not read the index statistics: ${err.message}`);
  }
}

window.cbir = {
  basename, browse, card, errorText, filterParams, runSearch, searchStored, setBox,
  hasQuery: () => query.current !== null,
  ready: () => {}, showRegion: () => {}, // set by browse.js and region.js
};

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
moreButton.addEventListener("click", () => runSearch(true));
$("k").addEventListener("change", () => runSearch());
$("browse").addEventListener("click", browse);

// The other scripts are deferred too: they run after this one, before DOMContentLoaded.
document.addEventListener("DOMContentLoaded", loadStats);
