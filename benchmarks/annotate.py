"""Speed of the labelling app: how soon a comparison plays, and what a clip costs to encode.

``comparison_ready_ms``: in a real headless Chromium, the time from opening a comparison
(the page asks the server for the next item) to both clips playing, measured by the page
itself, for ``COMPARISONS`` comparisons answered after a think time of ``THINK_S`` (a person
takes 15-30 s, so in real use the prefetch has five times longer). The first comparison,
opened as soon as the server says it serves, is reported apart. ``clip_encode_ms``: one segment
of ``SEGMENT`` steps re-rendered from the stored physics state at ``SIZE`` px and encoded
as WebM (VP9), per segment, after the renderer exists (its one-off creation apart).
Target: a comparison ready in under 1 s.

    .venv/bin/python benchmarks/annotate.py [--screenshots]

``--screenshots`` also saves the labelling and monitoring pages as docs/annotate-*.png.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from common import save_result
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from rrm_data.annotation.clips import ClipMaker
from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset

ROOT = Path(__file__).resolve().parents[1]
SEGMENT, SIZE, COMPARISONS, THINK_S, ENCODED = 50, 112, 12, 3.0, 10
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--window-size=1100,760"]


def make_data(root: Path) -> Path:
    data = root / "data"
    assert main(["collect", f"out={data}", "episodes=12", "episode_steps=150",
                 f"segment_length={SEGMENT}", "segments_per_episode=3", "pairs=60",
                 "policy=[expert:0,expert:0.5,random]"]) == 0
    assert main(["query", f"data={data}", "strategy=uniform", "n=40"]) == 0
    return data


def clip_encoding(data: Path, cache: Path) -> dict:
    clips = ClipMaker(open_dataset(data), cache, "corner", SIZE)
    try:
        start = time.perf_counter()
        clips.ensure(0)
        first = time.perf_counter() - start
        times = []
        for segment in range(1, ENCODED + 1):
            start = time.perf_counter()
            clips.ensure(segment)
            times.append(time.perf_counter() - start)
    finally:
        clips.close()
    return {"first_segment_ms_with_renderer_setup": round(first * 1000, 1),
            "per_segment_ms_median": round(float(np.median(times)) * 1000, 1),
            "per_segment_ms_max": round(float(np.max(times)) * 1000, 1),
            "segments": ENCODED, "steps_per_segment": SEGMENT, "image_size": SIZE,
            "clip_bytes_median": int(np.median([p.stat().st_size for p in cache.iterdir()]))}


def start_server(data: Path, campaign: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rrm_data.cli", "annotate", f"data={data}",
                             f"campaign={campaign}", "port=0", "annotators=[ana,ben,cy]",
                             "calibration=6", "calibration_first=2", "overlap=0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    tokens = {}
    for line in proc.stdout:
        found = re.match(r"\s+(\S+)\s+http://\S+#token=(\S+)", line)
        if found:
            tokens[found.group(1)] = found.group(2)
        served = re.match(r"serving (http://\S+)/", line)
        if served:
            return proc, served.group(1), tokens
    raise RuntimeError("the server did not start")


def noisy_oracle(campaign: Path, annotator: str, item: int, rng: np.random.Generator,
                 error: float) -> str:
    """A simulated person: the side with the higher true return, wrong with prob. ``error``."""
    with sqlite3.connect(campaign / "store.sqlite") as db:
        oracle, swap = db.execute("SELECT i.oracle, q.swap FROM items i JOIN queue q USING "
                                  "(item_id) WHERE q.annotator = ? AND q.item_id = ?",
                                  (annotator, item)).fetchone()
    if oracle == 0.5:
        return "equal"
    left = (oracle == 1.0) != bool(swap)
    return "left" if left != (rng.random() < error) else "right"


def post_labels(url: str, campaign: Path, name: str, token: str, count: int,
                rng: np.random.Generator, error: float) -> None:
    """Another annotator's answers, straight through the API (for the monitoring page)."""
    host, port = url.removeprefix("http://").split(":")
    for _ in range(count):
        connection = http.client.HTTPConnection(host, int(port))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        connection.request("GET", "/api/next", headers=headers)
        item = json.loads(connection.getresponse().read())["item"]
        body = {"item_id": item["id"], "choice": noisy_oracle(campaign, name, item["id"], rng,
                                                              error),
                "confidence": int(rng.integers(1, 4)), "seconds": float(rng.uniform(8, 30)),
                "request_id": str(uuid.uuid4())}
        connection.request("POST", "/api/label", json.dumps(body), headers)
        connection.getresponse().read()
        connection.close()


def comparisons(data: Path, campaign: Path, screenshots: Path | None) -> dict:
    proc, url, tokens = start_server(data, campaign)
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}/#token={tokens['ana']}")
        keys = {"left": Keys.ARROW_LEFT, "right": Keys.ARROW_RIGHT, "equal": Keys.ARROW_DOWN}
        rng = np.random.default_rng(0)
        for k in range(COMPARISONS):
            WebDriverWait(driver, 60, poll_frequency=0.02).until(
                lambda d, k=k: d.execute_script("return window.__rrm.ready.length") > k)
            time.sleep(THINK_S)
            if screenshots is not None and k == 3:
                driver.find_element("tag name", "body").send_keys("3")
                driver.save_screenshot(str(screenshots / "annotate-label.png"))
            item = driver.execute_script("return window.__rrm.item")
            choice = noisy_oracle(campaign, "ana", item, rng, 0.1)
            driver.find_element("tag name", "body").send_keys(keys[choice])
        ready = driver.execute_script("return window.__rrm.ready")
        if screenshots is not None:
            post_labels(url, campaign, "ben", tokens["ben"], 20, rng, 0.1)
            post_labels(url, campaign, "cy", tokens["cy"], 20, rng, 0.3)
            driver.get(f"{url}/monitor#token={tokens['admin']}")
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script("return document.body.dataset.loaded") == "true")
            driver.save_screenshot(str(screenshots / "annotate-monitor.png"))
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=30)
    later = np.array(ready[1:])
    return {"first_ms": round(ready[0], 1), "median_ms": round(float(np.median(later)), 1),
            "p95_ms": round(float(np.percentile(later, 95)), 1),
            "max_ms": round(float(later.max()), 1), "comparisons": len(ready),
            "think_time_s": THINK_S, "target_ms": 1000,
            "meets_target": bool(later.max() < 1000 and ready[0] < 1000)}


def run() -> None:
    screenshots = ROOT / "docs" if "--screenshots" in sys.argv[1:] else None
    if screenshots is not None:
        screenshots.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp))
        result = {
            "clip_encode": clip_encoding(data, Path(tmp) / "clips"),
            "comparison_ready": comparisons(data, Path(tmp) / "campaign", screenshots),
            "machine": f"{os.cpu_count()} CPU cores (shared)",
        }
    save_result("annotate", result)


if __name__ == "__main__":
    run()
