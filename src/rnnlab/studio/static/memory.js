// The Memory view: how much each earlier token still matters when a model predicts token t,
// as the gradient norm ‖∂ log p(x_t | x_<t) / ∂ e_k‖ over each earlier input embedding e_k,
// one strip per loaded model. Text reaches the page through textContent only.

const $ = (id) => document.getElementById(id);
const EXAMPLE = "i am from china . i grew up there and went to school there . i speak fluent chinese";
const FLOOR = 1e-12; // a norm that underflowed to zero still needs a place on a log scale

function label(token) {
  // Line ends and spaces (character models) would be invisible cells.
  return token === "\n" ? "⏎" : token === " " ? "␣" : token;
}

function piece(text, info, k) {
  // The text's own token where it was found (an unknown word shows itself, not "<unk>").
  const span = info.spans[k];
  return span ? text.slice(span[0], span[1]) : info.tokens[k];
}

function unknown(info, k) {
  return info.spans[k] !== null && info.tokens[k] === "<unk>";
}

function shade(fraction) {
  // Pale for a token the prediction no longer feels, dark for one it leans on.
  const lightness = 96 - 68 * fraction;
  return { background: `hsl(265, 70%, ${lightness.toFixed(1)}%)`, ink: lightness < 58 ? "#fff" : "#1f2328" };
}

export function initMemory({ api, status, models, currentModel }) {
  let shown = null; // {text, model, tokens, spans} of the tokens on the page
  const cache = new Map(); // model name -> its tokens of `shown.text`

  async function tokensOf(name, text) {
    if (!cache.has(name)) cache.set(name, await api("/api/tokens", { model: name, text }));
    return cache.get(name);
  }

  async function showTokens() {
    const m = currentModel();
    if (!m) return;
    const text = $("memory-text").value;
    cache.clear();
    const result = await tokensOf(m.name, text);
    shown = { text, model: m.name, ...result };
    // The start token (position 0) predicts nothing: it is only shown as the strips' first cell.
    $("memory-tokens").replaceChildren(...result.tokens.slice(1).map((token, i) => {
      const span = document.createElement("span");
      span.className = unknown(result, i + 1) ? "mtoken unknown" : "mtoken";
      span.textContent = label(piece(text, result, i + 1));
      span.title = `position ${i + 1}${token === "<unk>" ? " (read as <unk>)" : ""}: click to see what its prediction still remembers`;
      span.addEventListener("click", () => pick(i + 1).catch((e) => status(e.message, true)));
      return span;
    }));
    $("memory-strips").replaceChildren();
    $("memory-legend").hidden = true;
    status(`${result.tokens.length - 1} tokens of ${m.name}: click one`);
  }

  function positionIn(other, start) {
    // The same place in a model that cuts the text differently: its token that holds the
    // picked one's first character (the word "chinese" for its "e"), else the first token
    // that starts after it (the "c" of "chinese" for the word).
    const spans = other.spans.map((s, i) => [s, i]).slice(1).filter(([s]) => s);
    const holding = spans.find(([s]) => s[0] <= start && start < s[1]);
    const after = spans.find(([s]) => s[0] >= start);
    return (holding || after || [null, null])[1];
  }

  async function pick(t) {
    for (const [i, span] of Array.from($("memory-tokens").children).entries()) span.classList.toggle("selected", i + 1 === t);
    const span = shown.spans[t];
    status("computing gradients…");
    const results = await Promise.all(models().map(async (m) => {
      const info = await tokensOf(m.name, shown.text);
      let position = t;
      if (m.name !== shown.model) {
        if (!span) return { model: m, missing: "the picked token is not in the text as it is" };
        position = positionIn(info, span[0]);
        if (position === null) return { model: m, missing: "no token of this model starts there" };
      }
      return { model: m, info, ...(await api("/api/memory", { model: m.name, text: shown.text, position })) };
    }));
    draw(results);
    status(`gradient norms of log p(token t) over each earlier token's embedding, ${results.length} model(s)`);
  }

  function draw(results) {
    const all = results.flatMap((r) => r.norms || []).map((n) => Math.log10(Math.max(n, FLOOR)));
    const lo = Math.min(...all), hi = Math.max(...all);
    const strips = results.map((r) => {
      const strip = document.createElement("div");
      strip.className = "strip";
      const title = document.createElement("h3");
      title.textContent = `${r.model.name} · ${r.model.cell} · ${r.model.layers} × ${r.model.hidden_size}`;
      const cells = document.createElement("div");
      cells.className = "strip-cells";
      strip.append(title, cells);
      if (r.missing) {
        title.textContent += ` (${r.missing})`;
        return strip;
      }
      r.norms.forEach((norm, k) => {
        const cell = document.createElement("span");
        cell.className = unknown(r.info, k) ? "mcell unknown" : "mcell";
        cell.textContent = label(piece(shown.text, r.info, k));
        const fraction = hi > lo ? (Math.log10(Math.max(norm, FLOOR)) - lo) / (hi - lo) : 1;
        const { background, ink } = shade(fraction);
        cell.style.backgroundColor = background;
        cell.style.color = ink;
        cell.title = `k = ${k} “${r.tokens[k]}”: ‖∂ log p / ∂e_k‖ = ${norm.toExponential(2)}`;
        cells.append(cell);
      });
      const target = document.createElement("span");
      target.className = "mcell target";
      target.textContent = label(piece(shown.text, r.info, r.position));
      target.title = `t = ${r.position}: the token being predicted`;
      cells.append(target);
      return strip;
    });
    $("memory-strips").replaceChildren(...strips);
    if (all.length) {
      $("memory-low").textContent = (10 ** lo).toExponential(1);
      $("memory-high").textContent = (10 ** hi).toExponential(1);
      $("memory-legend").hidden = false;
    }
  }

  $("memory-example").addEventListener("click", () => { $("memory-text").value = EXAMPLE; });
  $("memory-go").addEventListener("click", () => showTokens().catch((e) => status(e.message, true)));
}
