"""The studio's speed and load, with the ready-made character models (run it on an idle machine).

    python bench/studio.py                 # about 3 minutes
    python bench/studio.py --repeats 3     # a quick rehearsal

A real `rnnlab studio shakespeare shakespeare-rnn` on a free port. Server side (httpx2), each a
median of --repeats:
- first token: from the request to the first server-sent event of /api/generate;
- streaming: tokens/s of a 2,000-token generation, after its first token;
- read: /api/activations of 1,000 characters (one layer, every kind, as the Read view asks);
- memory: /api/memory of 300 characters at the last position.
In the browser (the system's Chromium, headless, via Playwright), from the click to:
- the first token on the page, and tokens/s into the page over a 2,000-token generation;
- the Read view's heat map drawn for 1,000 characters;
- the Memory view's strips drawn (both models) for 300 characters.
Load: 16 clients each generating 200 tokens at once (all must finish without an error; p50 and
p95 of their times); the same beside a slow client that reads one event per 0.2 s; a client
that disconnects after 5 tokens, then the server's CPU seconds over the next 2 s (near zero
when its generation stopped). Targets: first token ≤ 150 ms, ≥ 300 tokens/s, read ≤ 1 s,
memory ≤ 2 s. Results go to bench/results/studio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2

from rnnlab.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "studio.json"
MODEL = "shakespeare"
TEXT = (Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare"
        / "input.txt").read_text()[:5000]


def start_server() -> tuple[subprocess.Popen, str]:
    """`rnnlab studio` with both Shakespeare models on a free port: (process, base URL)."""
    process = subprocess.Popen([sys.executable, "-m", "rnnlab", "studio", MODEL, "shakespeare-rnn",
                                "--port", "0"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    return process, line.split(" at ")[1].split()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream(client: httpx2.Client, base: str, length: int, seed: int, pause: float = 0.0,
           stop_after: int | None = None) -> dict:
    """One generation read as its events arrive: seconds to the first token and to the end."""
    start, first, tokens = time.perf_counter(), None, 0
    params = {"model": MODEL, "prime": "ROMEO:", "length": length, "seed": seed}
    with client.stream("GET", base + "api/generate", params=params) as response:
        if response.status_code != 200:
            return {"error": response.status_code}
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if "error" in event:
                return {"error": event["error"]}
            if event.get("done"):
                break
            tokens += 1
            first = first or time.perf_counter() - start
            if stop_after and tokens == stop_after:
                break  # leaving the block closes the connection: the client has gone
            time.sleep(pause)
    return {"first": first, "total": time.perf_counter() - start, "tokens": tokens}


def timed(call, repeats: int) -> float:
    """Median seconds of `call()` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def server_side(base: str, repeats: int) -> dict:
    """The four speeds measured from a client of the API."""
    with httpx2.Client(timeout=60) as client:
        stream(client, base, 20, 0)  # warm up the model and the server
        firsts = [stream(client, base, 50, seed)["first"] for seed in range(repeats)]
        long = [stream(client, base, 2000, seed) for seed in range(repeats)]
        rate = statistics.median((g["tokens"] - 1) / (g["total"] - g["first"]) for g in long)
        read = timed(lambda: client.get(base + "api/activations",
                                        params={"model": MODEL, "text": TEXT[:1000], "layer": 1}
                                        ).raise_for_status(), repeats)
        memory = timed(lambda: client.get(base + "api/memory",
                                          params={"model": MODEL, "text": TEXT[:300], "position": 299}
                                          ).raise_for_status(), repeats)
    return {"first_token_ms": round(1000 * statistics.median(firsts), 1),
            "tokens_per_second": round(rate), "read_1000_s": round(read, 3),
            "memory_300_s": round(memory, 3)}


