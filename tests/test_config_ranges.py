"""Every command's numeric and list config keys: bad values are refused in one line before
any work (no traceback, nothing written), good ones accepted.

The keys are enumerated from the CLI registry and each command's ``Config`` dataclass
(recursively, with the known keys of recipe dict sections such as ``model``), so a key added
later is covered without editing this file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rrm_data.cli import COMMANDS, main

# Keys a command needs before its config stage can accept anything.
REQUIRED = {"publish": ["repo_id=rrm-test/bp-prefs"]}
# Values of every kind that have broken some library: non-finite, zero, negative, huge,
# the wrong type, empty and nested lists.
BAD = ["nan", ".nan", "inf", "-inf", ".inf", "-.inf", "0", "-1", "-3", "0.5", "1.5", "5",
       "99999", "1e30", str(2**32), str(2**63), str(10**30), "-1e308", "abc", "true", "null",
       "[]", "[0]", "[-1]", "[nan]", "[abc]", "[1,2]", "[[1]]", "{a: 1}"]
NON_FINITE = {"nan", ".nan", "inf", "-inf", ".inf", "-.inf", "[nan]"}


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    kind: str  # number, list, names (a name or a list of them) or entry (of a dict section)


def config_keys(config_type: type, prefix: str = "") -> Iterator[Key]:
    """The numeric and list keys of a config dataclass, its sections' keys included."""
    hints = typing.get_type_hints(config_type)
    for f in dataclasses.fields(config_type):
        name, kind = f"{prefix}{f.name}", hints[f.name]
        args = set(typing.get_args(kind)) - {type(None)}
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            yield from config_keys(kind, f"{name}.")
        elif typing.get_origin(kind) is dict:
            yield from (Key(f"{name}.{key}", "entry") for key in f.metadata.get("keys", {}))
        elif typing.get_origin(kind) is list:
            yield Key(name, "list")
        elif kind in (int, float) or args & {int, float}:
            yield Key(name, "number")
        elif kind is Any:
            yield Key(name, "names")


def command_config(name: str) -> type:
    return __import__(COMMANDS.get(name).module, fromlist=["Config"]).Config


KEYS = {name: list(config_keys(command_config(name))) for name in COMMANDS}
CHECKED = sorted(name for name, keys in KEYS.items() if keys)


def run_cli(args: list[str]) -> tuple[int, str]:
    """``rrm-data ARGS`` in this process: exit status and stderr (a traceback propagates)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()


@contextlib.contextmanager
def empty_cwd() -> Iterator[Path]:
    """Run in an empty folder and check that it stays empty (nothing written)."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
            assert list(Path(tmp).iterdir()) == []
        finally:
            os.chdir(before)


def test_every_command_with_numbers_is_enumerated() -> None:
    assert {"collect", "train-reward", "train-sac", "train-online", "publish", "annotate",
            "embed", "query", "gallery", "evaluate"} <= set(CHECKED)
    names = {k.name for k in KEYS["train-online"]}
    assert {"sac.gamma", "sac.batch_size", "sac.net_arch", "model.prior_weight",
            "reward_lr", "episode_steps"} <= names
    assert {"model.prior_weight", "trainer.max_epochs", "optim.lr", "data.batch_size"} \
        <= {k.name for k in KEYS["train-reward"]}


@pytest.mark.parametrize("command", CHECKED)
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_values_are_refused_in_one_line_or_accepted(command: str, data: st.DataObject
                                                        ) -> None:
    key = data.draw(st.sampled_from(KEYS[command]), label="key")
    value = data.draw(st.sampled_from(BAD), label="value")
    with empty_cwd():
        code, err = run_cli([command, *REQUIRED.get(command, []), f"{key.name}={value}",
                             "--cfg"])
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    if key.kind in ("number", "entry") and value in NON_FINITE:
        assert code == 2, f"{key.name}={value} accepted"
    if key.kind in ("number", "entry") and value in ("abc", "[1,2]", "{a: 1}"):
        assert code == 2, f"{key.name}={value} accepted"
    assert code in (0, 2)
    if code == 2:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"rrm-data {command}: error: "), lines[0]


NUMERIC = [(command, key.name) for command in CHECKED for key in KEYS[command]
           if key.kind in ("number", "entry")]


@pytest.mark.parametrize(("command", "key"), NUMERIC)
def test_every_numeric_key_refuses_nan_and_infinity(command: str, key: str) -> None:
    """The sweep behind the sampled test: each numeric key, one line naming it."""
    for value in (".nan", "-.inf"):
        with empty_cwd():
            code, err = run_cli([command, *REQUIRED.get(command, []), f"{key}={value}", "--cfg"])
        assert code == 2, f"{command} {key}={value} accepted"
        assert len(err.strip().splitlines()) == 1 and f"'{key}'" in err or f"{key} " in err, err


