"""annotate: a real headless Chromium labels through the page and the export holds exactly those
labels; 8 concurrent annotators on loopback, a kill -9 mid-run, every acknowledged label stored
once; κ and agreement equal scikit-learn's; bad input gets one line (401 JSON, nothing written)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import parquet_bytes
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.metrics import cohen_kappa_score

from rrm_data.annotation.agreement import cohen_kappa, fleiss_kappa, majority
from rrm_data.annotation.campaign import (
    CampaignSpec,
    campaign_items,
    campaign_queues,
    campaign_settings,
    check_same_dataset,
)
from rrm_data.annotation.monitor import labels_by_annotator, summary
from rrm_data.annotation.store import Item, Store
from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.card import render_card
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import validate_dataset
from rrm_data.dataset.writer import write_dataset

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]


class Server:
    """``rrm-data annotate`` in a subprocess on a free loopback port; tokens from its output."""

    def __init__(self, data: Path, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rrm_data.cli", "annotate", f"data={data}", "port=0",
             "image_size=48", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env)
        self.tokens: dict[str, str] = {}
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            found = re.match(r"\s+(\S+)\s+(http://\S+)/\S*#token=(\S+)", line)
            if found:
                self.tokens[found.group(1)] = found.group(3)
            served = re.match(r"serving (http://(\[[\da-f:]+\]|[\d.]+):(\d+))/", line)
            if served:
                self.url, self.port = served.group(1), int(served.group(3))
                self.host = served.group(2).strip("[]")
                return
        raise AssertionError("server did not start:\n" + "".join(lines))

    def request(self, method: str, path: str, token: str | None = None,
                body: dict | None = None,
                connection: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
        """One request, on ``connection`` (kept alive) or a fresh one."""
        own = connection is None
        connection = connection or self.connect()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None,
                               headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            if own:
                connection.close()
        is_json = response.getheader("content-type", "").startswith("application/json")
        return response.status, json.loads(payload) if is_json else {"bytes": len(payload)}

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop the server; what it printed after it started serving."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        if self.proc.stdout.closed:
            return ""
        rest = self.proc.stdout.read()
        self.proc.stdout.close()
        return rest


@pytest.fixture(scope="module")
def queried(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small dataset with every unlabelled train pair queried (uniform)."""
    data = tmp_path_factory.mktemp("annotate") / "data"
    shutil.copytree(small_dataset, data)
    assert main(["query", f"data={data}", "strategy=uniform", "n=171", "pool=171"]) == 0
    return data


def copy_of(data: Path, tmp_path: Path) -> Path:
    shutil.copytree(data, tmp_path / "data")
    return tmp_path / "data"


def answers(campaign: Path) -> list[tuple]:
    with sqlite3.connect(campaign / "store.sqlite") as db:
        return db.execute("SELECT request_id, annotator, item_id, choice, label, confidence "
                          "FROM answers ORDER BY answer_id").fetchall()


def swaps(campaign: Path, annotator: str) -> dict[int, bool]:
    with sqlite3.connect(campaign / "store.sqlite") as db:
        return {i: bool(s) for i, s in db.execute(
            "SELECT item_id, swap FROM queue WHERE annotator = ?", (annotator,))}


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1000,800")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


# (key or button, confidence key) for 24 comparisons: left, right, equal (ties), skips
SCRIPT = ([(Keys.ARROW_LEFT, "3"), (Keys.ARROW_RIGHT, "1"), (Keys.ARROW_DOWN, None),
           ("#answer-left", None), ("s", None), ("=", "2"), ("#answer-right", "3"),
           (Keys.ARROW_RIGHT, None)] * 3)
CHOICE = {Keys.ARROW_LEFT: "left", Keys.ARROW_RIGHT: "right", Keys.ARROW_DOWN: "equal",
          "=": "equal", "s": "skip", "#answer-left": "left", "#answer-right": "right"}


QUESTION = "Which arm moves more smoothly?"


