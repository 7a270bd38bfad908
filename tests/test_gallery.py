"""gallery: a real headless Chromium opens the page offline with every image loaded and no
console errors; re-rendered frames for state-only data, stored frames when present."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from rrm_data.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--virtual-time-budget=10000", "--dump-dom"]
# Runs first in <head>: records failed resources, script errors and console.error calls, then
# on load writes image status and the errors into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  e.message || ('failed to load ' + (e.target.getAttribute('src') || e.target.href))), true);
const consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const images = [...document.images];
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def open_in_chromium(folder: Path, profile: Path) -> dict:
    """Load the gallery (plus the probe) from file:// and return what the probe saw."""
    page = folder / "probe.html"
    page.write_text((folder / "index.html").read_text().replace("<head>", "<head>\n" + PROBE, 1))
    result = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", page.as_uri()],
                            capture_output=True, text=True, timeout=60)
    page.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def gallery(data: Path, out: Path, *extra: str) -> int:
    return main(["gallery", f"data={data}", f"out={out}", "k=1", "frames=4", "image_size=48",
                 *extra])


@pytest.mark.slow
def test_gallery_opens_offline_in_chromium_with_every_image(small_dataset: Path,
                                                            tmp_path: Path) -> None:
    assert CHROMIUM, "Debian's chromium is missing: run `make system-deps`"
    out = tmp_path / "gallery"
    assert gallery(small_dataset, out, "reward=[true,prior:gripper_object]") == 0
    html = (out / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not re.match(r"[a-z]+:|/", s) for s in sources)  # relative only
    assert all((out / s).is_file() for s in sources)
    # two rewards × (top + bottom) × (episodes + segments) cards, each a filmstrip and a plot
    assert html.count('class="film"') == 2 * 2 * 2 and "re-rendered" in html

    seen = open_in_chromium(out, tmp_path / "profile")
    assert seen == {"images": 16, "broken": [], "errors": []}

    film = next((out / "media").glob("episode-*.gif"))
    with Image.open(film) as gif:
        assert gif.size == (48, 48) and gif.n_frames == 4 and gif.is_animated

    # the probe does see a missing file
    next((out / "plots").glob("*.png")).unlink()
    seen = open_in_chromium(out, tmp_path / "profile2")
    assert len(seen["broken"]) >= 1 and len(seen["errors"]) >= 1


@pytest.mark.slow
def test_gallery_uses_stored_frames_when_the_dataset_has_them(make_dataset,
                                                              tmp_path: Path) -> None:
    data = make_dataset(episodes=4, episode_steps=30, segment_length=10, segments_per_episode=4,
                        pairs=16, test_fraction=0.5, camera="corner", image_size=32)
    out = tmp_path / "gallery"
    assert gallery(data, out, "reward=prior:object_goal", "split=train") == 0
    assert "stored frames of camera corner" in (out / "index.html").read_text()
    with Image.open(next((out / "media").glob("segment-*.gif"))) as gif:
        assert gif.size == (32, 32)  # the stored frames, not re-rendered at image_size=48
