// cbir collection view: the stored images page by page (GET /images, with the filters), and the
// filter controls, filled from GET /folders and GET /tags. A thumbnail click searches with it.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const gallery = $("gallery");
  const more = $("gallery-more");
  const status = $("gallery-status");
  const PAGE = 24;
  let cursor = 0;     // next_cursor of the last page; null once every image is shown
  let mine = 0;       // bumped by every reload: a stale page is dropped

  async function loadPage(reset) {
    const cbir = window.cbir;
    if (reset) {
      cursor = 0;
      gallery.replaceChildren();
    }
    if (cursor === null) return;
    const ticket = ++mine;
    const params = cbir.filterParams();
    params.set("limit", String(PAGE));
    params.set("cursor", String(cursor));
    status.textContent = "Loading…";
    try {
      const response = await fetch(`/images?${params}`);
      if (!response.ok) throw new Error(await cbir.errorText(response));
      const body = await response.json();
      if (ticket !== mine) return;
      gallery.append(...body.images.map((record) => cbir.card(
        record, cbir.basename(record.path), cbir.searchStored, false).li));
      cursor = body.next_cursor;
      more.hidden = cursor === null;
      const n = gallery.children.length;
      status.textContent = n ? `${n} image${n === 1 ? "" : "s"}${cursor === null ? "" : " so far"}`
        : "No image matches the filters.";
    } catch (err) {
      status.textContent = `Could not list the collection: ${err.message}`;
    }
  }

  function fill(select, entries, keep) {
    const chosen = new Set(Array.from(select.selectedOptions, (o) => o.value));
    select.replaceChildren(...keep, ...entries.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      option.selected = chosen.has(value);
      return option;
    }));
  }

  async function loadFilters() {
    try {
      const [folders, tags] = await Promise.all([fetch("/folders"), fetch("/tags")]);
      if (folders.ok) {
        const body = await folders.json();
        const first = $("folder").options[0];
        fill($("folder"), body.folders.filter((f) => f.folder !== ".")
          .map((f) => [f.folder, `${f.folder} (${f.under})`]), [first]);
      }
      if (tags.ok) {
        const body = await tags.json();
        fill($("tags"), body.tags.map((t) => [t.tag, `${t.tag} (${t.images})`]), []);
        $("tag-filter").hidden = body.tags.length === 0;
      }
    } catch (_) { /* the filters stay as they are */ }
  }

  function onFilter() {
    if (window.cbir.hasQuery()) window.cbir.runSearch();
    else loadPage(true);
  }

  $("folder").addEventListener("change", onFilter);
  $("tags").addEventListener("change", onFilter);
  more.addEventListener("click", () => loadPage(false));
  $("browse").addEventListener("click", () => {
    loadFilters();
    loadPage(true);
  });
  window.cbir.ready = () => {
    loadFilters();
    loadPage(true);
  };
})();