@pytest.mark.parametrize(("command", "args", "message"), [
    ("train-online", ["model.prior_weight=.nan"], "model.prior_weight must be a finite number"),
    ("train-online", ["model.prior_weight=nan"], "model.prior_weight must be a number"),
    ("train-reward", ["model.prior_weight=.nan"], "model.prior_weight must be a finite number"),
    ("train-reward", ["model.hidden=1.5"], "model.hidden must be an integer, got 1.5"),
    ("train-reward", ["trainer.max_epochs=0"], "trainer.max_epochs must be at least 1, got 0"),
    ("train-reward", ["optim.lr=nan"], "optim.lr must be greater than 0, got nan"),
    ("train-sac", ["sac.gamma=5"], "sac.gamma must lie in (0, 1], got 5"),
    ("train-sac", ["sac.tau=-3"], "sac.tau must lie in (0, 1], got -3"),
    ("train-online", ["sac.gamma=5"], "sac.gamma must lie in (0, 1], got 5"),
    ("train-online", ["reward_lr=nan"], "reward_lr must be greater than 0, got nan"),
    ("train-sac", ["sac.learning_rate=nan"], "sac.learning_rate must be greater than 0, got nan"),
    ("publish", [*REQUIRED["publish"], "max_file_mb=nan"], "max_file_mb must be greater than 0"),
    ("publish", [*REQUIRED["publish"], "max_file_mb=inf"], "max_file_mb must be greater than 0"),
    ("train-sac", ["episode_steps=0"], "episode_steps must be at least 1, got 0"),
    ("train-online", ["episode_steps=0"], "episode_steps must be at least 1, got 0"),
    ("annotate", ["port=99999"], "port must lie in [0, 65535], got 99999"),
    ("annotate", ["port=-1"], "port must lie in [0, 65535], got -1"),
    ("embed", ["camera=5"], "camera must be a name or a list of names, got 5"),
    ("train-online", ["sac.batch_size=0"], "sac.batch_size must be at least 1, got 0"),
    ("train-online", ["sac.n_envs=0"], "sac.n_envs must be at least 1, got 0"),
    ("train-online", ["sac.train_freq=0"], "sac.train_freq must be at least 1, got 0"),
    ("train-online", ["sac.target_update_interval=0"],
     "sac.target_update_interval must be at least 1, got 0"),
    ("train-sac", ["sac.net_arch=[256,0]"], "sac.net_arch[1] must be at least 1, got 0"),
    ("train-sac", ["seed=4294967296"], "seed must lie in [0, 4294967295]"),
    ("collect", ["episodes=100000000000000000000"], "episodes must fit in 64 bits"),
    ("merge", ["shards=[]"], "shards is empty"),
    ("evaluate", ["reward=[]"], "reward is empty"),
])
def test_listed_defects_are_refused_at_the_config_stage(command: str, args: list[str],
                                                        message: str) -> None:
    with empty_cwd():
        code, err = run_cli([command, *args, "--cfg"])
    assert code == 2, err
    assert err.strip() == f"rrm-data {command}: error: {err.strip().split(': error: ')[1]}"
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("command", "args"), [
    ("train-sac", ["sac.gamma=5", "steps=200"]),
    ("train-sac", ["sac.learning_rate=nan", "steps=200"]),
    ("train-online", ["sac.batch_size=0", "steps=2000"]),
    ("train-online", ["model.prior_weight=.nan", "steps=2000"]),
    ("collect", ["test_fraction=nan", "episodes=4"]),
    ("train-reward", ["optim.lr=-1", "data=data"]),
])
def test_refused_before_any_work_leaves_nothing(command: str, args: list[str],
                                                tmp_path: Path) -> None:
    """The real command (not just --cfg): refused before anything appears at out."""
    out = tmp_path / "out"
    code, err = run_cli([command, *args, f"out={out}"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_good_values_at_the_edges_are_accepted() -> None:
    for command, args in [("train-sac", ["sac.gamma=1", "sac.tau=1", "sac.learning_starts=0",
                                         "seed=4294967295", "episode_steps=1", "eval_every=0"]),
                          ("annotate", ["port=0"]), ("annotate", ["port=65535"]),
                          ("collect", ["test_fraction=0", "pairs=0"]),
                          ("train-reward", ["model.prior_weight=-2", "data.val_fraction=0"]),
                          ("embed", ["camera=[corner,topview]"])]:
        with empty_cwd():
            code, err = run_cli([command, *args, "--cfg"])
        assert code == 0, err


def test_library_settings_are_checked_too() -> None:
    """The online loop's own entry (OnlineRun → check_settings) applies the same ranges."""
    from rrm_data.errors import RrmError
    from rrm_data.rl.online.settings import OnlineSettings, check_settings
    from rrm_data.rl.sac import SacSettings

    with pytest.raises(RrmError, match=r"sac\.gamma must lie in \(0, 1\], got 5"):
        check_settings(OnlineSettings(sac=SacSettings(gamma=5.0)))
    with pytest.raises(RrmError, match="reward_lr must be greater than 0, got nan"):
        check_settings(OnlineSettings(reward_lr=math.nan))
