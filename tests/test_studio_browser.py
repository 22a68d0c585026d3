"""The studio's page in a real Chromium against a real server (`rnnlab studio` on a free port).

Skipped where Playwright or /usr/bin/chromium is missing (.ci/run installs them). Screenshots
go to the test's tmp folder and are copied to /tmp/studio-shots/ for a person to look at.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    tiny_lm().save(root / "words")
    tiny_lm(["\n", *"我爱北京天安门𠀋"], level="char", layers=2).save(root / "zh")
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", "studio", str(root / "words"), str(root / "zh"),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
