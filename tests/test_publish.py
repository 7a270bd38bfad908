"""`rrm-data publish` and `rrm-data export-trl`.

The upload is tested up to the network: a tiny HTTP server on 127.0.0.1 plays the Hub
(HF_ENDPOINT points at it) and records every request the real `huggingface_hub`
client sends, so nothing of rrm-data or huggingface_hub is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from rrm_data.cli import main
from rrm_data.dataset.hub import tree_files
from rrm_data.dataset.reader import open_dataset

TOKEN = "hf_rrmTESTtoken0123456789"
ENCODER = "tf_efficientnet_lite0"
REPO = "rrm-test/bp-prefs"


# --- a dataset with every table, embeddings included ----------------------------------------

IMAGES = {"episodes": 4, "episode_steps": 20, "segment_length": 10, "segments_per_episode": 4,
          "pairs": 12, "camera": "corner", "image_size": 32}


@pytest.fixture(scope="module")
def dataset(make_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small rendered dataset with every table, plus the features of `rrm-data embed`."""
    root = tmp_path_factory.mktemp("publish") / "bp"
    shutil.copytree(make_dataset(**IMAGES), root)
    assert main(["embed", f"data={root}", f"encoder={ENCODER}"]) == 0
    return root


def dry_run(dataset: Path, out: Path, *extra: str) -> int:
    return main(["publish", f"data={dataset}", f"repo_id={REPO}", "dry_run=true", f"out={out}",
                 "max_file_mb=0.05", *extra])


def test_dry_run_tree_loads_every_config(dataset: Path, tmp_path: Path, capsys) -> None:
    tree = tmp_path / "tree"
    assert dry_run(dataset, tree) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    files = tree_files(tree)
    assert [(path, int(size.replace(",", ""))) for _, size, path in listed] == files

    steps = [p for p, _ in files if p.startswith("steps/")]
    assert len(steps) > 1, "steps should be resharded under max_file_mb=0.05"
    assert all(size <= 50_000 for _, size in files if _.endswith(".parquet"))

    source = open_dataset(dataset)
    configs = DatasetCard.load(tree / "README.md").data.configs
    names = {c["config_name"] for c in configs}
    assert names == {"preferences", "steps", "episodes", "segments", f"embeddings-{ENCODER}"}
    cache = tmp_path / "hf-datasets"
    for config in configs:
        table = config["data_files"][0]["path"].split("/")[:-1]
        loaded = datasets.load_dataset(str(tree), config["config_name"], cache_dir=str(cache))
        for split, data in loaded.items():
            assert data.num_rows == source.table("/".join(table), split).num_rows
    default = datasets.load_dataset(str(tree), cache_dir=str(cache))
    assert set(default) == {"train", "test"} and "label" in default["train"].column_names

    assert main(["validate", f"data={tree}"]) == 0
    steps_tree = open_dataset(tree).table("steps")
    assert steps_tree.equals(source.table("steps"))


# --- the upload, against a local stand-in for the Hub ---------------------------------------

@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeHub(ThreadingHTTPServer):
    """Answers the Hub API calls of one commit and records every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Request] = []
        self.lfs: dict[str, bytes] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, payload: object, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = self._body()
        self.server.requests.append(
            Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        url, path = self.server.url, self.path.split("?")[0]
        if path == "/api/repos/create":
            name = json.loads(body)
            self._reply({"url": f"{url}/datasets/{name['organization']}/{name['name']}"})
        elif path == "/api/validate-yaml":
            self._reply({"warnings": []})
        elif "/preupload/" in path:
            files = json.loads(body)["files"]
            self._reply({"files": [{"path": f["path"], "shouldIgnore": False,
                                    "uploadMode": "lfs" if f["path"].endswith(".parquet")
                                    else "regular"} for f in files]})
        elif path.endswith(".git/info/lfs/objects/batch"):
            objects = json.loads(body)["objects"]
            self._reply({"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"upload": {"href": f"{url}/lfs-upload/{o['oid']}"}}}
                for o in objects]})
        elif path.startswith("/lfs-upload/"):
            self.server.lfs[path.rsplit("/", 1)[1]] = body
            self._reply({})
        elif "/commit/" in path:
            self._reply({"commitUrl": f"{url}/datasets/{REPO}/commit/abc123",
                         "commitOid": "abc123"})
        else:
            self._reply({"error": f"unexpected {self.command} {path}"}, status=404)

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def fake_hub():
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hub_env(tmp_path: Path, fake_hub: FakeHub, token: str | None = TOKEN) -> dict[str, str]:
    """A clean Hugging Face environment: no stored login, Hub at the local server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=fake_hub.url, HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def publish(dataset: Path, env: dict[str, str], *extra: str,
            repo: str = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rrm_data.cli", "publish", f"data={dataset}",
                           f"repo_id={repo}", "max_file_mb=0.05", *extra],
                          env=env, capture_output=True, text=True, timeout=120)


def commit_lines(fake_hub: FakeHub) -> list[dict]:
    commits = [r for r in fake_hub.requests if "/commit/" in r.path]
    assert len(commits) == 1, "everything goes up in ONE commit"
    return [json.loads(line) for line in commits[0].body.splitlines()]


