"""Take the README's screenshots of the studio, one per view, with the ready-made models.

    python scripts/studio_screenshots.py --run /tmp/rnnlab-bench/tang-large

Starts `rnnlab studio` with no model argument (so the ready-made models and vectors, as a
new user sees them) plus one training run for the Training view, drives each view in the
system's headless Chromium (Playwright) and writes docs/studio/VIEW.png.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "studio"
READ_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n"
             "Speak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n")


def generate(page, token: int) -> None:
    """Start the generation set up on the page, wait for its end and open one token's distribution."""
    page.click("#start")
    page.wait_for_selector("#start:not([disabled])")
    page.locator("#output .token").nth(token).click()


def write(page) -> None:
    """Shakespeare writes; a token's distribution is open."""
    page.select_option("#model", "shakespeare")
    page.fill("#prime", "ROMEO:")
    page.fill("#length", "300")
    page.fill("#seed", "7")
    generate(page, 40)


def poem(page) -> None:
    """Tang writes a rhymed five-character acrostic quatrain."""
    page.select_option("#model", "tang")
    page.fill("#prime", "")
    page.select_option("#form", "5")
    page.fill("#acrostic", "春夏秋冬")
    page.check("#rhyme")
    page.fill("#seed", "3")
    generate(page, 5)


def read(page) -> None:
    """Shakespeare's second layer reads the first lines of its corpus."""
    page.select_option("#model", "shakespeare")
    page.fill("#read-text", READ_TEXT)
    page.select_option("#layer", "2")
    page.click("#read-go")
    expect(page.locator("#status")).to_contain_text("units of layer 2")


def score(page) -> None:
    """The WikiText-2 model scores a sentence."""
    page.select_option("#model", "wikitext2")
    page.fill("#score-text", "the king of france was crowned at reims in 1429 .")
    page.click("#score-go")
    page.wait_for_selector("#score-rows tr")


def memory(page) -> None:
    """How far back each model reaches, for the lecture's example, picked in the word model."""
    page.select_option("#model", "wikitext2")
    page.click("#memory-example")
    page.click("#memory-go")
    page.wait_for_selector("#memory-tokens .mtoken")
    page.locator("#memory-tokens .mtoken").last.click()
    expect(page.locator("#memory-strips .strip")).to_have_count(4, timeout=60_000)


def training(page) -> None:
    """The curves of a run, with a sample of its latest checkpoint."""
    page.wait_for_selector("#training-rows tr")
    page.wait_for_timeout(3000)  # the sample


def vectors(page) -> None:
    """The map of the 300 most frequent words; a clicked word's neighbours marked."""
    expect(page.locator("#status")).to_contain_text("words by PCA", timeout=60_000)
    page.select_option("#map-method", "tsne")
    page.click("#map-go")
    expect(page.locator("#status")).to_contain_text("t-SNE", timeout=60_000)
    x, y = page.evaluate("(w) => document.getElementById('map-canvas').positionOf(w)", "city")
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.locator("#map-neighbours tr")).to_have_count(10)


VIEWS = {"write": write, "poem": poem, "read": read, "score": score, "memory": memory,
         "training": training, "vectors": vectors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a training run folder for the Training view")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "rnnlab", "studio", "--run", args.run,
                               "--port", "0"], stdout=subprocess.PIPE, text=True)
    base = server.stdout.readline().split(" at ")[1].split()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for name, drive in VIEWS.items():
                page = browser.new_page(viewport={"width": 1200, "height": 760})
                page.goto(base + "#" + ("write" if name == "poem" else name))
                page.wait_for_selector("#model option", state="attached")
                drive(page)
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(OUT / f"{name}.png")
                page.close()
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


if __name__ == "__main__":
    main()
