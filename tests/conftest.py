"""Shared fixtures: small real datasets collected once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrm_data.cli import main
from rrm_data.process import configure_process

configure_process()  # as the rrm-data program does, before any test imports MuJoCo

SMALL = {"episodes": 10, "max_steps": 60, "segment_length": 20, "segments_per_episode": 3,
         "pairs": 120}


def overrides(**values: object) -> list[str]:
    """``key=value`` strings, lists in Hydra's ``[a,b]`` syntax."""
    def text(v: object) -> str:
        if isinstance(v, list | tuple):
            return "[" + ",".join(map(str, v)) + "]"
        return str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{k}={text(v)}" for k, v in values.items()]


@pytest.fixture(scope="session")
def make_dataset(tmp_path_factory: pytest.TempPathFactory):
    """``make_dataset(**collect_overrides) -> Path``: a real collected dataset, cached by args."""
    cache: dict[tuple, Path] = {}

    def make(**values: object) -> Path:
        key = tuple(sorted((k, str(v)) for k, v in values.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("dataset") / "data"
            assert main(["collect", *overrides(**{**SMALL, **values, "out": out})]) == 0
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def small_dataset(make_dataset) -> Path:
    """The default small dataset: 10 episodes of 60 steps, all six teachers."""
    return make_dataset()