def load(base: str, pid: int) -> dict:
    """16 simultaneous generations; with a slow client beside; a client that leaves early."""
    def crowd(slow: bool) -> dict:
        results: list[dict] = []
        with httpx2.Client(timeout=120, limits=httpx2.Limits(max_connections=32)) as client:
            def one(seed: int, pause: float = 0.0) -> None:
                results.append(dict(stream(client, base, 200, seed, pause), slow=pause > 0))
            threads = [threading.Thread(target=one, args=(seed,)) for seed in range(16)]
            if slow:
                threads.append(threading.Thread(target=one, args=(99, 0.2)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        fast = sorted(r["total"] for r in results if not r["slow"] and "error" not in r)
        return {"clients": len(results), "finished": sum(r.get("tokens") == 200 for r in results),
                "errors": [r["error"] for r in results if "error" in r],
                "p50_s": round(statistics.median(fast), 2),
                "p95_s": round(fast[min(len(fast) - 1, round(0.95 * (len(fast) - 1)))], 2)}

    out = {"sixteen": crowd(False), "sixteen_beside_a_slow_client": crowd(True)}
    with httpx2.Client(timeout=60) as client:
        stream(client, base, 2000, 1, stop_after=5)
        time.sleep(0.5)  # the server notices between two tokens
        before = cpu_seconds(pid)
        time.sleep(2.0)
        out["cpu_seconds_in_2s_after_a_disconnect"] = round(cpu_seconds(pid) - before, 3)
    return out


def until(page, script: str) -> float:
    """Milliseconds from running `script` (which clicks) to the page's `done()` condition."""
    return page.evaluate("""async ([script]) => {
        const t0 = performance.now();
        const done = new Function(script)();
        while (!done()) {
            if (performance.now() - t0 > 60000) throw new Error("no result in 60 s");
            await new Promise((r) => requestAnimationFrame(r));
        }
        return performance.now() - t0;
    }""", [script])


def in_browser(base: str, repeats: int) -> dict:
    """The same speeds as a person sees them: from the click to the pixels' DOM."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(base)
        page.wait_for_selector("#model option", state="attached")
        page.select_option("#model", MODEL)
        page.fill("#prime", "ROMEO:")
        firsts, rates = [], []
        for seed in range(repeats):
            page.fill("#seed", str(seed))
            page.fill("#length", "2000")
            firsts.append(until(page, """document.getElementById('start').click();
                return () => document.querySelector('#output .token') !== null;"""))
            rest = until(page, "return () => !document.getElementById('start').disabled;")
            rates.append(1999 / (rest / 1000))
        page.click("button[data-view=read]")
        page.fill("#read-text", TEXT[:1000])
        page.select_option("#layer", "1")
        reads = [until(page, """document.getElementById('status').textContent = '';
            document.getElementById('read-go').click();
            return () => document.getElementById('status').textContent.includes('tokens ×');""")
            for _ in range(repeats)]
        figures = {"first_token_ms": round(statistics.median(firsts), 1),
                   "tokens_per_second": round(statistics.median(rates)),
                   "read_1000_ms": round(statistics.median(reads))}
        figures.update(memory_in_browser(page, repeats))
        browser.close()
    return figures


def memory_in_browser(page, repeats: int) -> dict:
    """The Memory view's strips for 300 characters, both models, from the click on a token."""
    if page.locator("button[data-view=memory]").count() == 0:
        return {}
    page.click("button[data-view=memory]")
    page.fill("#memory-text", TEXT[:300])
    page.click("#memory-go")
    page.wait_for_selector("#memory-tokens .mtoken")
    times = [until(page, """document.getElementById('memory-strips').replaceChildren();
        const tokens = document.querySelectorAll('#memory-tokens .mtoken');
        tokens[tokens.length - 1].click();
        return () => document.querySelectorAll('#memory-strips .strip').length >= 2;""")
             for _ in range(repeats)]
    return {"memory_300_ms": round(statistics.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    process, base = start_server()
    try:
        results = {"server": server_side(base, args.repeats),
                   "browser": in_browser(base, args.repeats),
                   "load": load(base, process.pid)}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    results["targets"] = {"first_token_ms": 150, "tokens_per_second": 300, "read_1000_s": 1.0,
                          "memory_300_s": 2.0}
    results["config"] = {"model": MODEL, "repeats": args.repeats, "machine": platform.machine(),
                         "cpus": os.cpu_count(), "alone": "run alone on an idle machine"}
    print(json.dumps(results, indent=1))
    with atomic_write(RESULTS) as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
