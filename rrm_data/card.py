"""The dataset card (README.md) of a dataset directory, rendered from meta/info.json."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from rrm_data.resources import resource_dir

TEMPLATE = "dataset_card.md.j2"


def config_entries(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``configs:`` of the card's YAML front matter: one per table, preferences first."""
    order = ["preferences"] + [t for t in info["splits"] if t != "preferences"]
    entries = []
    for table in order:
        if table not in info["splits"]:
            continue
        entry: dict[str, Any] = {
            "config_name": table,
            "data_files": [{"split": s, "path": f"{table}/{s}-*.parquet"}
                           for s in info["splits"][table]],
        }
        if table == "preferences":
            entry["default"] = True
        entries.append(entry)
    return entries


def render_card(info: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(resource_dir("datacards")),
                      undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(info=info, configs=config_entries(info))
