"""The studio's page in a real Chromium against a real server (`rnnlab studio` on a free port).

Skipped where Playwright or /usr/bin/chromium is missing (.ci/run installs them). Screenshots
go to the test's tmp folder and are copied to /tmp/studio-shots/ for a person to look at.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the studio extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the studio extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)", allow_module_level=True)

from test_studio_api import WORDS, tiny_lm  # noqa: E402

XSS = WORDS[-1]
SHOTS = Path("/tmp/studio-shots")
RECORDS = [{"epoch": e, "train_loss": t, "train_ppl": math.exp(t), "valid_loss": v,
            "valid_ppl": math.exp(v), "lr": 1.0} for e, t, v in [(1, 2.0, 2.1), (2, 1.6, 1.8)]]


TOPICS = {  # words near each other in the made-up vectors below, one topic per direction
    "animals": "cat dog horse cow sheep goat mouse rabbit lion tiger bear wolf fox deer pig duck",
    "colours": "red green blue yellow black white purple orange pink brown grey violet",
    "numbers": "one two three four five six seven eight nine ten eleven twelve hundred thousand",
    "food": "bread cheese apple rice soup meat fish cake butter milk egg salt sugar honey",
    "places": "london paris rome berlin madrid vienna prague dublin lisbon athens oslo",
}


def english_vectors(n: int = 320, dim: int = 16, seed: int = 0):
    """Topic words around five directions, then filler words and the HTML-looking token."""
    from rnnlab.word2vec.vectors import WordVectors

    rng = np.random.default_rng(seed)
    words, rows = [], []
    for k, topic in enumerate(TOPICS.values()):
        centre = np.zeros(dim)
        centre[k] = 4
        for word in topic.split():
            words.append(word)
            rows.append(centre + rng.normal(size=dim))
    words.append(XSS)
    rows.append(rows[0] + 0.5 * rng.normal(size=dim))  # the nearest neighbour of "cat"
    while len(words) < n:
        words.append(f"w{len(words)}")
        rows.append(rng.normal(size=dim) * 2)
    return WordVectors(words, np.array(rows, dtype=np.float32))


def chinese_vectors(n: int = 600):
    """The character embeddings of the ready-made tang model: real Chinese neighbours."""
    from rnnlab.lm import LM
    from rnnlab.ready import READY_DIR
    from rnnlab.word2vec.vectors import WordVectors

    lm = LM.load(READY_DIR / "tang")
    chars = [t for t in lm.vocab.itos if len(t) == 1 and "\u4e00" <= t <= "\u9fff"][:n]
    weight = lm.model.embedding.weight.detach().float().numpy()
    return WordVectors(chars, weight[[lm.vocab.stoi[c] for c in chars]])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    tiny_lm().save(root / "words")
    # 64 units: a 5,000-character read is then 320,000 values, as many as a real model's.
    tiny_lm(["\n", *"我爱北京天安门𠀋"], level="char", layers=2, hidden=64).save(root / "zh")
    run = root / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    tiny_lm().save(run / "best", {"epoch": 1})
    english_vectors().save(root / "english")  # native folders keep any word
    chinese_vectors().save(root / "tang-chars")
    return root


@pytest.fixture(scope="module")
def server(root):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", "studio", str(root / "words"), str(root / "zh"),
         "--run", str(root / "run"), "--vectors", str(root / "english"),
         "--vectors", str(root / "tang-chars"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert "http://127.0.0.1:" in line, line + process.stderr.read()
    yield line.split(" at ")[1].split()[0]
    process.send_signal(signal.SIGINT)  # as Ctrl-C: the server stops cleanly
    assert process.wait(20) == 0
    assert "stopped" in process.stdout.read()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.problems = problems  # so that a test can take back the one refusal it asked for
    page.goto(server)
    page.wait_for_selector("#model option", state="attached")
    yield page
    context.close()
    assert problems == []


def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def test_generation_streams_tokens_and_a_click_shows_the_distribution(page, tmp_path):
    assert page.locator("#model option").all_text_contents() == ["words", "zh"]
    page.fill("#prime", "the cat")
    page.fill("#length", "40")
    page.fill("#seed", "1")
    page.click("#start")
    sync_api.expect(page.locator("#output .token")).to_have_count(40)
    page.wait_for_selector("#start:not([disabled])")
    assert "40 tokens, seed 1" in page.text_content("#status")
    page.locator("#output .token").nth(2).click()
    assert page.locator("#top tr").count() == min(10, len(WORDS) + 2)  # the whole vocabulary
    assert page.locator("#top tr.chosen").count() == 1
    shoot(page, tmp_path, "write")


def test_a_token_that_looks_like_html_is_shown_as_text(page, tmp_path):
    # Top-k 1 after a prime of the token itself would depend on the weights; instead generate
    # until the token appears (it has one chance in 8 per step, seed fixed).
    page.fill("#length", "200")
    page.fill("#seed", "2")
    page.click("#start")
    page.wait_for_selector("#start:not([disabled])")
    texts = page.locator("#output .token").all_text_contents()
    assert any(XSS in t for t in texts)
    assert page.locator("#output img").count() == 0
    page.locator("#output .token", has_text=XSS).first.click()
    assert XSS in page.locator("#top").text_content() and page.locator("#top img").count() == 0
    page.click("[data-view=score]")
    page.fill("#score-text", f"the {XSS} sat")
    page.click("#score-go")
    page.wait_for_selector("#score-rows tr")
    # Words are split at spaces, so the token arrives as three unknown words, shown as text.
    assert "<img" in page.text_content("#score-rows") and page.locator("img").count() == 0
    shoot(page, tmp_path, "xss")


def test_read_view_draws_a_heat_map_for_chinese(page, tmp_path):
    page.select_option("#model", "zh")
    page.click("[data-view=read]")
    text = "我爱北京天安门𠀋"
    page.fill("#read-text", text)
    page.click("#read-go")
    page.wait_for_selector("#heat-tokens li", state="attached")
    labels = page.locator("#heat-tokens li").all_text_contents()
    assert labels == ["⏎", *text]
    size = page.evaluate("[document.getElementById('heat-canvas').width, "
                         "document.getElementById('heat-canvas').height]")
    assert size[1] == 14 * len(labels) and size[0] >= 8
    painted = page.evaluate("""() => { const c = document.getElementById('heat-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4) colours.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        return colours.size; }""")
    assert painted > 5  # a map of values, not one flat colour
    page.select_option("#kind", "f")
    sync_api.expect(page.locator("#status")).to_contain_text("layer 1's f")
    shoot(page, tmp_path, "read-chinese")


def test_score_view_shows_bars_total_and_unknown_tokens(page, tmp_path):
    page.click("[data-view=score]")
    page.fill("#score-text", "the zebra sat on the mat")
    page.click("#score-go")
    page.wait_for_selector("#score-rows tr")
    assert page.locator("#score-rows tr").count() == 7
    assert page.locator("#score-rows tr.unknown").count() == 1
    assert "perplexity" in page.text_content("#score-total")
    assert "1 unknown" in page.text_content("#score-total")
    shoot(page, tmp_path, "score")


def test_right_to_left_text_reads_right_to_left(page, tmp_path):
    page.click("[data-view=score]")
    hebrew = "שלום עולם"
    page.fill("#score-text", hebrew)
    # dir="auto": the box takes the direction of its first strong character.
    assert page.evaluate("getComputedStyle(document.getElementById('score-text')).direction") == "rtl"
    page.click("#score-go")
    page.wait_for_selector("#score-rows tr")
    words = page.locator("#score-rows tr td:first-child").all_text_contents()
    assert [w.split(" (")[0] for w in words[:2]] == hebrew.split()  # the words, as text
    shoot(page, tmp_path, "score-rtl")


def glyph_pixels(page, char: str) -> str:
    """The pixels of `char` drawn on a canvas in the page's font."""
    return page.evaluate("""(c) => { const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 40; const g = canvas.getContext('2d');
        g.font = '32px ' + getComputedStyle(document.body).fontFamily; g.fillText(c, 2, 34);
        return Array.from(g.getImageData(0, 0, 40, 40).data).join(); }""", char)


def test_a_character_outside_the_bmp_has_a_glyph(page):
    # U+2000B (CJK extension B) against an unassigned code point: with no font for it both
    # would be the same empty box. .ci/run installs fonts-hanazono for extension B.
    assert glyph_pixels(page, "\U0002000b") != glyph_pixels(page, "\U0002fff0")
    assert glyph_pixels(page, "我") != glyph_pixels(page, "\U0002fff0")


def test_the_address_names_the_view(page, server):
    page.click("[data-view=memory]")
    assert page.url.endswith("#memory")
    page.goto("about:blank")  # a new load, not a move within the page
    page.goto(server + "#score")
    sync_api.expect(page.locator("#score")).to_be_visible()
    assert page.locator("#write").is_hidden()
    page.goto("about:blank")
    page.goto(server + "#nonsense")
    sync_api.expect(page).to_have_url(server + "#write")  # replaced by the view it falls back to
    assert page.locator("#write").is_visible()
    page.goto("about:blank")
    page.goto(server + "#vectors")  # a view that loads on its first visit loads from the address
    sync_api.expect(page.locator("#status")).to_contain_text("words by PCA")


def test_stop_ends_a_generation(page):
    page.fill("#length", "2000")
    # Stop from inside the page when the fourth token arrives: a click from the test process
    # could come after a tiny model has written all 2,000.
    page.evaluate("""() => new MutationObserver((_, observer) => {
        if (document.querySelectorAll('#output .token').length >= 4) {
            observer.disconnect(); document.getElementById('stop').click(); }
        }).observe(document.getElementById('output'), {childList: true})""")
    page.click("#start")
    sync_api.expect(page.locator("#status")).to_have_text("stopped")
    count = page.locator("#output .token").count()
    page.wait_for_timeout(300)
    assert page.locator("#output .token").count() == count < 2000


def test_clicking_a_candidate_branches_and_writes_on_from_it(page, tmp_path):
    page.fill("#prime", "the cat")
    page.fill("#length", "20")
    page.fill("#seed", "1")
    page.click("#start")
    page.wait_for_selector("#start:not([disabled])")
    tokens = page.locator("#output .token")
    before = tokens.all_text_contents()
    tokens.nth(5).click()
    candidate = page.locator("#top tr.candidate:not(.chosen)").first
    chosen = candidate.locator("td").first.text_content()
    candidate.click()
    sync_api.expect(page.locator("#status")).to_contain_text("20 tokens, seed 1, after the branch")
    after = tokens.all_text_contents()
    assert after[:5] == before[:5] and len(after) == 5 + 1 + 20
    branch = page.locator("#output .token.branch")
    assert branch.count() == 1 and branch.text_content().strip() == chosen
    assert tokens.nth(5).evaluate("e => e.classList.contains('branch')")
    assert page.text_content("#output").startswith("the cat")
    # The branch's token shows the distribution it was picked from, with itself chosen.
    branch.click()
    assert page.locator("#top tr.chosen td").first.text_content() == chosen
    shoot(page, tmp_path, "branch")


def test_single_units_over_the_text_marks_and_saturation(page, tmp_path):
    page.select_option("#model", "zh")
    page.click("[data-view=read]")
    page.fill("#read-text", "我爱北京天安门我爱北京")
    page.click("#read-go")
    page.wait_for_selector("#unit-text .utoken")
    assert page.locator("#unit-text .utoken").count() == 12
    box = page.locator("#heat-canvas").bounding_box()
    width = box["width"] / 64
    page.mouse.click(box["x"] + 5.5 * width, box["y"] + 5)  # the column of unit 5
    sync_api.expect(page.locator("#unit-title")).to_contain_text("Unit 5")
    colours = page.eval_on_selector_all("#unit-text .utoken", "s => s.map(x => x.style.backgroundColor)")
    assert all(colours) and len(set(colours)) > 3  # one unit's values, shaded token by token
    page.locator("#unit-text .utoken").nth(2).click()
    page.locator("#unit-text .utoken").nth(4).click(modifiers=["Shift"])  # tokens 2 to 4
    assert page.locator("#unit-text .utoken.marked").count() == 3
    page.click("#units-find")
    sync_api.expect(page.locator("#units-rows tr")).to_have_count(10)
    best = int(page.get_attribute("#units-rows tr >> nth=0", "data-unit"))
    sync_api.expect(page.locator("#unit-title")).to_contain_text(f"Unit {best} ")
    page.click("#saturation-go")
    sync_api.expect(page.locator("#saturation-canvas")).to_be_visible()
    shares = page.evaluate("""async () => (await (await fetch('/api/saturation?model=zh&text='
        + encodeURIComponent('我爱北京天安门我爱北京'))).json()).gates""")
    idle = sum(c == 0 and o == 0 for s in shares.values() for c, o in zip(s["closed"], s["open"]))
    sync_api.expect(page.locator("#status")).to_contain_text(
        f"gate saturation of layer 1's 64 units over 12 steps: {idle} of 192 gate units never saturated")
    shoot(page, tmp_path, "read-units")


def test_read_view_draws_the_longest_text(page):
    page.select_option("#model", "zh")
    page.click("[data-view=read]")
    page.fill("#read-text", ("我爱北京天安门" * 800)[:5000])
    page.click("#read-go")
    # Reading 5,000 tokens takes a second on an idle machine, longer beside other work.
    sync_api.expect(page.locator("#status")).to_contain_text("5001 tokens × 64 units",
                                                             timeout=60_000)
    corner = page.evaluate("""() => { const c = document.getElementById('heat-canvas');
        return [c.height, ...c.getContext('2d').getImageData(0, c.height - 8, 64, 8).data]; }""")
    assert 5001 * 2 <= corner[0] <= 32000  # thinner rows: a canvas taller than 32k px stays blank
    assert len(set(corner[1:])) > 2  # the last rows are painted too
    assert page.locator("#heat-tokens").is_hidden()  # rows too thin for labels


def test_read_view_shows_the_chosen_layer(page, tmp_path):
    page.select_option("#model", "zh")
    page.click("[data-view=read]")
    page.fill("#read-text", "我爱北京天安门")
    assert page.locator("#layer option").all_text_contents() == ["1", "2"]
    # Each option's value is its label, so that "2" names one option, not label 2 and value 2.
    assert page.eval_on_selector_all("#layer option", "os => os.map(o => o.value)") == ["1", "2"]
    page.click("#read-go")
    sync_api.expect(page.locator("#status")).to_contain_text("layer 1's h")
    pixels = "() => Array.from(document.getElementById('heat-canvas').getContext('2d')" \
             ".getImageData(0, 0, 64, 64).data).join()"
    first = page.evaluate(pixels)
    page.select_option("#layer", "2")
    sync_api.expect(page.locator("#status")).to_contain_text("layer 2's h")
    assert page.evaluate(pixels) != first
    shoot(page, tmp_path, "read-layer-2")
    page.select_option("#layer", "1")
    sync_api.expect(page.locator("#status")).to_contain_text("layer 1's h")
    assert page.evaluate(pixels) == first


def test_memory_view_draws_a_strip_for_each_model(page, tmp_path):
    page.click("[data-view=memory]")
    page.click("#memory-example")
    page.click("#memory-go")
    page.wait_for_selector("#memory-tokens .mtoken")
    words = page.locator("#memory-tokens .mtoken")
    assert words.last.text_content() == "chinese" and words.count() == 19
    # The tiny model knows none of these words: they show as written, marked unknown.
    assert page.locator("#memory-tokens .mtoken.unknown").count() == 19
    words.last.click()
    sync_api.expect(page.locator("#memory-strips .strip")).to_have_count(2)
    titles = page.locator(".strip h3").all_text_contents()
    assert titles[0].startswith("words · lstm") and titles[1].startswith("zh · lstm")
    cells = page.locator(".strip").first.locator(".mcell:not(.target)")
    assert cells.count() == 19  # the start token and the 18 words before "chinese"
    assert "‖∂ log p / ∂e_k‖ = " in cells.first.get_attribute("title")
    colours = set(cells.evaluate_all("cs => cs.map(c => c.style.backgroundColor)"))
    assert len(colours) > 5
    # The character model predicts the "c" of "chinese" from every character before it.
    zh = page.locator(".strip").nth(1)
    assert zh.locator(".mcell.target").text_content() == "c"
    assert zh.locator(".mcell:not(.target)").count() == len("i am from china . i grew up there and went "
                                                          "to school there . i speak fluent ") + 1
    assert page.locator("#memory-legend").is_visible() and "log scale" in page.text_content("#memory-legend")
    shoot(page, tmp_path, "memory")
    # Picked in the character model, the "e" of "chinese" is inside the word model's "chinese".
    page.select_option("#model", "zh")
    page.click("#memory-go")
    chars = page.locator("#memory-tokens .mtoken")
    sync_api.expect(chars.last).to_have_text("e")
    chars.last.click()
    sync_api.expect(page.locator(".strip").first.locator(".mcell.target")).to_have_text("chinese")


def test_training_view_follows_the_runs_metrics(page, root, tmp_path):
    page.click("[data-view=training]")
    assert page.locator("#run option").all_text_contents() == ["run"]
    rows = page.locator("#training-rows tr")
    sync_api.expect(rows).to_have_count(2)  # the header and epoch 1
    sync_api.expect(page.locator("#training-sample-info")).to_contain_text("best/ checkpoint, epoch 1")
    assert page.text_content("#training-sample").strip()
    chart = "() => document.getElementById('training-chart').toDataURL()"
    drawn = page.evaluate(chart)
    with open(root / "run" / "metrics.jsonl", "a") as f:
        f.write(json.dumps(RECORDS[1]) + "\n")
    sync_api.expect(rows).to_have_count(3, timeout=15_000)
    assert page.evaluate(chart) != drawn
    assert "epoch 2" in page.text_content("#training-info")
    with open(root / "run" / "metrics.jsonl", "a") as f:  # the test record that ends a run
        f.write(json.dumps({"test_loss": 1.9, "test_ppl": 6.686, "best_epoch": 2}) + "\n")
    sync_api.expect(page.locator("#training-info")).to_contain_text("test perplexity 6.686 (best epoch 2)",
                                                                   timeout=15_000)
    sync_api.expect(rows).to_have_count(3)  # a line of text, not an epoch row
    page.select_option("#curve", "ppl")
    shoot(page, tmp_path, "training")
# -- Vectors view ------------------------------------------------------------------------------

PAINTED = """() => { const c = document.getElementById('map-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 16) colours.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
    return colours.size; }"""


def open_vectors(page, name: str = "english") -> None:
    sync_api.expect(page.locator("#vec-name option")).to_have_count(2)  # the view is built after the models
    page.click("[data-view=vectors]")
    if page.input_value("#vec-name") != name:
        page.select_option("#vec-name", name)
    sync_api.expect(page.locator("#status")).to_contain_text("words by PCA")


def take_back_refusal(page) -> None:
    """Chromium logs a request the API refuses as a console error: expected here, so dropped."""
    refusal = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    page.wait_for_timeout(100)
    assert page.problems.count(refusal) == 1
    page.problems.remove(refusal)


def click_word(page, word: str) -> None:
    x, y = page.evaluate("(w) => document.getElementById('map-canvas').positionOf(w)", word)
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def labels(page) -> int:
    return int(page.get_attribute("#map-canvas", "data-labels"))


def test_vectors_view_draws_a_map_and_a_click_highlights_the_neighbours(page, tmp_path):
    open_vectors(page)
    assert page.locator("#vec-name option").all_text_contents() == ["english", "tang-chars"]
    assert "300 words by PCA" in page.text_content("#status")  # the 300 most frequent
    assert page.evaluate(PAINTED) > 5 and 30 < labels(page) < 300  # readable: not all at once
    click_word(page, "cat")
    sync_api.expect(page.locator("#map-neighbours tr")).to_have_count(10)
    assert page.text_content("#map-picked") == "Neighbours of cat"
    near = page.locator("#map-neighbours td:first-child").all_text_contents()
    assert near[0] == XSS and page.locator("img").count() == 0  # shown as text
    assert set(near[1:6]) <= set(TOPICS["animals"].split())
    on_map = page.locator("#map-neighbours tr.on-map").count()
    assert on_map == 10 and page.get_attribute("#map-canvas", "data-highlighted") == "11"
    assert "10 of them on the map" in page.text_content("#status")
    shoot(page, tmp_path, "vectors-pca")


def test_map_search_zoom_pan_and_t_sne(page, tmp_path):
    open_vectors(page)
    page.fill("#map-search", "lisbon")
    sync_api.expect(page.locator("#status")).to_have_text("found lisbon")
    assert page.get_attribute("#map-canvas", "data-highlighted") == "1"
    page.fill("#map-search", "zebra")
    sync_api.expect(page.locator("#status")).to_contain_text("zebra is not on the map")
    page.fill("#map-search", "")
    before = labels(page) / int(page.get_attribute("#map-canvas", "data-visible"))
    position = page.evaluate("document.getElementById('map-canvas').positionOf('cat')")
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.move(box["x"] + position[0], box["y"] + position[1])
    for _ in range(5):
        page.mouse.wheel(0, -200)  # zoom in around "cat": room for more labels
    page.wait_for_timeout(100)
    assert labels(page) / int(page.get_attribute("#map-canvas", "data-visible")) > before
    after_zoom = page.evaluate("document.getElementById('map-canvas').positionOf('cat')")
    # Zoomed around the pointer: "cat" stays under it (within the rounding of the pointer).
    assert abs(after_zoom[0] - position[0]) < 8 and abs(after_zoom[1] - position[1]) < 8
    page.mouse.move(box["x"] + 300, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 360, box["y"] + 240, steps=4)
    page.mouse.up()
    moved = page.evaluate("document.getElementById('map-canvas').positionOf('cat')")
    assert moved == pytest.approx([after_zoom[0] + 60, after_zoom[1] + 40], abs=1)
    page.select_option("#map-method", "tsne")
    page.fill("#map-top", "200")
    page.click("#map-go")
    sync_api.expect(page.locator("#status")).to_contain_text("200 words by t-SNE", timeout=60000)
    assert page.evaluate(PAINTED) > 5 and labels(page) > 30
    shoot(page, tmp_path, "vectors-tsne")
    page.fill("#map-words", "cat, dog, red, blue, one, two, paris, rome")
    page.click("#map-go")
    sync_api.expect(page.locator("#status")).to_contain_text("8 words by t-SNE")
    assert labels(page) == 8


def test_neighbours_analogy_and_odd_one_out(page):
    open_vectors(page)
    page.fill("#vec-word", "red")
    page.click("#vec-near-go")
    sync_api.expect(page.locator("#vec-near-rows tr")).to_have_count(10)
    assert page.locator("#vec-near-rows td:first-child").first.text_content() in TOPICS["colours"].split()
    page.fill("#vec-a", "cat")
    page.fill("#vec-b", "dog")
    page.fill("#vec-c", "red")
    page.click("#vec-analogy-go")
    sync_api.expect(page.locator("#vec-analogy-rows tr")).to_have_count(5)
    page.fill("#vec-odd", "cat, dog, horse, paris")
    page.click("#vec-odd-go")
    sync_api.expect(page.locator("#status")).to_have_text("paris does not match the others")
    assert page.locator("#vec-odd-rows tr.chosen td").first.text_content() == "paris"
    page.fill("#vec-word", "zebra")
    page.click("#vec-near-go")
    sync_api.expect(page.locator("#status.error")).to_contain_text("'zebra' is not in the vocabulary")
    take_back_refusal(page)


def test_chinese_vectors_show_chinese_labels(page, tmp_path):
    open_vectors(page, "tang-chars")
    assert page.evaluate(PAINTED) > 5 and labels(page) > 30
    click_word(page, "山")
    sync_api.expect(page.locator("#map-neighbours tr")).to_have_count(10)
    assert page.text_content("#map-picked") == "Neighbours of 山"
    near = page.locator("#map-neighbours td:first-child").all_text_contents()
    assert all(len(w) == 1 and "\u4e00" <= w <= "\u9fff" for w in near)
    # The canvas draws the characters in a CJK font: "山" is as wide as its font size, not a box.
    width = page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
        c.font = '12px system-ui, "Noto Sans", "WenQuanYi Micro Hei", sans-serif';
        return c.measureText('山').width; }""")
    assert width == pytest.approx(12, abs=1)
    shoot(page, tmp_path, "vectors-chinese")


def test_export_buttons_download_the_files(page, tmp_path):
    open_vectors(page)
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#vec-export")
    sync_api.expect(page.locator("#status")).to_contain_text("projector.tensorflow.org")
    page.wait_for_timeout(200)
    assert [d.suggested_filename for d in downloads] == ["english-vectors.tsv", "english-metadata.tsv"]
    for download in downloads:
        download.save_as(tmp_path / download.suggested_filename)
    rows = (tmp_path / "english-vectors.tsv").read_text(encoding="utf-8").splitlines()
    labels_ = (tmp_path / "english-metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(labels_) == 320 and {len(r.split("\t")) for r in rows} == {16}
    page.click("[data-view=read]")
    page.select_option("#model", "zh")
    page.fill("#read-text", "我爱北京")
    with page.expect_download() as npz:
        page.click("#read-export")
    assert npz.value.suggested_filename == "zh-activations.npz"
    npz.value.save_as(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as arrays:
        assert list(arrays["tokens"]) == ["\n", *"我爱北京"] and arrays["layer1_C"].shape == (5, 64)
    page.fill("#read-text", "我" * 5001)
    page.click("#read-export")
    sync_api.expect(page.locator("#status.error")).to_contain_text("longer than 5000 characters")
    take_back_refusal(page)
