"""The dataset card (README.md) of a dataset directory, rendered from meta/info.json.

The same card is written by ``collect`` and re-rendered by ``publish`` (which knows the
repository id and the tables actually uploaded). Its YAML front matter is what the Hub
and ``datasets.load_dataset(folder, config)`` read: one config per table.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from rrm_data.dataset.format import table_files_glob
from rrm_data.dataset.info import DatasetInfo
from rrm_data.errors import RrmError
from rrm_data.resources import resource_dir

TEMPLATE = "dataset_card.md.j2"
DEFAULT_LICENSE = "mit"
# The Hub's license ids (mit, apache-2.0, cc-by-4.0, other, ...): lowercase letters, digits, ".-+".
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")
TAGS = ["rrm-data", "preference-learning", "reward-modeling", "metaworld", "robotics"]
# The Hub's size buckets (datasets/utils/resources/size_categories.json), by upper bound.
SIZE_CATEGORIES = [(1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"),
                   (1e7, "1M<n<10M"), (1e8, "10M<n<100M"), (1e9, "100M<n<1B"),
                   (1e10, "1B<n<10B"), (1e11, "10B<n<100B"), (1e12, "100B<n<1T")]


def config_name(table: str) -> str:
    """Config name of a table folder: ``embeddings/<encoder>`` becomes ``embeddings-<encoder>``."""
    return table.replace("/", "-")


def check_license(license: str) -> str:  # noqa: A002 - the Hub's metadata key
    """A license id as the Hub lists them; anything else (a newline, a colon) is refused."""
    if not LICENSE_ID.fullmatch(license):
        raise RrmError(f"license must be a license id such as mit, apache-2.0 or cc-by-4.0 "
                       f"(lowercase letters, digits, '.', '-', '+'), got {license!r}")
    return license


def front_matter(info: DatasetInfo, license: str) -> str:  # noqa: A002 - the Hub's key
    """The card's YAML metadata, dumped by yaml so no value (a dataset name, a task, a
    license) can add keys or break the block."""
    counts = info.counts
    rows = max([counts.steps, *(sum(v.values()) for v in counts.labels.values())])
    data = {"license": license, "pretty_name": f"rrm-data {info.name}",
            "task_categories": ["robotics"], "tags": TAGS + list(info.tasks),
            "size_categories": [size_category(rows)], "configs": config_entries(info)}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def config_entries(info: DatasetInfo) -> list[dict[str, Any]]:
    """The ``configs:`` of the card's YAML front matter: one per table, preferences first."""
    order = ["preferences"] + sorted(t for t in info.splits if t != "preferences")
    entries = []
    for table in order:
        if table not in info.splits:
            continue
        entry: dict[str, Any] = {"config_name": config_name(table)}
        if table == "preferences":
            entry["default"] = True
        entry["data_files"] = [{"split": s, "path": table_files_glob(table, s)}
                               for s in info.splits[table]]
        entries.append(entry)
    return entries


def size_category(rows: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>1T")


def collect_command(info: DatasetInfo) -> str:
    """The command line (``rrm-data collect`` unless the dataset records another command)
    that reproduces this dataset's content."""
    def value(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list | tuple):
            return "[" + ",".join(value(x) for x in v) + "]"
        return str(v)

    def items(prefix: str, mapping: dict[str, Any]) -> list[str]:
        out = []
        for key, v in mapping.items():
            if isinstance(v, dict):
                out += items(f"{prefix}{key}.", v)
            else:
                out.append(shlex.quote(f"{prefix}{key}={value(v)}"))
        return out

    collection = dict(info.collection)
    command = collection.pop("command", "collect")  # train-online records its own command
    option = collection.pop("output_option", "out")  # train-sac writes it at record_out=
    args = items("", collection)
    if info.shard:
        args.append(f"shard={info.shard}")
    return " ".join([f"rrm-data {command}", *args, f"{option}={shlex.quote(info.name)}"])


def teacher_rows(info: DatasetInfo) -> list[dict[str, str]]:
    """Name, parameters, one-line description and formula (recorded when labelled; older
    datasets have no formulas) of each teacher."""
    rows = []
    descriptions = info.labelling.get("teacher_descriptions", {})
    formulas = info.labelling.get("teacher_formulas", {})
    for name, params in info.teachers.items():
        rows.append({"name": name, "description": descriptions.get(name, ""),
                     "formula": formulas.get(name, ""),
                     "params": ", ".join(f"{k} = {v:g}" for k, v in params.items()) or "–"})
    return rows


def human_criteria(info: DatasetInfo) -> list[dict[str, Any]]:
    """Each question people answered (``annotation.pairs_by_criterion``) and its pair count."""
    by_criterion = info.extra.get("annotation", {}).get("pairs_by_criterion", {})
    return [{"criterion": c, "pairs": len(p)} for c, p in by_criterion.items()]


def render_card(info: DatasetInfo, repo_id: str | None = None,
                license: str | None = None) -> str:  # noqa: A002 - the Hub's metadata key
    """The card's Markdown; ``repo_id`` fills the loading examples (else the local name)."""
    env = Environment(loader=FileSystemLoader(resource_dir("datacards")),
                      undefined=StrictUndefined, keep_trailing_newline=True)
    license = str(license or info.extra.get("license") or DEFAULT_LICENSE)
    return env.get_template(TEMPLATE).render(
        info=info.to_json(), front_matter=front_matter(info, license), license=license,
        configs=config_entries(info), repo=repo_id or info.name,
        collect_command=collect_command(info), teachers=teacher_rows(info),
        human_criteria=human_criteria(info),
    )
