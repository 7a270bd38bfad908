"""rrm-data info: success rate and return per policy, pairs and label balance per teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rrm_data.cli import main
from rrm_data.sim.policies import policy_label


def table_rows(out: str) -> list[list[str]]:
    """Cells of every body row of the rich tables in ``out``."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")]
            for line in out.splitlines() if line.startswith("│")]


@pytest.fixture
def summary(small_dataset: Path, capsys: pytest.CaptureFixture) -> str:
    assert main(["info", f"data={small_dataset}"]) == 0
    return capsys.readouterr().out


def test_success_rate_and_return_per_policy(small_dataset: Path, summary: str) -> None:
    episodes = pq.read_table(small_dataset / "episodes" / "train-00000-of-00001.parquet")
    policy = np.asarray(episodes.column("policy").to_pylist())
    noise = episodes.column("policy_noise").to_numpy()
    success = episodes.column("success").to_numpy()
    returns = episodes.column("return").to_numpy()
    rows = [r for r in table_rows(summary) if len(r) == 4]
    expected = []
    for kind, sigma in sorted(set(zip(policy.tolist(), noise.tolist(), strict=True))):
        mask = (policy == kind) & (noise == sigma)
        label = f"{kind}:{sigma:g}" if kind == "expert" else kind
        expected.append([label, str(mask.sum()), f"{success[mask].mean():.0%}",
                         f"{returns[mask].mean():.1f}"])
    expected.append(["all", "10", f"{success.mean():.0%}", f"{returns.mean():.1f}"])
    assert rows == expected
    assert f"10 ({success.mean():.0%} successful)" in summary


def test_pairs_and_label_balance_per_teacher(small_dataset: Path, summary: str) -> None:
    assert "train 96, test 24" in summary
    rows = {(r[0], r[1]): r[2:] for r in table_rows(summary) if len(r) == 7}
    for split, pairs in (("train", 96), ("test", 24)):
        prefs = pq.read_table(small_dataset / "preferences" / f"{split}-00000-of-00001.parquet")
        teacher = np.asarray(prefs.column("teacher").to_pylist())
        label = prefs.column("label").to_numpy()
        for name in ("oracle", "stochastic", "mistake", "skip", "equal", "myopic"):
            labels = label[teacher == name]
            assert len(labels) == pairs
            assert rows[(split, name)] == [str(pairs), "0", *(f"{np.mean(labels == v):.0%}"
                                                               for v in (1.0, 0.0, 0.5))]
    assert rows[("train", "equal")][4] != "0%"  # the equal teacher does give ties here


def test_policy_label() -> None:
    assert policy_label("expert", 0.0) == "expert:0"
    assert policy_label("expert", 0.5) == "expert:0.5"
    assert policy_label("random", 0.0) == "random"
    assert policy_label("epsilon", 0.9) == "epsilon:0.9"


def test_info_refuses_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", f"data={tmp_path / 'nothing'}"]) == 2
    assert "no dataset at" in capsys.readouterr().err
