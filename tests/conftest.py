"""Shared fixtures: small real datasets and one small real reward model, made once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import SMALL, TINY_TRAIN, overrides

from rrm_data.cli import main
from rrm_data.process import configure_process

configure_process()  # as the rrm-data program does, before any test imports MuJoCo


def pytest_configure(config: pytest.Config) -> None:
    """A grid's XLA compilation cache (``runner.compilation_cache``) for the session: SAC
    (sbx) compiles the same JAX functions in each test, and each is then compiled once per
    session by the tests, pytest-xdist's workers and the commands they start. Fresh every
    session, so the compiler itself is tested too. The xdist controller makes it; its
    workers inherit it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from rrm_data.benchmark.runner import compilation_cache  # after configure_process: MuJoCo

    cache = tempfile.mkdtemp(prefix="rrm-data-xla-")
    os.environ.update(compilation_cache(Path(cache)))
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


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


@pytest.fixture(scope="session")
def trained_reward(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real residual reward run (prior gripper_object, weight 1), trained for 2 epochs on the
    small dataset: for tests that need some learned reward, not a particular one."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train-reward", "recipe=state_residual", f"data={small_dataset}",
                 f"out={out}", *TINY_TRAIN]) == 0
    return out