def test_browser_labels_then_export_holds_exactly_those_labels(queried: Path,
                                                               tmp_path: Path) -> None:
    data = copy_of(queried, tmp_path)
    campaign = tmp_path / "campaign"
    server = Server(data, f"campaign={campaign}", "annotators=[ana,ben]", "calibration=6",
                    "calibration_first=2", "overlap=0.1", "threshold=0",
                    f"criterion='{QUESTION}'")
    driver = chromium()
    shown = []
    try:
        driver.get(f"{server.url}/#token={server.tokens['ana']}")
        for k, (key, confidence) in enumerate(SCRIPT):
            WebDriverWait(driver, 30, poll_frequency=0.02).until(
                lambda d, k=k: d.execute_script("return window.__rrm.ready.length") > k)
            if k == 0:  # the campaign's question, above the clips (docs/annotate-question.png)
                assert driver.find_element("id", "question").text == QUESTION
                assert QUESTION in driver.title
                driver.save_screenshot(str(tmp_path / "annotate-question.png"))
            assert driver.execute_script(
                "const v = [...document.querySelectorAll('video')];"
                "return v.every(x => !x.paused && x.readyState >= 2 && x.videoWidth === 48)")
            shown.append(driver.execute_script("return window.__rrm.item"))
            body = driver.find_element("tag name", "body")
            if confidence:
                body.send_keys(confidence)
            if key.startswith("#"):
                driver.find_element("css selector", key).click()
            else:
                body.send_keys(key)
        WebDriverWait(driver, 30, poll_frequency=0.02).until(
            lambda d: d.execute_script("return window.__rrm.answered") == len(SCRIPT))
        speed = driver.find_element("id", "speed")
        body.send_keys("-")
        assert speed.get_attribute("value") == "0.75"
        assert driver.execute_script("return document.getElementById('left').playbackRate") == 0.75
        driver.get(f"{server.url}/monitor#token={server.tokens['admin']}")
        WebDriverWait(driver, 30, poll_frequency=0.02).until(
            lambda d: d.execute_script("return document.body.dataset.loaded") == "true")
        rows = driver.find_elements("css selector", "#annotators tbody tr")
        assert rows[0].text.startswith("ana 21 6 3")  # 21 labels, 6 ties, 3 skips
    finally:
        driver.quit()
        server.stop()

    stored = answers(campaign)
    assert [(r[1], r[2], r[3]) for r in stored] == [
        ("ana", item, CHOICE[key]) for item, (key, _) in zip(shown, SCRIPT, strict=True)]
    store = Store(campaign / "store.sqlite")
    items = store.items()
    store.close()
    assert sum(items[i].kind == "calibration" for i in shown) >= 3

    assert main(["annotate", f"data={data}", f"campaign={campaign}", "export=true"]) == 0
    assert validate_dataset(data) == []
    dataset = open_dataset(data)
    train = dataset.preferences("train")
    human = train.filter(pc.starts_with(train.column("teacher"), "human"))
    swap = swaps(campaign, "ana")
    expected = sorted(
        (items[i].pair_index, items[i].segment_a, items[i].segment_b,
         0.5 if CHOICE[key] == "equal" else float((CHOICE[key] == "left") != swap[i]),
         float(conf or 2))
        for i, (key, conf) in zip(shown, SCRIPT, strict=True) if CHOICE[key] != "skip")
    mine = human.filter(pc.equal(human.column("teacher"), "human:ana")).to_pydict()
    assert sorted(zip(mine["pair_index"], mine["segment_a"], mine["segment_b"], mine["label"],
                      mine["confidence"], strict=True)) == expected
    aggregate = human.filter(pc.equal(human.column("teacher"), "human")).to_pydict()
    assert sorted(zip(aggregate["pair_index"], aggregate["label"], strict=True)) == \
        [(p, lab) for p, _, _, lab, _ in expected]  # one annotator: the majority is hers
    assert dataset.info.extra["annotation"]["annotators"]["ana"]["passing"]
    assert dataset.info.extra["annotation"]["criterion"] == QUESTION
    assert dataset.info.extra["annotation"]["pairs_by_criterion"] == {
        QUESTION: sorted({p for p, *_ in expected})}
    assert f"| {QUESTION} | {len({p for p, *_ in expected})} |" in render_card(dataset.info)
    # with a pass mark she cannot reach, her labels stay but the aggregate drops them
    assert main(["annotate", f"data={data}", f"campaign={campaign}", "export=true",
                 "threshold=1.01"]) == 2
    assert main(["annotate", f"data={data}", f"campaign={campaign}", "export=true",
                 f"out={tmp_path / 'strict'}", "threshold=1"]) == 0
    strict = open_dataset(tmp_path / "strict")
    calibration = [a for a in answers(campaign) if items[a[2]].kind == "calibration"]
    if not all(a[4] == items[a[2]].known for a in calibration):
        assert not strict.info.extra["annotation"]["annotators"]["ana"]["passing"]
        assert "human" not in strict.info.counts.labels["train"]
    assert strict.info.counts.labels["train"]["human:ana"] == 21
    scripted = train.filter(pc.invert(pc.starts_with(train.column("teacher"), "human")))
    assert scripted.column("confidence").null_count == scripted.num_rows
    assert dataset.info.counts.labels["train"]["human:ana"] == 21

    # the export trains and evaluates like any teacher's labels
    assert main(["train-reward", f"data={data}", "data.teacher=human:ana",
                 f"out={tmp_path / 'run'}", "model.hidden=16", "model.layers=1",
                 "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]) == 0
    assert main(["evaluate", "reward=true", f"data={data}", "split=train", "teacher=human",
                 f"out={tmp_path / 'eval'}"]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["teacher"] == "human"


def check_bad_requests(server: Server, campaign: Path, token: str) -> None:
    """A bad token gets 401 with a JSON error, bad bodies 400/404, and nothing is written;
    then a good answer is stored."""
    _, first = server.request("GET", "/api/next", token)
    answer = {"item_id": first["item"]["id"], "choice": "left", "confidence": 2,
              "seconds": 1.0, "request_id": "bad-token-1"}
    for bad in (None, "nope", server.tokens["admin"]):
        status, body = server.request("POST", "/api/label", bad, answer)
        assert status == 401 and "token" in body["error"]
    for path in ("/api/next", f"/api/clip/{first['item']['id']}/left"):
        assert server.request("GET", path, "x" * 32)[0] == 401
    assert server.request("GET", "/api/stats", token)[0] == 403
    assert server.request("POST", "/api/label", token, {**answer, "confidence": 7}) == \
        (400, {"error": "confidence must be 1, 2 or 3"})
    assert server.request("POST", "/api/label", token, {**answer, "extra": 1})[0] == 400
    assert server.request("POST", "/api/label", token, {**answer, "item_id": 10**6})[0] == 404
    assert server.request("GET", "/api/clip/0/..%2F..%2Fstore.sqlite", token)[0] == 404
    assert answers(campaign) == []
    assert server.request("POST", "/api/label", token, answer) == \
        (200, {"stored": True, "answer_id": 1, "repeated": False})
    assert server.request("POST", "/api/label", token, answer) == \
        (200, {"stored": True, "answer_id": 1, "repeated": True})
    assert server.request("POST", "/api/label", token, {**answer, "request_id": "other-id-1"}) \
        == (409, {"error": f"item {answer['item_id']} is already answered"})
    assert len(answers(campaign)) == 1


def queue(campaign: Path, annotator: str) -> list[int]:
    with sqlite3.connect(campaign / "store.sqlite") as db:
        return [i for (i,) in db.execute("SELECT item_id FROM queue WHERE annotator = ? "
                                         "ORDER BY position", (annotator,))]


def run_annotators(server_of: list[Server], campaign: Path, tokens: dict[str, str],
                   acked: dict[str, list], latencies: list[float], restarted: threading.Event,
                   killed: threading.Event, errors: list) -> list[threading.Thread]:
    """Each annotator's thread posts an answer to every item of its queue, one at a time; on a
    dead server it waits for the restart and sends the same answer (same request_id) again."""
    rng = np.random.default_rng(0)
    queues = {name: queue(campaign, name) for name in tokens}
    choices = {name: rng.choice(["left", "right", "equal"], size=len(queues[name]),
                                p=[.45, .45, .1]) for name in tokens}

    def work(name: str, token: str) -> None:
        try:
            answer_all(name, token)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    def answer_all(name: str, token: str) -> None:
        server = server_of[0]
        connection = server.connect()
        for item, choice in zip(queues[name], choices[name], strict=True):
            body = {"item_id": item, "choice": str(choice), "confidence": 2, "seconds": 1.5,
                    "request_id": str(uuid.uuid4())}
            while True:
                try:
                    start = time.perf_counter()
                    status, reply = server.request("POST", "/api/label", token, body,
                                                   connection)
                    assert status == 200, reply
                    latencies.append(time.perf_counter() - start)
                    acked[name].append((body["request_id"], item, bool(reply["repeated"])))
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    assert killed.is_set()
                    restarted.wait(60)
                    connection.close()
                    server = server_of[0]
                    connection = server.connect()
        connection.close()

    threads = [threading.Thread(target=work, args=(n, t)) for n, t in tokens.items()]
    for t in threads:
        t.start()
    return threads


def check_exactly_once(campaign: Path, acked: dict[str, list], per_annotator: int,
                       team: list[str]) -> None:
    """Every acknowledged answer of the team is stored once, and nothing else of theirs."""
    stored = [r for r in answers(campaign) if r[1] in team]
    ids = [r[0] for r in stored]
    assert len(ids) == len(set(ids))  # no request stored twice
    assert len({(r[1], r[2]) for r in stored}) == len(stored)  # no item answered twice
    by_id = {r[0]: r for r in stored}
    for name, got in acked.items():
        assert len(got) == per_annotator
        for request_id, item, _ in got:
            assert by_id[request_id][1:3] == (name, item)
    assert len(stored) == sum(len(v) for v in acked.values())


def test_bad_requests_then_eight_annotators_then_kill_9_lose_and_duplicate_nothing(
        queried: Path, tmp_path: Path) -> None:
    # one campaign (one server start fewer): x checks bad requests, then two teams of 8 post
    # 200 answers each, team a in a clean run, team b in a run with a crash
    teams = {t: [f"{t}{i}" for i in range(8)] for t in "ab"}
    per, campaign = 200, tmp_path / "campaign"
    server = Server(copy_of(queried, tmp_path), f"campaign={campaign}", "calibration=29",
                    "calibration_first=0", "overlap=1",
                    f"annotators=[{','.join(teams['a'] + teams['b'])},x]")
    holder, tokens = [server], server.tokens
    try:
        check_bad_requests(server, campaign, tokens["x"])
        acked: dict[str, list] = {n: [] for n in teams["a"]}
        latencies: list[float] = []
        errors: list = []
        start = time.perf_counter()
        threads = run_annotators(holder, campaign, {n: tokens[n] for n in teams["a"]}, acked,
                                 latencies, threading.Event(), threading.Event(), errors)
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        assert not errors, errors[0]
        check_exactly_once(campaign, acked, per, teams["a"])
        rate, p95 = 8 * per / wall, float(np.percentile(latencies, 95)) * 1000
        print(f"\nload: {8 * per} labels in {wall:.1f} s = {rate:.0f} labels/s, "
              f"p95 latency {p95:.1f} ms")

        # κ and agreement on the stored labels equal scikit-learn's
        store = Store(campaign / "store.sqlite")
        stats = summary(store.answers(), store.items(), teams["a"], 0.7)
        labels = labels_by_annotator(store.answers())
        store.close()
        assert len(stats["pairs"]) == 28
        for pair in stats["pairs"]:
            x, y = (labels[n] for n in pair["annotators"])
            both = sorted(set(x) & set(y))
            a, b = [str(x[i]) for i in both], [str(y[i]) for i in both]
            assert pair["items"] == per
            assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-4)
            assert pair["agreement"] == pytest.approx(np.mean(np.array(a) == np.array(b)),
                                                      abs=1e-4)
        assert stats["fleiss"]["items"] == per and -1 <= stats["fleiss"]["kappa"] <= 1

        # team b: kill -9 in the middle of its run, restart on the same campaign
        acked = {n: [] for n in teams["b"]}
        restarted, killed = threading.Event(), threading.Event()
        threads = run_annotators(holder, campaign, {n: tokens[n] for n in teams["b"]}, acked,
                                 [], restarted, killed, errors)
        while sum(len(v) for v in acked.values()) < 400 and not errors:
            time.sleep(0.005)
        killed.set()
        holder[0].stop(signal.SIGKILL)
        before_restart = {r for v in acked.values() for r, _, _ in v}
        assert len(before_restart) < 8 * per  # killed mid-run
        holder[0] = Server(campaign.parent / "data", f"campaign={campaign}")
        restarted.set()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        check_exactly_once(campaign, acked, per, teams["b"])
        assert before_restart <= {r[0] for r in answers(campaign)}
    finally:
        holder[0].stop()


def test_kappa_matches_scikit_learn_and_fleiss_matches_the_textbook_example() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.choice([0.0, 0.5, 1.0], size=30)
        y = np.where(rng.random(30) < 0.6, x, rng.choice([0.0, 0.5, 1.0], size=30))
        assert cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x.astype(str),
                                                                    y.astype(str)))
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories, κ = 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                      [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                      [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert majority([1.0, 1.0, 0.0]) == 1.0 and majority([1.0, 0.0]) == 0.5
    assert majority([0.5, 0.0, 0.0]) == 0.0 and majority([1.0, 0.5]) == 0.5


def test_bad_input_exits_2_with_one_line(queried: Path, small_dataset: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    def fails(*args: str) -> str:
        assert main(["annotate", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        return err

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is in use" in fails(
            f"data={queried}", f"port={port}", "annotators=[ana]",
            f"campaign={tmp_path / 'c1'}")
    finally:
        busy.close()
    assert "has no queries table" in fails(f"data={small_dataset}", "port=0",
                                           "annotators=[ana]", f"campaign={tmp_path / 'c2'}")
    assert "annotator name 'a b'" in fails(f"data={queried}", "port=0", "annotators=['a b']",
                                           f"campaign={tmp_path / 'c3'}")
    assert "nothing to export" in fails(f"data={queried}", "export=true",
                                        f"campaign={tmp_path / 'c4'}")

    # a dataset (from an older tool, say) with neither frames nor physics state
    bare = copy_of(queried, tmp_path)
    info = json.loads((bare / "meta" / "info.json").read_text())
    for column in fmt.SIM_COLUMNS:
        del info["features"]["steps"][column]
    (bare / "meta" / "info.json").write_text(json.dumps(info))
    assert "neither camera frames nor the stored physics state" in fails(
        f"data={bare}", "port=0", "annotators=[ana]", f"campaign={tmp_path / 'c5'}")


def test_confidence_column_is_optional_and_checked(queried: Path, tmp_path: Path) -> None:
    assert "confidence" not in pq.read_schema(
        next((queried / "preferences").glob("train-*.parquet"))).names
    data = copy_of(queried, tmp_path)
    dataset = open_dataset(data)
    tables = dataset.tables()
    for split, table in tables["preferences"].items():
        confidence = pa.array([1.0 if split == "train" and i == 0 else None
                               for i in range(table.num_rows)], pa.float32())
        tables["preferences"][split] = table.append_column("confidence", confidence)
    with pytest.raises(Exception, match="confidence: set on a scripted teacher"):
        write_dataset(tmp_path / "bad", tables, dataset.info)


def make_campaign(data: Path, folder: Path, answered: int) -> Path:
    """A campaign of annotator ana on ``data`` (made as annotate makes one), with her first
    ``answered`` queries labelled 'left'."""
    folder.mkdir()
    dataset = open_dataset(data)
    spec = CampaignSpec(("ana",), calibration=1, calibration_first=0, overlap=1)
    items = campaign_items(dataset, spec)
    store = Store(folder / "store.sqlite")
    store.create(items, campaign_queues(items, spec), campaign_settings(dataset, spec))
    queries = [i for i in items if i.kind == "query"][:answered]
    for k, item in enumerate(queries):
        store.answer("ana", item.item_id, "left", 3, 2.0, f"{folder.name}-request-{k}")
    store.close()
    return folder


def test_export_again_replaces_only_this_campaigns_rows(queried: Path, tmp_path: Path) -> None:
    data = copy_of(queried, tmp_path)

    def campaign(name: str, answered: int) -> Path:
        return make_campaign(data, tmp_path / name, answered)

    def human_rows_of(teacher: str) -> int:
        return open_dataset(data).info.counts.labels["train"].get(teacher, 0)

    first = campaign("first", 3)
    assert main(["annotate", f"data={data}", f"campaign={first}", "export=true",
                 "threshold=0"]) == 0
    assert (human_rows_of("human:ana"), human_rows_of("human")) == (3, 3)
    # a second campaign on new queries: the first one's labels stay
    assert main(["query", f"data={data}", "strategy=uniform", "n=5"]) == 0
    second = campaign("second", 2)
    for _ in range(2):  # exporting twice changes nothing
        assert main(["annotate", f"data={data}", f"campaign={second}", "export=true",
                     "threshold=0"]) == 0
        assert (human_rows_of("human:ana"), human_rows_of("human")) == (5, 5)
    assert validate_dataset(data) == []


def test_pages_put_data_in_as_text_only() -> None:
    """Dataset strings reach the pages through textContent only: escaped by construction."""
    static = ROOT / "rrm_data" / "annotation" / "static"
    for page in static.glob("*.js"):
        text = page.read_text()
        assert "textContent" in text
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(",
                             text), page.name
    for page in static.glob("*.html"):
        assert "<script>" not in page.read_text()  # no inline script (the CSP forbids it)


def test_queues_put_calibration_first_then_mix_it_in_and_share_the_overlap() -> None:
    items = [Item(i, 100 + i, 0, 1, "query", None, 1.0) for i in range(20)]
    items += [Item(20 + k, k, 2, 3, "calibration", 1.0, 1.0) for k in range(4)]
    spec = CampaignSpec(("a", "b", "c"), calibration=4, calibration_first=2, overlap=0.25)
    queues = {name: [i for i, _ in q] for name, q in campaign_queues(items, spec).items()}
    own = []
    for ids in queues.values():
        assert ids[:2] == [20, 21]  # calibration first
        later = [ids.index(22), ids.index(23)]
        assert 2 < later[0] < later[1] < len(ids) - 1  # the rest mixed in, not at the end
        queries = [i for i in ids if i < 20]
        assert queries[:5] == [0, 1, 2, 3, 4]  # the overlap share: everyone sees it
        own += queries[5:]
    assert sorted(own) == list(range(5, 20))  # the rest dealt out, each item to one person
    swaps = [s for q in campaign_queues(items, spec).values() for _, s in q]
    assert 0 < sum(swaps) < len(swaps)  # sides swapped at random


def test_campaign_is_bound_to_its_dataset_and_its_queries(
        queried: Path, make_dataset, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = copy_of(queried, tmp_path)
    campaign = make_campaign(data, tmp_path / "campaign", 12)

    def refused(*args: str) -> str:
        assert main(["annotate", *args, f"campaign={campaign}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "start a new campaign with campaign=" in err, err
        return err

    # another dataset (another seed), queried alike: its segments are not the campaign's
    other = tmp_path / "other"
    shutil.copytree(make_dataset(seed=1), other)
    assert main(["query", f"data={other}", "strategy=uniform", "n=171", "pool=171"]) == 0
    capsys.readouterr()
    before = parquet_bytes(other)
    assert "labels another dataset" in refused(f"data={other}", "export=true")
    assert "labels another dataset" in refused(f"data={other}", "port=0")
    assert parquet_bytes(other) == before

    # a new version of its own dataset with more in it (frames) still matches
    assert main(["render", f"data={data}", "camera=corner", "image_size=32"]) == 0
    capsys.readouterr()
    check_same_dataset(Store(campaign / "store.sqlite").settings, open_dataset(data), campaign)
    assert main(["annotate", f"data={data}", f"campaign={campaign}", "export=true",
                 "threshold=0"]) == 0
    assert open_dataset(data).info.counts.labels["train"]["human:ana"] == 12

    # another question is another campaign; the same question (or none) serves this one
    capsys.readouterr()
    asked = refused(f"data={data}", "port=0", f"criterion='{QUESTION}'")
    assert "asks 'Which completes the task better?'" in asked
    assert not (tmp_path / "fresh").exists()
    assert main(["annotate", f"data={data}", f"campaign={tmp_path / 'fresh'}",
                 "annotators=[ana]", "criterion=' '"]) == 2
    assert "criterion must be one non-empty line" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()

    # new queries: the campaign's items would point at pairs no longer asked
    assert main(["query", f"data={data}", "strategy=uniform", "n=5"]) == 0
    capsys.readouterr()
    before = parquet_bytes(data)
    assert "queries of" in refused(f"data={data}", "port=0")
    assert "queries of" in refused(f"data={data}", "export=true")
    assert parquet_bytes(data) == before

    # a campaign that does not record its dataset (an older rrm-data's)
    with sqlite3.connect(campaign / "store.sqlite") as db:
        db.execute("DELETE FROM settings WHERE key = 'dataset'")
    assert "does not record which dataset" in refused(f"data={data}", "export=true")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
HUGE = st.integers(2**63 - 2, 2**90) | st.integers(-(2**90), -(2**63))
FIELDS = {"item_id": st.integers(-3, 400) | HUGE | JSON,
          "choice": st.sampled_from(["left", "right", "equal", "skip"]) | JSON,
          "confidence": st.integers(0, 4) | st.none() | HUGE | JSON,
          "seconds": st.floats() | st.integers(-5, 10**30) | JSON,
          "request_id": st.text("abcdef-0123456789", min_size=6, max_size=70) | JSON}
ANSWERS = st.fixed_dictionaries(FIELDS)


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


BODIES = st.one_of(
    ANSWERS.map(json_bytes),
    st.tuples(ANSWERS, st.sets(st.sampled_from(sorted(FIELDS)), min_size=1)).map(  # missing
        lambda t: json_bytes({k: v for k, v in t[0].items() if k not in t[1]})),
    st.tuples(ANSWERS, st.text(max_size=5), JSON).map(  # one key too many
        lambda t: json_bytes({**t[0], f"x{t[1]}": t[2]})),
    JSON.map(json_bytes),
    st.integers(1, 2000).map(lambda d: b"[" * d + b"]" * d),  # deep, under the body limit
    st.integers(1, 800).map(lambda d: b'{"a":' * d + b"0" + b"}" * d),
    st.integers(0, 4090).map(lambda n: b"9" * n),  # a huge number
    st.binary(max_size=64),
    st.integers(4097, 9000).map(lambda n: b" " * n))  # over the limit


def test_malformed_requests_get_a_4xx_json_error_store_nothing_and_ipv6_links_work(
        queried: Path, tmp_path: Path) -> None:
    """Hypothesis against the real server: only 2xx/4xx answers (JSON errors), nothing
    stored on a 4xx, and it keeps serving; then host=::1 prints a link that works."""
    campaign = tmp_path / "campaign"
    server = Server(copy_of(queried, tmp_path), f"campaign={campaign}", "annotators=[ana]",
                    "calibration=2", "calibration_first=0")
    token, mine = server.tokens["ana"], queue(campaign, "ana")
    counts = []

    def send(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        connection = server.connect()
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        stored = len(answers(campaign))
        if response.status >= 300:
            assert 400 <= response.status < 500, (response.status, payload[:200])
            assert "error" in json.loads(payload)
            assert stored == counts[-1]  # nothing written
        else:
            assert stored <= counts[-1] + 1
        counts.append(stored)
        return response.status

    def valid(item: str) -> bytes:
        return json_bytes({"item_id": item, "choice": "left", "confidence": 2,
                           "seconds": 1.0, "request_id": f"req-{uuid.uuid4()}"})

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @example(body=valid(mine[0]), content_type="application/json", who="ana", clip="0",
             side="left")  # one valid answer whatever the draw (CI derandomizes)
    @given(body=BODIES | st.sampled_from(mine).map(valid),
           content_type=st.sampled_from(["application/json", "application/json",
                                         "text/plain", ""]),
           who=st.sampled_from(["ana", "ana", "ana", "admin", "nobody"]),
           clip=st.text("0123456789", min_size=1, max_size=5000) | st.integers(0, 5).map(str),
           side=st.sampled_from(["left", "right", "up"]))
    def requests(body: bytes, content_type: str, who: str, clip: str, side: str) -> None:
        headers = {"Authorization": f"Bearer {server.tokens.get(who, 'x' * 32)}"}
        if content_type:
            headers["Content-Type"] = content_type
        send("POST", "/api/label", body, headers)
        send("GET", f"/api/clip/{clip}/{side}", None, headers)
        send("GET", f"/api/{'nowhere' if who == 'nobody' else 'next'}", None, headers)

    try:
        counts.append(len(answers(campaign)))
        requests()
        assert server.request("GET", "/api/next", token)[0] == 200  # still serving
        assert max(counts) > 0  # some valid answers got through
    finally:
        log = server.stop()
    assert "Traceback" not in log and "Exception" not in log, log

    ipv6 = Server(campaign.parent / "data", f"campaign={campaign}", "host=::1")
    try:
        assert re.fullmatch(r"http://\[::1\]:\d+", ipv6.url)
        status, page = ipv6.request("GET", "/")
        assert status == 200 and page["bytes"] > 0
        assert ipv6.request("GET", "/api/next", token)[0] == 200
    finally:
        ipv6.stop()
