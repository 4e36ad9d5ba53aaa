// cbir region box: drag on the query image (#query-full) to search only that region (bbox in
// pixels of the upright image, as the browser shows it); "Whole image" searches all of it again.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const image = $("query-full");
  const box = $("box");
  const clear = $("clear-box");
  const MIN_PIXELS = 4; // a smaller drag is a click, not a box
  const MAX_HEIGHT = 256; // CSS pixels
  let start = null;     // where the drag began, in CSS pixels of the image

  function local(event) {
    const rect = image.getBoundingClientRect();
    return [Math.min(Math.max(event.clientX - rect.left, 0), rect.width),
            Math.min(Math.max(event.clientY - rect.top, 0), rect.height)];
  }

  function draw(a, b) {
    box.style.left = `${Math.min(a[0], b[0])}px`;
    box.style.top = `${Math.min(a[1], b[1])}px`;
    box.style.width = `${Math.abs(a[0] - b[0])}px`;
    box.style.height = `${Math.abs(a[1] - b[1])}px`;
    box.hidden = false;
  }

  // CSS pixels of the shown image -> pixels of the image itself: x1,y1,x2,y2 (x2, y2 excluded).
  function pixels(a, b) {
    const rect = image.getBoundingClientRect();
    const sx = image.naturalWidth / rect.width;
    const sy = image.naturalHeight / rect.height;
    const x1 = Math.floor(Math.min(a[0], b[0]) * sx);
    const y1 = Math.floor(Math.min(a[1], b[1]) * sy);
    const x2 = Math.min(image.naturalWidth, Math.ceil(Math.max(a[0], b[0]) * sx));
    const y2 = Math.min(image.naturalHeight, Math.ceil(Math.max(a[1], b[1]) * sy));
    return [x1, y1, x2, y2];
  }

  // Shown as large as fits (small images scaled up, aspect kept): easier to draw on.
  function fit() {
    if (!image.naturalWidth) return;
    const room = $("boxer").clientWidth || image.naturalWidth;
    const scale = Math.min(room / image.naturalWidth, MAX_HEIGHT / image.naturalHeight);
    image.style.width = `${Math.round(image.naturalWidth * scale)}px`;
    image.style.height = `${Math.round(image.naturalHeight * scale)}px`;
  }
  image.addEventListener("load", fit);
  window.addEventListener("resize", fit);

  image.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    image.setPointerCapture(event.pointerId);
    start = local(event);
  });
  image.addEventListener("pointermove", (event) => {
    if (start) draw(start, local(event));
  });
  image.addEventListener("pointerup", (event) => {
    if (!start) return;
    const end = local(event);
    const from = start;
    start = null;
    if (Math.abs(end[0] - from[0]) < MIN_PIXELS || Math.abs(end[1] - from[1]) < MIN_PIXELS) {
      box.hidden = true;
      return;
    }
    draw(from, end);
    clear.hidden = false;
    window.cbir.setBox(pixels(from, end));
  });
  clear.addEventListener("click", () => {
    box.hidden = true;
    clear.hidden = true;
    window.cbir.setBox(null);
  });
  window.cbir.showRegion = (src) => {
    image.src = src;
    box.hidden = true;
    clear.hidden = true;
    $("boxer").hidden = false;
  };
})();
