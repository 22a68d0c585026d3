// The studio's page. Every piece of model output or user text reaches the page through
// textContent (never innerHTML), so a vocabulary token that looks like HTML stays text.

import { initMemory } from "./memory.js";
import { initTraining } from "./training.js";
import { initUnits, selectUnit, showRead } from "./units.js";
import { download, setupVectors } from "./vectors.js";

const $ = (id) => document.getElementById(id);
const ROW = 14; // heat map row height in pixels, the same as the token labels' (style.css)
const MAX_CANVAS = 32000; // pixels: Chromium draws nothing on a taller canvas
let models = [];
let source = null; // the running generation's EventSource
let settings = {}; // the settings of the text in #output, which a branch keeps
const tokenEvents = new WeakMap(); // each token span of #output -> the event it came from

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

async function api(path, params) {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function bar(fraction) {
  const td = document.createElement("td");
  td.className = "barcell";
  const div = document.createElement("div");
  div.className = "bar";
  div.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  td.append(div);
  return td;
}

function currentModel() {
  return models.find((m) => m.name === $("model").value);
}

function showModel() {
  const m = currentModel();
  if (!m) return;
  $("model-info").textContent =
    `${m.level} level, ${m.mode} mode, ${m.layers} × ${m.hidden_size} ${m.cell}, ${m.vocab_size} tokens`;
  // Value = label (layers counted from 1): with value k under label k + 1, a choice by text
  // ("2") could pick the wrong layer; the API counts from 0 (read() subtracts one).
  $("layer").replaceChildren(...Array.from({ length: m.layers }, (_, k) => new Option(String(k + 1))));
}

// -- Write ------------------------------------------------------------------------------------

function shade(prob) {
  // Probable tokens pale, surprising ones strong: the eye goes to where the model hesitated.
  return `rgba(255, 140, 0, ${(0.08 + 0.7 * (1 - prob)).toFixed(3)})`;
}

function showDistribution(span, event) {
  for (const other of document.querySelectorAll(".token.selected")) other.classList.remove("selected");
  span.classList.add("selected");
  const rows = event.top.map(([token, prob], k) => {
    const tr = document.createElement("tr");
    tr.className = token === event.token ? "candidate chosen" : "candidate";
    tr.title = "continue the text from here with this token";
    tr.append(cell(token === "\n" ? "⏎" : token), bar(prob), cell(prob.toFixed(3), "num"));
    tr.addEventListener("click", () => branch(span, event, k));
    return tr;
  });
  $("top").replaceChildren(...rows);
}

function stop() {
  if (source) source.close();
  source = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

function tokenSpan(event, piece, className = "token") {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = piece;
  span.title = `${event.token}  p = ${event.prob.toFixed(3)}`;
  span.style.backgroundColor = shade(event.prob);
  span.addEventListener("click", () => showDistribution(span, event));
  tokenEvents.set(span, event);
  return span;
}

function stream(params, firstEvent) {
  // One generation into #output, after what is there; `firstEvent` is what a branch's
  // leading piece (its chosen token) shows when clicked.
  const url = new URL("/api/generate", location.href);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  $("start").disabled = true;
  $("stop").disabled = false;
  status("generating…");
  let count = 0;
  source = new EventSource(url);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.error) {
      status(event.error, true);
      stop();
    } else if (event.done) {
      status(`${event.tokens} tokens, seed ${event.seed}${firstEvent ? ", after the branch" : ""}`);
      stop();
    } else if (event.branch !== undefined) {
      $("output").append(tokenSpan(firstEvent, event.piece, "token branch"));
    } else {
      $("output").append(tokenSpan(event, event.piece));
      count += 1;
    }
  };
  source.onerror = () => {
    // The server refused (a bad setting or too busy) or went away.
    status(count ? "the generation stopped: the server went away" : "the server refused this generation: check the settings", true);
    stop();
  };
}

function start() {
  stop();
  const params = { model: $("model").value, prime: $("prime").value };
  for (const name of ["length", "temperature", "top_k", "top_p", "seed", "form", "lines", "acrostic", "script"]) {
    if ($(name).value !== "") params[name] = $(name).value;
  }
  if ($("rhyme").checked) params.rhyme = "true";
  settings = params;
  const prime = document.createElement("span");
  prime.className = "prime";
  prime.textContent = params.prime;
  $("output").replaceChildren(prime);
  $("top").replaceChildren();
  stream(params, null);
}

function branch(span, event, k) {
  // Cut the text before the clicked token, put candidate k in its place and write on from
  // there with the same settings; the tokens so far go back as ids, so they are read exactly.
  stop();
  const kept = [];
  for (let node = span.previousElementSibling; node; node = node.previousElementSibling) {
    if (tokenEvents.has(node)) kept.unshift(tokenEvents.get(node).id);
  }
  while (span.nextSibling) span.nextSibling.remove();
  span.remove();
  const [token, prob] = event.top[k];
  const chosen = { ...event, token, prob, id: event.top_ids[k] };
  $("top").replaceChildren();
  stream({ ...settings, ids: [...kept, chosen.id].join(".") }, chosen);
}

// -- Read -------------------------------------------------------------------------------------

function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decodeHalf(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return Float32Array.from(new Uint16Array(bytes.buffer), halfToFloat);
}

const GATES = new Set(["i", "f", "o", "z", "r"]); // in (0, 1): one fixed scale, comparable across texts

