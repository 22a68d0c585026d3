// The Vectors view: nearest neighbours, analogies, the odd one out, and a 2-D map of words
// (PCA or t-SNE) that zooms, pans, finds a word and shows a clicked word's neighbours.
// Words reach the page through textContent and the canvas's fillText only, never as HTML.

const FONT = '12px system-ui, "Noto Sans", "WenQuanYi Micro Hei", sans-serif';
const BOLD = `bold ${FONT}`;
const LABEL_HEIGHT = 14;
const NEIGHBOURS = 10;

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

function labelled(text, control, wide = false) {
  return element("label", { className: wide ? "wide" : "" }, [text, control]);
}

function scoreRows(table, rows, emphasised = null) {
  table.replaceChildren(...rows.map(([word, score]) => {
    const tr = element("tr", { className: word === emphasised ? "chosen" : "" }, [
      element("td", { text: word }), element("td", { className: "num", text: score.toFixed(3) })]);
    return tr;
  }));
}

function fileName(disposition, fallback) {
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (encoded) return decodeURIComponent(encoded[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

// Fetch a download from the API and save it under the name the server gives: a 4xx then shows
// its one-line error on the page instead of being saved as a file.
export async function download(path, params, fallback = "download") {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  const response = await fetch(url);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || response.statusText);
  }
  const blob = await response.blob();
  const link = element("a", { href: URL.createObjectURL(blob),
    download: fileName(response.headers.get("content-disposition"), fallback) });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  return link.download;
}

// -- the map ----------------------------------------------------------------------------------

class WordMap {
  constructor(canvas, onPick) {
    this.canvas = canvas;
    this.onPick = onPick;
    this.words = [];
    this.points = [];
    this.found = null; // the word the search box found
    this.picked = null; // the clicked word
    this.neighbours = new Set();
    this.zoom = 1;
    this.pan = [0, 0];
    this.listen();
    // For tests and for people at the console: where a word is drawn, in CSS pixels.
    canvas.positionOf = (word) => {
      const i = this.words.indexOf(word);
      return i < 0 ? null : this.toScreen(this.points[i]);
    };
  }

  show(words, points) {
    this.words = words;
    this.points = points;
    this.found = this.picked = null;
    this.neighbours = new Set();
    this.zoom = 1;
    this.pan = [0, 0];
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    this.centre = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
    this.spread = [Math.max(...xs) - Math.min(...xs) || 1, Math.max(...ys) - Math.min(...ys) || 1];
    this.draw();
  }

  size() {
    return [this.canvas.clientWidth, this.canvas.clientHeight];
  }

  toScreen([x, y]) {
    const [w, h] = this.size();
    // Fit the words into the canvas with room on the right for the labels.
    const base = Math.min((w - 120) / this.spread[0], (h - 40) / this.spread[1]);
    const s = base * this.zoom;
    return [w / 2 - 40 + (x - this.centre[0]) * s + this.pan[0], h / 2 - (y - this.centre[1]) * s + this.pan[1]];
  }

  nearest(mx, my, radius = 10) {
    let best = -1, bestDistance = radius * radius;
    this.points.forEach((p, i) => {
      const [x, y] = this.toScreen(p);
      let d = (mx - x) ** 2 + (my - y) ** 2;
      // A word is also picked by its label, where one is drawn, but a dot under the pointer wins.
      const box = this.shown && this.shown[i];
      if (box && mx >= box[0] && mx <= box[2] && my >= box[1] && my <= box[3]) d = Math.min(d, (radius * 0.6) ** 2);
      if (d < bestDistance) { best = i; bestDistance = d; }
    });
    return best;
  }

  draw() {
    const canvas = this.canvas;
    const [w, h] = this.size();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    ctx.font = FONT;
    ctx.textBaseline = "middle";
    this.labelWidths = this.words.map((word) => ctx.measureText(word).width);
    const screen = this.points.map((p) => this.toScreen(p));
    const special = (word) => word === this.found || word === this.picked || this.neighbours.has(word);
    // Labels go where they overlap no other: the highlighted words first, then by frequency
    // (the order the server sends), so zooming in reveals more of them.
    const placed = new Grid();
    const order = this.words.map((_, i) => i);
    const rank = (word) => (word === this.picked ? 3 : word === this.found ? 2 : this.neighbours.has(word) ? 1 : 0);
    order.sort((a, b) => rank(this.words[b]) - rank(this.words[a]));
    let labels = 0, visible = 0;
    const shown = new Array(this.words.length).fill(null); // each label's box, where one is drawn
    for (const i of order) {
      const [x, y] = screen[i];
      if (x < 0 || y < 0 || x > w || y > h) continue;
      visible += 1;
      const width = (special(this.words[i]) ? 1.15 : 1) * this.labelWidths[i] + 4;
      // Right of the dot, else left, above or below; a highlighted word takes the right
      // side when all four are taken, since it must be read.
      const spots = [[x + 4, y - LABEL_HEIGHT / 2], [x - 4 - width, y - LABEL_HEIGHT / 2],
        [x - width / 2, y - 4 - LABEL_HEIGHT], [x - width / 2, y + 4]];
      if (special(this.words[i])) { // further out, rather than over another highlighted label
        for (const k of [1, -1, 2, -2]) spots.push([x + 4, y - LABEL_HEIGHT / 2 + k * (LABEL_HEIGHT + 2)]);
      }
      const boxes = spots.map(([x0, y0]) => [x0, y0, x0 + width, y0 + LABEL_HEIGHT]);
      let box = boxes.find((b) => !placed.overlaps(b)) || null;
      if (!box && special(this.words[i])) { // where it covers the least of the others
        box = boxes.reduce((best, b) => (placed.overlap(b) < placed.overlap(best) ? b : best));
      }
      if (box) {
        placed.add(box);
        shown[i] = box;
        labels += 1;
      }
    }
    for (let i = 0; i < this.words.length; i++) {
      const [x, y] = screen[i];
      ctx.fillStyle = special(this.words[i]) ? this.colour(this.words[i]) : "#8c959f";
      ctx.beginPath();
      ctx.arc(x, y, special(this.words[i]) ? 4 : 2.5, 0, 2 * Math.PI);
      ctx.fill();
      if (shown[i] && !special(this.words[i])) {
        ctx.fillStyle = "#1f2328";
        ctx.fillText(this.words[i], shown[i][0] + 2, shown[i][1] + LABEL_HEIGHT / 2);
      }
    }
    // Highlighted words last (the clicked one on top), on a pale box, so nothing covers them.
    ctx.font = BOLD;
    for (const i of [...order].reverse()) {
      const word = this.words[i];
      if (!special(word) || !shown[i]) continue;
      const [x0, y0, x1] = shown[i];
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(x0, y0, x1 - x0, LABEL_HEIGHT);
      ctx.fillStyle = this.colour(word);
      ctx.fillText(word, x0 + 2, y0 + LABEL_HEIGHT / 2);
    }
    this.shown = shown;
    canvas.dataset.labels = String(labels);
    canvas.dataset.visible = String(visible);
    canvas.dataset.highlighted = String(this.words.filter(special).length);
  }

  colour(word) {
    if (word === this.picked) return "#0969da";
    if (word === this.found) return "#cf222e";
    return "#bc4c00"; // a neighbour of the picked word
  }

  find(query) {
    const q = query.trim();
    this.found = null;
    if (q) {
      this.found = this.words.find((w) => w === q) ?? this.words.find((w) => w.toLowerCase().startsWith(q.toLowerCase())) ?? null;
    }
    if (this.found) {
      // Bring the word into view when it is outside.
      const [x, y] = this.toScreen(this.points[this.words.indexOf(this.found)]);
      const [w, h] = this.size();
      if (x < 20 || y < 20 || x > w - 80 || y > h - 20) {
        this.pan[0] += w / 2 - x;
        this.pan[1] += h / 2 - y;
      }
    }
    this.draw();
    return this.found;
  }

  highlight(picked, neighbours) {
    this.picked = picked;
    this.neighbours = new Set(neighbours);
    this.draw();
  }

  listen() {
    const canvas = this.canvas;
    let drag = null;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const factor = Math.exp(-e.deltaY * 0.0015);
      const [w, h] = this.size();
      const cx = w / 2 - 40, cy = h / 2;
      const zoom = Math.max(0.2, Math.min(200, this.zoom * factor));
      const f = zoom / this.zoom;
      this.pan = [e.offsetX - cx - (e.offsetX - cx - this.pan[0]) * f, e.offsetY - cy - (e.offsetY - cy - this.pan[1]) * f];
      this.zoom = zoom;
      this.draw();
    }, { passive: false });
    canvas.addEventListener("mousedown", (e) => {
      drag = { x: e.offsetX, y: e.offsetY, pan: [...this.pan], moved: false };
    });
    canvas.addEventListener("mousemove", (e) => {
      if (drag) {
        const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
        if (drag.moved) {
          this.pan = [drag.pan[0] + dx, drag.pan[1] + dy];
          this.draw();
        }
      } else {
        canvas.classList.toggle("over-word", this.nearest(e.offsetX, e.offsetY) >= 0);
      }
    });
    const end = (e) => {
      if (drag && !drag.moved && e.type === "mouseup") {
        const i = this.nearest(e.offsetX, e.offsetY);
        if (i >= 0) this.onPick(this.words[i]);
      }
      drag = null;
    };
    canvas.addEventListener("mouseup", end);
    canvas.addEventListener("mouseleave", end);
  }
}

