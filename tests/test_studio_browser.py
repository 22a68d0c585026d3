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


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    tiny_lm().save(root / "words")
    tiny_lm(["\n", *"我爱北京天安门𠀋"], level="char", layers=2).save(root / "zh")
    run = root / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    tiny_lm().save(run / "best", {"epoch": 1})
    return root


@pytest.fixture(scope="module")
def server(root):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", "studio", str(root / "words"), str(root / "zh"),
         "--run", str(root / "run"), "--port", "0"],
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


def test_stop_ends_a_generation(page):
    page.fill("#length", "2000")
    page.click("#start")
    page.locator("#output .token").nth(3).wait_for(state="attached")
    page.click("#stop")
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
    page.select_option("#curve", "ppl")
    shoot(page, tmp_path, "training")