function rgb(value, scale, gate) {
  if (gate) {
    // Sequential: white at 0 (closed) to dark blue at 1 (open).
    const x = Math.max(0, Math.min(1, value));
    return [Math.round(255 - 222 * x), Math.round(255 - 160 * x), Math.round(255 - 75 * x)];
  }
  // Diverging: blue below zero, red above, white at zero.
  const x = Math.max(-1, Math.min(1, value / scale));
  const fade = Math.round(255 * (1 - Math.abs(x)));
  return x >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

async function read() {
  const kind = $("kind").value;
  status("reading…");
  const result = await api("/api/activations", { model: $("model").value, text: $("read-text").value, layer: Number($("layer").value) - 1, kind });
  const kinds = result.kinds.map((k) => new Option(k, k, false, k === kind));
  $("kind").replaceChildren(...kinds);
  const { shape, float16 } = result.arrays[kind];
  const [T, H] = shape;
  const values = decodeHalf(float16);
  const gate = GATES.has(kind);
  let scale = 1e-6; // a loop, not Math.max(...values): 1,000 tokens × 256 units overflow the stack
  for (const v of values) scale = Math.max(scale, Math.abs(v));
  if (kind === "h") scale = 1; // h = o · tanh(C) lies in (−1, 1)
  const width = Math.max(3, Math.min(16, Math.floor(800 / H)));
  // One pixel per (token, unit), then scaled up unsmoothed: a fillRect per cell is 100× slower.
  const cells = new ImageData(H, T);
  for (let k = 0; k < T * H; k++) cells.data.set([...rgb(values[k], scale, gate), 255], 4 * k);
  const small = document.createElement("canvas");
  small.width = H;
  small.height = T;
  small.getContext("2d").putImageData(cells, 0, 0);
  const canvas = $("heat-canvas");
  canvas.width = H * width;
  // A long text gets thinner rows, without labels (hovering still names each token).
  const row = Math.min(ROW, Math.floor(MAX_CANVAS / T));
  canvas.height = T * row;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);
  $("heat-tokens").replaceChildren(...result.tokens.map((token) => {
    const li = document.createElement("li");
    li.textContent = token === "\n" ? "⏎" : token;
    return li;
  }));
  $("heat-tokens").hidden = row < ROW;
  showRead({ model: $("model").value, text: $("read-text").value, layer: result.layer, kind, tokens: result.tokens, values, H,
    colour: (v) => `rgb(${rgb(v, scale, gate).join(", ")})` });
  canvas.onclick = (e) => selectUnit(Math.min(H - 1, Math.floor(e.offsetX / width)));
  canvas.onmousemove = (e) => {
    const t = Math.floor(e.offsetY / row), u = Math.floor(e.offsetX / width);
    if (t < T && u < H) $("cell").textContent = `token ${t} “${result.tokens[t]}”, unit ${u}: ${kind} = ${values[t * H + u].toFixed(3)}`;
  };
  status(`${T} tokens × ${H} units of layer ${result.layer + 1}'s ${kind} (colour scale ${gate ? "0 to 1" : `±${scale.toFixed(2)}`})`);
}

// -- Score ------------------------------------------------------------------------------------

async function score() {
  const result = await api("/api/score", { model: $("model").value, text: $("score-text").value });
  $("score-rows").replaceChildren(...result.rows.map((row) => {
    const tr = document.createElement("tr");
    if (row.unknown) tr.className = "unknown";
    const label = row.unknown ? `${row.token} (unknown, read as ${row.mapped})` : row.token;
    tr.append(cell(label === "\n" ? "⏎" : label), bar(row.prob), cell(row.prob.toFixed(4), "num"), cell(row.logprob.toFixed(2), "num"));
    return tr;
  }));
  $("score-total").textContent =
    `log P = ${result.logprob.toFixed(2)}, perplexity ${result.perplexity.toFixed(2)}, ${result.rows.length} tokens, ${result.oov} unknown`;
  status("");
}

// -- Page -------------------------------------------------------------------------------------

function showView(name) {
  // The view is in the address (#memory), so that a link or a reload opens it again.
  if (!document.querySelector(`.tab[data-view="${CSS.escape(name)}"]:not([hidden])`)) name = "write";
  history.replaceState(null, "", `#${name}`);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== name;
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
}

function guarded(action) {
  return () => action().catch((error) => status(error.message, true));
}

async function init() {
  models = await api("/api/models", {});
  $("model").replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  if (!models.length) status("no models: start the studio with a model folder", true);
  showModel();
  $("model").addEventListener("change", showModel);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", () => { stop(); status("stopped"); });
  $("read-go").addEventListener("click", guarded(read));
  $("kind").addEventListener("change", guarded(read));
  $("layer").addEventListener("change", guarded(read));
  $("score-go").addEventListener("click", guarded(score));
  initMemory({ api, status, models: () => models, currentModel });
  initTraining({ api, status });
  initUnits({ api, status, guarded });
  $("read-export").addEventListener("click", guarded(async () => {
    const saved = await download("/api/export/activations", { model: $("model").value, text: $("read-text").value, format: "npz" }, "activations.npz");
    status(`saved ${saved}: every layer's h, C and gates as float32 arrays, and the tokens`);
  }));
  await setupVectors({ api, status, guarded, showView });
  // The address's view opens as a click on its tab would (a view may load on its first visit).
  const tab = document.querySelector(`.tab[data-view="${CSS.escape(location.hash.slice(1))}"]:not([hidden])`);
  if (tab) tab.click();
  else showView("write");
}

guarded(init)();
