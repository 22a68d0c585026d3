// The Read view's single units: one unit coloured over the text (Karpathy et al.'s quote and
// line-length cells), the units that follow tokens a person marks (LSTMVis's select view) and
// the gates' saturation per unit (Karpathy, Johnson and Fei-Fei 2015, Fig. 3). Every token
// reaches the page through textContent.

const $ = (id) => document.getElementById(id);
const GATE_COLOURS = { i: "#1f77b4", f: "#d62728", o: "#2ca02c", z: "#9467bd", r: "#ff7f0e" };
let read = null; // the Read view's latest result: model, text, layer, kind, tokens, values, H, colour
let deps = null;
const marked = new Set();
let anchor = null; // the last token clicked: shift-click marks the range from it

function ranges() {
  // The marked positions as "3-7,12", as /api/units reads them.
  const sorted = [...marked].sort((a, b) => a - b);
  const out = [];
  for (const t of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === t - 1) last[1] = t;
    else out.push([t, t]);
  }
  return out.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(",");
}

function clickToken(t, shift) {
  if (shift && anchor !== null) {
    for (let k = Math.min(anchor, t); k <= Math.max(anchor, t); k++) marked.add(k);
  } else if (marked.has(t)) marked.delete(t);
  else marked.add(t);
  anchor = t;
  for (const span of $("unit-text").children) span.classList.toggle("marked", marked.has(Number(span.dataset.t)));
  $("units-find").disabled = marked.size === 0;
}

export function selectUnit(u) {
  // Colour every token by unit u's value after reading it.
  const { tokens, values, H, kind, colour } = read;
  $("unit-title").textContent = `Unit ${u} (${kind}) over the text`;
  const spans = $("unit-text").children;
  for (let t = 0; t < tokens.length; t++) {
    spans[t].style.backgroundColor = colour(values[t * H + u]);
    spans[t].title = `${kind}[${u}] = ${values[t * H + u].toFixed(3)}`;
  }
  for (const row of $("units-rows").rows) row.classList.toggle("chosen", Number(row.dataset.unit) === u);
}

export function showRead(result) {
  // A new text, layer or kind: the tokens, unmarked, coloured by unit 0.
  const sameText = read && read.text === result.text && read.model === result.model;
  read = result;
  if (!sameText) marked.clear();
  $("unit-text").replaceChildren(...result.tokens.map((token, t) => {
    const span = document.createElement("span");
    span.className = marked.has(t) ? "utoken marked" : "utoken";
    span.dataset.t = String(t);
    span.textContent = token === "\n" ? "⏎" : token;
    span.addEventListener("click", (e) => clickToken(t, e.shiftKey));
    return span;
  }));
  $("units").hidden = false;
  $("units-find").disabled = marked.size === 0;
  $("units-rows").replaceChildren();
  selectUnit(0);
}

async function findUnits() {
  const { api, status } = deps;
  const result = await api("/api/units", { model: read.model, text: read.text, layer: read.layer, kind: read.kind, marked: ranges(), topn: 10 });
  $("units-rows").replaceChildren(...result.units.map((u, k) => {
    const tr = document.createElement("tr");
    tr.className = "candidate";
    tr.dataset.unit = String(u);
    const r = result.r[k];
    for (const text of [`unit ${u}`, `r = ${r.toFixed(3)}`, r < 0 ? "low where marked" : "high where marked"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    tr.addEventListener("click", () => selectUnit(u));
    return tr;
  }));
  selectUnit(result.units[0]);
  status(`the ${result.units.length} units of layer ${read.layer + 1}'s ${read.kind} that follow the ${marked.size} marked tokens best`);
}

function drawSaturation(result) {
  // x: share of steps closed (< 0.1), y: share open (> 0.9); one dot per gate and unit.
  const canvas = $("saturation-canvas");
  const g = canvas.getContext("2d");
  const pad = 40, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.strokeStyle = "#8c959f";
  g.strokeRect(pad, pad, w, h);
  g.fillStyle = "#57606a";
  g.font = "12px sans-serif";
  g.fillText("share of steps closed (< 0.1) →", pad, canvas.height - 10);
  g.save();
  g.translate(14, pad + h);
  g.rotate(-Math.PI / 2);
  g.fillText("share of steps open (> 0.9) →", 0, 0);
  g.restore();
  let x = pad;
  for (const [gate, shares] of Object.entries(result.gates)) {
    g.fillStyle = GATE_COLOURS[gate] || "#000";
    for (let u = 0; u < shares.closed.length; u++) {
      g.beginPath();
      g.arc(pad + shares.closed[u] * w, pad + (1 - shares.open[u]) * h, 3, 0, 2 * Math.PI);
      g.fill();
    }
    g.fillText(`● ${gate}`, x, pad - 10);
    x += 40;
  }
  // An untrained or briefly trained layer puts most dots on the corner at (0, 0), where they
  // hide one another: say how many lie there.
  const idle = neverSaturated(result);
  if (idle.count > 0) {
    g.fillStyle = "#57606a";
    g.fillText(`${idle.count} of ${idle.of} never saturated`, pad + 8, pad + h - 8);
  }
  canvas.hidden = false;
}

function neverSaturated(result) {
  // Gate units that were neither closed nor open at any step.
  let count = 0, of = 0;
  for (const shares of Object.values(result.gates)) {
    shares.closed.forEach((closed, u) => { of++; if (closed === 0 && shares.open[u] === 0) count++; });
  }
  return { count, of };
}

async function showSaturation() {
  const { api, status } = deps;
  const result = await api("/api/saturation", { model: read.model, text: read.text, layer: read.layer });
  drawSaturation(result);
  const units = Object.values(result.gates)[0].closed.length;
  const idle = neverSaturated(result);
  status(`gate saturation of layer ${read.layer + 1}'s ${units} units over ${result.steps} steps: ` +
    `${idle.count} of ${idle.of} gate units never saturated`);
}

export function initUnits(dependencies) {
  deps = dependencies;
  const { guarded } = deps;
  $("units-find").addEventListener("click", guarded(findUnits));
  $("units-clear").addEventListener("click", () => {
    marked.clear();
    for (const span of $("unit-text").children) span.classList.remove("marked");
    $("units-find").disabled = true;
  });
  $("saturation-go").addEventListener("click", guarded(showSaturation));
}
