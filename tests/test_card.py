"""The dataset card: valid front matter the Hub and `datasets` read, and a truthful body."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import datasets
import pytest
import yaml
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard

from rrm_data.dataset.card import collect_command, render_card
from rrm_data.dataset.info import DatasetInfo
from rrm_data.workflows import collect

SIZE_CATEGORIES = json.loads(
    (Path(datasets.__file__).parent / "utils/resources/size_categories.json").read_text())


@pytest.fixture
def info(small_dataset: Path) -> dict:
    return json.loads((small_dataset / "meta" / "info.json").read_text())


def with_images(info: dict) -> dict:
    """What the image tools add: a camera, and an embeddings table with its meta entry."""
    table = "embeddings/tf_efficientnet_lite0"
    return {**info, "cameras": ["corner"], "splits": {**info["splits"], table: ["train"]},
            "embeddings": {table: {"cameras": ["corner"], "dim": 1280, "weights": None}}}


def front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def markdown_tables(body: str) -> list[list[str]]:
    """Consecutive lines starting with '|', as blocks."""
    blocks, block = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    return blocks


@pytest.mark.parametrize("images", [False, True])
def test_card_parses_with_valid_metadata(info: dict, images: bool) -> None:
    info = with_images(info) if images else info
    text = render_card(DatasetInfo.from_json(info), repo_id="my-org/bp-prefs")
    card = DatasetCard(text)
    data = card.data
    assert data.license == "mit"
    assert data.task_categories == ["robotics"]
    assert data.size_categories[0] in SIZE_CATEGORIES
    assert "preference-learning" in data.tags and "button-press-v3" in data.tags
    assert front_matter(text) == data.to_dict()

    configs = MetadataConfigs.from_dataset_card_data(data)  # checks every data_files entry
    assert configs.get_default_config_name() == "preferences"
    expected = {"preferences", "steps", "episodes", "segments"}
    if images:
        expected.add("embeddings-tf_efficientnet_lite0")
        assert ('`embeddings/tf_efficientnet_lite0`: cameras = `["corner"]`, dim = `1280`, '
                'weights = `null`') in card.text
        assert "| cameras | corner |" in card.text
    assert set(configs) == expected
    assert configs["preferences"]["data_files"] == [
        {"split": "test", "path": "preferences/test-*.parquet"},
        {"split": "train", "path": "preferences/train-*.parquet"}]


def test_card_body_states_what_the_data_is(info: dict) -> None:
    body = DatasetCard(render_card(DatasetInfo.from_json(info), repo_id="my-org/bp-prefs")).text
    assert "P(segment_a is preferred over segment_b)" in body
    assert 'load_dataset("my-org/bp-prefs", "preferences")' in body
    assert "rrm-data train-reward data=my-org/bp-prefs" in body
    for cite in ("arXiv:2507.00611", "B-Pref: Benchmarking", "Meta-World: A Benchmark"):
        assert cite in body
    for name, params in info["teachers"].items():
        row = next(line for line in body.splitlines() if line.startswith(f"| `{name}` |"))
        for key, value in params.items():
            assert f"{key} = {value:g}" in row
    for policy in info["policies"]:
        assert f"| {policy['policy']} | {policy['noise']} | {policy['episodes']} |" in body
    for name in info["priors"]:
        assert f"| `{name}` |" in body
    # every Markdown table keeps its column count (pipes in formulas are escaped)
    for block in markdown_tables(body):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block}
        assert len(widths) == 1, block


@pytest.mark.parametrize("name", [None, "my data (v2)"])
def test_collect_command_reproduces_the_collection(info: dict, name: str | None) -> None:
    info = {**info, "name": name or info["name"]}
    command = collect_command(DatasetInfo.from_json(info))
    words = shlex.split(command)
    assert words[:2] == ["rrm-data", "collect"]
    cfg = collect.make_config(words[2:])  # every value passes collect's checks as printed
    assert collect.collection_record(cfg) == info["collection"]
    assert cfg.out == info["name"]


def test_card_renders_without_optional_fields(info: dict) -> None:
    old = {k: v for k, v in info.items() if k not in ("policies", "embeddings")}
    body = DatasetCard(render_card(DatasetInfo.from_json(old))).text
    assert "expert:0.5" in body  # the policy mixture from the collection settings
    assert f'load_dataset("{info["name"]}", "preferences")' in body


def test_front_matter_holds_hostile_strings_as_values(info: dict) -> None:
    """Strings of the dataset's own record (its name, a license in meta/info.json) are
    dumped as YAML values: a newline or colon in them adds no key to the front matter."""
    hostile = "x\nprivate: true\n---\nlicense: evil"
    info = {**info, "name": hostile, "license": "mit\nviewer: false"}
    meta = front_matter(render_card(DatasetInfo.from_json(info)))
    assert set(meta) == {"license", "pretty_name", "task_categories", "tags",
                         "size_categories", "configs"}
    assert meta["pretty_name"] == f"rrm-data {hostile}"
    assert meta["license"] == "mit\nviewer: false"
