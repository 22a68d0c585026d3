// The Training view: a run's curves from its metrics.jsonl, drawn by hand on a canvas and
// polled while the view is open, with a sample from its latest checkpoint at each change.
// Text reaches the page through textContent only.

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
const SERIES = [["train", "#2f81f7"], ["valid", "#e8730c"]];
const COLUMNS = ["epoch", "train_loss", "train_ppl", "valid_loss", "valid_ppl", "lr"];

function format(value, column = "") {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number" || (column === "epoch" && Number.isInteger(value))) return String(value);
  return Math.abs(value) >= 0.01 && Math.abs(value) < 1e5 ? value.toFixed(3) : value.toExponential(2);
}

function ticks(lo, hi, count) {
  // Round numbers between lo and hi: steps of 1, 2 or 5 times a power of ten.
  const raw = (hi - lo) / count || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function chart(canvas, records, key) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 56, right: 16, top: 28, bottom: 36 };
  context.clearRect(0, 0, width, height);
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  const points = SERIES.map(([name, colour]) => ({
    name, colour,
    xy: records.filter((r) => typeof r[`${name}_${key}`] === "number").map((r) => [r.epoch, r[`${name}_${key}`]]),
  }));
  const xs = points.flatMap((s) => s.xy.map((p) => p[0])), ys = points.flatMap((s) => s.xy.map((p) => p[1]));
  context.font = "12px system-ui, sans-serif";
  context.fillStyle = "#57606a";
  if (!ys.length) {
    context.fillText("no finished epoch yet", pad.left, pad.top + 20);
    return;
  }
  const x0 = Math.floor(Math.min(...xs)), x1 = Math.max(x0 + 1, Math.ceil(Math.max(...xs)));
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const inner = 14; // so that the first and last points clear the axes
  const X = (x) => pad.left + inner + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right - 2 * inner);
  const Y = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  context.strokeStyle = "#d0d7de";
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (const y of ticks(y0, y1, 5)) {
    context.beginPath(); context.moveTo(pad.left, Y(y)); context.lineTo(width - pad.right, Y(y)); context.stroke();
    context.fillText(format(y), pad.left - 6, Y(y));
  }
  context.textAlign = "center";
  context.textBaseline = "top";
  for (const x of ticks(x0, x1, Math.min(10, x1 - x0)).filter(Number.isInteger)) {
    context.fillText(String(x), X(x), height - pad.bottom + 6);
  }
  context.fillText("epoch", (pad.left + width - pad.right) / 2, height - 16);
  for (const { name, colour, xy } of points) {
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.lineWidth = 2;
    context.beginPath();
    xy.forEach(([x, y], i) => (i ? context.lineTo(X(x), Y(y)) : context.moveTo(X(x), Y(y))));
    context.stroke();
    for (const [x, y] of xy) { context.beginPath(); context.arc(X(x), Y(y), 3, 0, 2 * Math.PI); context.fill(); }
  }
  // The legend, top right.
  context.textAlign = "left";
  context.textBaseline = "middle";
  points.forEach(({ name, colour }, i) => {
    const left = width - pad.right - 150 + i * 75;
    context.fillStyle = colour;
    context.fillRect(left, 10, 14, 4);
    context.fillStyle = "#1f2328";
    context.fillText(`${name} ${key}`, left + 18, 12);
  });
}

export function initTraining({ api, status }) {
  let runs = [];
  let records = [];
  let seen = null; // the records last drawn, as JSON, to tell a change
  let sampled = null; // the epoch of the checkpoint last sampled
  let timer = null; // the next poll's timeout while the view is open, else null
  let loops = 0;

  function table() {
    const head = document.createElement("tr");
    for (const column of COLUMNS) {
      const th = document.createElement("th");
      th.textContent = column.replace("_", " ");
      head.append(th);
    }
    const rows = records.map((r) => {
      const tr = document.createElement("tr");
      if (r.partial) tr.className = "partial";
      for (const column of COLUMNS) {
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = format(r[column], column);
        tr.append(td);
      }
      return tr;
    });
    $("training-rows").replaceChildren(head, ...rows);
  }

  async function sample(run) {
    const url = new URL("/api/training/sample", location.href);
    for (const [key, value] of Object.entries({ run, length: 200, seed: 0 })) url.searchParams.set(key, value);
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) {
      $("training-sample-info").textContent = body.error || response.statusText;
      $("training-sample").textContent = "";
      return;
    }
    sampled = body.epoch;
    $("training-sample-info").textContent = `${body.checkpoint}/ checkpoint, epoch ${format(body.epoch, "epoch")}, seed ${body.seed}:`;
    $("training-sample").textContent = body.text;
  }

  async function refresh() {
    const run = $("run").value;
    if (!run) return;
    const all = await api("/api/training", { run });
    // The epochs (and a stop inside one) are the curve; the final test record is a line of text.
    const latest = all.filter((r) => typeof r.epoch === "number");
    const test = all.find((r) => typeof r.test_loss === "number");
    const text = JSON.stringify(all);
    const last = latest.filter((r) => !r.partial).at(-1);
    const lagging = last && (sampled === null || sampled < last.epoch);
    if (text === seen && !lagging) return;
    const changed = text !== seen;
    seen = text;
    records = latest;
    if (changed) {
      chart($("training-chart"), records, $("curve").value);
      table();
      $("training-info").textContent = `${run}: ${records.length} record(s)` +
        (last ? `, epoch ${last.epoch}: valid perplexity ${format(last.valid_ppl)}` : "") +
        (test ? `; test perplexity ${format(test.test_ppl)} (best epoch ${test.best_epoch})` : "");
    }
    await sample(run);
  }

  function poll(loop) {
    // `loop` ends when the view closes (or reopens, which starts a new one).
    refresh().catch((e) => status(e.message, true)).finally(() => {
      if (loop === loops) timer = setTimeout(() => poll(loop), POLL_MS);
    });
  }

  function watch() {
    // Poll only while the view is open (app.js shows a view by clearing its `hidden`).
    const open = !$("training").hidden;
    if (open && timer === null) {
      timer = 0;
      poll(++loops);
    } else if (!open && timer !== null) {
      clearTimeout(timer);
      timer = null;
      loops += 1;
    }
  }

  function choose() {
    seen = null;
    sampled = null;
    records = [];
    $("training-sample").textContent = "";
    $("training-sample-info").textContent = "";
    if (timer !== null) refresh().catch((e) => status(e.message, true));
  }

  async function init() {
    runs = await api("/api/runs", {});
    $("run").replaceChildren(...runs.map((r) => new Option(r.name, r.name)));
    if (!runs.length) $("training-info").textContent = "no training runs: start the studio with --run RUN_DIR";
    $("run").addEventListener("change", choose);
    $("curve").addEventListener("change", () => chart($("training-chart"), records, $("curve").value));
    new MutationObserver(watch).observe($("training"), { attributes: true, attributeFilter: ["hidden"] });
    watch();
  }

  init().catch((e) => status(e.message, true));
}