def test_upload_sends_the_dry_run_tree_in_one_commit(dataset: Path, tmp_path: Path,
                                                     fake_hub: FakeHub) -> None:
    result = publish(dataset, hub_env(tmp_path, fake_hub), "private=true")
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "tree"
    assert dry_run(dataset, tree) == 0

    routes = [(r.method, r.path.split("?")[0].replace(REPO, "REPO")) for r in fake_hub.requests]
    assert routes[:3] == [("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
                          ("POST", "/api/datasets/REPO/preupload/main")]
    assert routes[-1] == ("POST", "/api/datasets/REPO/commit/main")
    create = fake_hub.requests[0]
    request = json.loads(create.body)
    assert (request["organization"], request["name"]) == tuple(REPO.split("/"))
    assert (request["type"], request["visibility"]) == ("dataset", "private")
    sent = {}
    for line in commit_lines(fake_hub):
        value = line["value"]
        if line["key"] == "file":
            content = base64.b64decode(value["content"])
            sent[value["path"]] = (len(content), hashlib.sha256(content).hexdigest())
        elif line["key"] == "lfsFile":
            content = fake_hub.lfs[value["oid"]]
            assert hashlib.sha256(content).hexdigest() == value["oid"]
            assert len(content) == value["size"]
            sent[value["path"]] = (value["size"], value["oid"])
    expected = {path: (size, hashlib.sha256((tree / path).read_bytes()).hexdigest())
                for path, size in tree_files(tree)}
    assert sent == expected

    # the token travels only in the authorization header, and nowhere else
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}"
               for r in fake_hub.requests if not r.path.startswith("/lfs-upload/"))
    for r in fake_hub.requests:
        others = {k: v for k, v in r.headers.items() if k != "authorization"}
        assert TOKEN not in r.path and TOKEN.encode() not in r.body
        assert TOKEN not in json.dumps(others)
    assert TOKEN not in result.stdout + result.stderr
    assert not any(TOKEN.encode() in (tree / p).read_bytes() for p, _ in tree_files(tree))


def corrupt_labels(dataset: Path, root: Path) -> Path:
    bad = root / "bad"
    shutil.copytree(dataset, bad)
    path = bad / "preferences" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_numpy().copy()
    labels[3] = 0.7
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                    pa.array(labels, pa.float32())), path)
    return bad


@pytest.mark.parametrize("case, expected", [
    ("repo", "invalid repo id 'not/a/repo'"),
    ("token", "no Hugging Face token: run `hf auth login`"),
    ("invalid", "preferences/train-00000-of-00001.parquet row 3 column label"),
    ("folder", "meta/ would hold 2 files, over the Hub's limit of 1 per folder"),
    ("file", "over the Hub's file-size limit of 0.001 MB (max_file_mb)"),
])
def test_bad_input_uploads_nothing(case: str, expected: str, dataset: Path, tmp_path: Path,
                                   fake_hub: FakeHub) -> None:
    extra = {"folder": ["max_files_per_folder=1"], "file": ["max_file_mb=0.001"]}.get(case, [])
    data = corrupt_labels(dataset, tmp_path) if case == "invalid" else dataset
    env = hub_env(tmp_path, fake_hub, token=None if case == "token" else TOKEN)
    result = publish(data, env, *extra, repo="not/a/repo" if case == "repo" else REPO)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    if case == "token":
        assert "HF_TOKEN" in result.stderr
    assert fake_hub.requests == []


# --- export-trl -----------------------------------------------------------------------------

@pytest.mark.parametrize("ties", ["drop", "margin"])
def test_export_trl_chosen_rejected(small_dataset: Path, tmp_path: Path, ties: str) -> None:
    dataset = small_dataset
    out = tmp_path / "trl.parquet"
    assert main(["export-trl", f"data={dataset}", "split=train", "teacher=equal",
                 f"ties={ties}", f"out={out}"]) == 0
    view = pq.read_table(out).to_pandas()
    prefs = open_dataset(dataset).preferences("train").to_pandas()
    prefs = prefs[prefs.teacher == "equal"].set_index("pair_index")
    ties_in_data = int((prefs.label == 0.5).sum())
    assert ties_in_data > 0, "the equal teacher should label some ties"
    assert len(view) == len(prefs) - (ties_in_data if ties == "drop" else 0)
    pairs = prefs.loc[view.pair_index]
    a_won = pairs.label.to_numpy() >= 0.5
    assert (view.chosen.to_numpy() == np.where(a_won, pairs.segment_a, pairs.segment_b)).all()
    assert (view.rejected.to_numpy() == np.where(a_won, pairs.segment_b, pairs.segment_a)).all()
    if ties == "margin":
        assert set(view.margin) == {0.0, 1.0}
        assert ((view.margin == 0) == (view.label == 0.5)).all()
    else:
        assert "margin" not in view.columns
    assert [p.name for p in tmp_path.iterdir()] == ["trl.parquet"]  # no temp file left


def test_export_trl_refuses_unknown_teacher(small_dataset: Path, tmp_path: Path,
                                            capsys) -> None:
    dataset = small_dataset
    assert main(["export-trl", f"data={dataset}", "teacher=nobody",
                 f"out={tmp_path / 'x.parquet'}"]) == 2
    assert "it has: equal, mistake, myopic, oracle, skip, stochastic" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("license", ['"mit\\nprivate: true"', "MIT", "cc by", "'other:x'", "''"])
def test_publish_refuses_a_license_that_is_not_an_id(license: str, small_dataset: Path,
                                                     tmp_path: Path, capsys) -> None:
    """A newline in license= (YAML's "\\n") once injected keys into the card's front matter."""
    assert dry_run(small_dataset, tmp_path / "tree", f"license={license}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "license must be a license id such as mit" in err, err
    assert not (tmp_path / "tree").exists()


def test_publish_writes_the_license_id_given(small_dataset: Path, tmp_path: Path) -> None:
    assert dry_run(small_dataset, tmp_path / "tree", "license=cc-by-4.0") == 0
    assert DatasetCard.load(tmp_path / "tree" / "README.md").data.license == "cc-by-4.0"