// Boxes already taken by labels, bucketed by 64-pixel cells so that a thousand labels place fast.
class Grid {
  constructor() { this.cells = new Map(); }

  keys([x0, y0, x1, y1]) {
    const keys = [];
    for (let gx = Math.floor(x0 / 64); gx <= Math.floor(x1 / 64); gx++) {
      for (let gy = Math.floor(y0 / 64); gy <= Math.floor(y1 / 64); gy++) keys.push(`${gx},${gy}`);
    }
    return keys;
  }

  overlaps(box) {
    return this.keys(box).some((key) => (this.cells.get(key) || []).some((b) =>
      b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3]));
  }

  overlap(box) {
    let area = 0;
    for (const key of this.keys(box)) {
      for (const b of this.cells.get(key) || []) {
        area += Math.max(0, Math.min(b[2], box[2]) - Math.max(b[0], box[0])) * Math.max(0, Math.min(b[3], box[3]) - Math.max(b[1], box[1]));
      }
    }
    return area;
  }

  add(box) {
    for (const key of this.keys(box)) {
      if (!this.cells.has(key)) this.cells.set(key, []);
      this.cells.get(key).push(box);
    }
  }
}

// -- the view ---------------------------------------------------------------------------------

export async function setupVectors({ api, status, guarded, showView }) {
  const list = await api("/api/vectors", {});
  const tab = element("button", { type: "button", className: "tab", text: "Vectors", dataset: { view: "vectors" } });
  tab.hidden = list.length === 0;
  document.querySelector("header nav").append(tab);

  const name = element("select", { id: "vec-name" }, list.map((v) => new Option(v.name, v.name)));
  const info = element("span", { id: "vec-info", className: "hint" });
  const word = element("input", { id: "vec-word", placeholder: "a word" });
  const nearGo = element("button", { type: "button", id: "vec-near-go", text: "Neighbours" });
  const nearRows = element("table", { id: "vec-near-rows" });
  const [a, b, c] = ["man", "king", "woman"].map((hint, k) => element("input", { id: `vec-${"abc"[k]}`, placeholder: hint }));
  const analogyGo = element("button", { type: "button", id: "vec-analogy-go", text: "Solve" });
  const analogyRows = element("table", { id: "vec-analogy-rows" });
  const odd = element("input", { id: "vec-odd", placeholder: "breakfast, lunch, dinner, car" });
  const oddGo = element("button", { type: "button", id: "vec-odd-go", text: "Odd one out" });
  const oddRows = element("table", { id: "vec-odd-rows" });
  const mapWords = element("input", { id: "map-words", placeholder: "the most frequent words, or: king, queen, …" });
  const top = element("input", { id: "map-top", type: "number", min: 2, max: 1000, value: 300 });
  const method = element("select", { id: "map-method" }, [new Option("PCA", "pca"), new Option("t-SNE", "tsne")]);
  const mapGo = element("button", { type: "button", id: "map-go", text: "Draw map" });
  const search = element("input", { id: "map-search", type: "search", placeholder: "find a word" });
  const exportGo = element("button", { type: "button", id: "vec-export", text: "Export for the Projector" });
  const canvas = element("canvas", { id: "map-canvas" });
  const picked = element("h2", { id: "map-picked", text: "Neighbours" });
  const pickedRows = element("table", { id: "map-neighbours" });
  const pickedHint = element("p", { className: "hint", text: "Click a word on the map to see its nearest neighbours here and on the map." });

  const section = element("section", { id: "vectors", className: "view", hidden: true }, [
    element("div", { className: "controls" }, [labelled("Vectors", name), info, exportGo]),
    element("div", { className: "vec-queries" }, [
      element("div", { className: "vec-query" }, [element("h2", { text: "Nearest neighbours" }),
        element("div", { className: "controls" }, [labelled("Word", word), nearGo]), nearRows]),
      element("div", { className: "vec-query" }, [element("h2", { text: "Analogy  a : b :: c : ?" }),
        element("div", { className: "controls" }, [labelled("a", a), labelled("b", b), labelled("c", c), analogyGo]), analogyRows]),
      element("div", { className: "vec-query" }, [element("h2", { text: "Doesn't match" }),
        element("div", { className: "controls" }, [labelled("Words", odd, true), oddGo]), oddRows]),
    ]),
    element("div", { className: "controls" }, [labelled("Map of", mapWords, true), labelled("Top", top),
      labelled("Method", method), mapGo, labelled("Find", search)]),
    element("p", { className: "hint", text: "Wheel: zoom. Drag: pan. Click a word: its nearest neighbours." }),
    element("div", { className: "split" }, [
      element("div", { id: "map-box" }, [canvas]),
      element("aside", { id: "map-side" }, [picked, pickedHint, pickedRows]),
    ]),
  ]);
  document.querySelector("main").append(section);

  const params = (extra) => ({ vectors: name.value, ...extra });
  const wordMap = new WordMap(canvas, (chosen) => guarded(async () => {
    const near = await api("/api/vectors/neighbours", params({ word: chosen, topn: NEIGHBOURS }));
    const onMap = near.filter(([w]) => wordMap.words.includes(w)).map(([w]) => w);
    wordMap.highlight(chosen, onMap);
    picked.textContent = `Neighbours of ${chosen}`;
    pickedHint.hidden = true;
    scoreRows(pickedRows, near);
    for (const [k, tr] of [...pickedRows.rows].entries()) {
      if (onMap.includes(near[k][0])) tr.className = "on-map";
    }
    status(`${chosen}: ${near.length} nearest neighbours, ${onMap.length} of them on the map`);
  })());

  function showInfo() {
    const v = list.find((x) => x.name === name.value);
    if (v) info.textContent = `${v.words.toLocaleString()} words × ${v.dim} dimensions`;
  }

  async function drawMap() {
    status(method.value === "tsne" ? "computing the t-SNE map…" : "computing the map…");
    const result = await api("/api/vectors/map", params(mapWords.value.trim()
      ? { words: mapWords.value, method: method.value } : { top: top.value, method: method.value }));
    wordMap.show(result.words, result.points);
    pickedRows.replaceChildren();
    picked.textContent = "Neighbours";
    pickedHint.hidden = false;
    if (search.value) wordMap.find(search.value);
    const share = result.share ? `, the axes explain ${(100 * (result.share[0] + result.share[1])).toFixed(1)}% of the variance` : "";
    status(`${result.words.length} words by ${result.method === "tsne" ? "t-SNE" : "PCA"}${share}`);
  }

  nearGo.addEventListener("click", guarded(async () => {
    scoreRows(nearRows, await api("/api/vectors/neighbours", params({ word: word.value.trim() })));
    status("");
  }));
  analogyGo.addEventListener("click", guarded(async () => {
    scoreRows(analogyRows, await api("/api/vectors/analogy", params({ a: a.value.trim(), b: b.value.trim(), c: c.value.trim(), topn: 5 })));
    status("");
  }));
  oddGo.addEventListener("click", guarded(async () => {
    const result = await api("/api/vectors/doesnt_match", params({ words: odd.value }));
    scoreRows(oddRows, result.scores, result.word);
    status(`${result.word} does not match the others`);
  }));
  mapGo.addEventListener("click", guarded(drawMap));
  search.addEventListener("input", () => {
    if (!search.value.trim()) { wordMap.find(""); return; }
    const found = wordMap.find(search.value);
    status(found ? `found ${found}` : `${search.value.trim()} is not on the map`, !found);
  });
  exportGo.addEventListener("click", guarded(async () => {
    status("exporting…");
    const names = [];
    for (const part of ["vectors", "metadata"]) {
      names.push(await download("/api/export/projector", params({ part }), `${part}.tsv`));
    }
    status(`saved ${names.join(" and ")}: load them at projector.tensorflow.org (Load → Choose file)`);
  }));
  name.addEventListener("change", () => { showInfo(); guarded(drawMap)(); });
  window.addEventListener("resize", () => { if (!section.hidden && wordMap.words.length) wordMap.draw(); });
  for (const input of [word]) input.addEventListener("keydown", (e) => { if (e.key === "Enter") nearGo.click(); });

  let drawn = false;
  tab.addEventListener("click", () => {
    showView("vectors");
    if (!drawn) { drawn = true; guarded(drawMap)(); } // the first visit draws the default map
  });
  showInfo();
}
