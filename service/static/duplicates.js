// cbir duplicates view (#duplicates): GET /duplicates page by page, one row of thumbnails a group.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const main = document.querySelector("main");
  const view = $("duplicates");
  const list = $("dup-groups");
  const more = $("dup-more");
  const status = $("dup-status");
  const message = $("dup-message");
  const THUMB = 160;
  const LIMIT = 20;
  let cursor = 0;      // next_cursor of the last page; null once every group is shown
  let loading = false;

  function groupRow(group) {
    const row = document.createElement("li");
    row.className = "dup-group";
    const head = document.createElement("p");
    head.className = "muted";
    head.textContent = `${group.members.length} images · best score ${group.score.toFixed(3)}`;
    row.append(head);
    const strip = document.createElement("div");
    strip.className = "dup-strip";
    for (const member of group.members) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = `${member.url}?size=${THUMB}`;
      img.alt = member.path.split(/[\\/]/).pop() || `image ${member.id}`;
      img.loading = "lazy";
      const caption = document.createElement("figcaption");
      caption.textContent = `#${member.id} · ${member.score.toFixed(3)}`;
      figure.append(img, caption);
      strip.append(figure);
    }
    row.append(strip);
    return row;
  }

  async function loadPage() {
    if (loading || cursor === null) return;
    loading = true;
    more.hidden = true;
    status.textContent = "Looking for near-duplicates…";
    try {
      const response = await fetch(`/duplicates?limit=${LIMIT}&cursor=${cursor}`);
      const body = await response.json();
      if (!response.ok) throw new Error(`${body.error}: ${JSON.stringify(body.detail)}`);
      body.groups.forEach((g) => list.append(groupRow(g)));
      cursor = body.next_cursor;
      const shown = list.children.length;
      status.textContent = cursor === null
        ? `${shown} group${shown === 1 ? "" : "s"} of near-duplicates.`
        : `${shown} groups so far (looked up to image #${cursor}).`;
      more.hidden = cursor === null;
    } catch (err) {
      message.textContent = String(err.message || err);
      message.hidden = false;
    } finally {
      loading = false;
    }
  }

  function show() {
    const dup = location.hash === "#duplicates";
    view.hidden = !dup;
    main.hidden = dup;
    $("view-duplicates").toggleAttribute("aria-current", dup);
    $("view-search").toggleAttribute("aria-current", !dup);
    if (dup && list.children.length === 0) loadPage();
  }

  more.addEventListener("click", loadPage);
  window.addEventListener("hashchange", show);
  show();
})();
