"""train-reward: real Lightning fits on a tiny real dataset, the artifact, resume, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error

import rrm_data
from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.priors import PRIORS
from rrm_data.dataset.reader import open_dataset
from rrm_data.errors import RrmError
from rrm_data.reward.base import RewardFunction
from rrm_data.reward.resolve import resolve_reward
from rrm_data.training.module import RewardLearner
from rrm_data.training.trainer import make_datamodule
from rrm_data.workflows.train_reward import make_config

TINY = ["model.hidden=32", "model.layers=2", "model.members=2", "data.batch_size=32",
        "optim.lr=0.003", "trainer.enable_progress_bar=false"]


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["train-reward", f"data={data}", f"out={out}", *TINY, *extra])


def epoch_losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r["train/loss_epoch"]]


@pytest.fixture(scope="module")
def run(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "residual"
    assert train(small_dataset, out, "trainer.max_epochs=6") == 0
    return out


@pytest.fixture(scope="module")
def steps(small_dataset: Path) -> dict[str, np.ndarray]:
    return step_columns(open_dataset(small_dataset), [fmt.STATE, fmt.ACTION, fmt.REWARD])


def test_fit_writes_the_run_directory_and_the_loss_goes_down(run: Path) -> None:
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "reward/reward.json",
                 "reward/weights.safetensors"):
        assert (run / name).is_file(), name
    losses = epoch_losses(run)
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    assert "prior: gripper_object" in (run / "config.yaml").read_text()


def test_artifact_round_trip_gives_identical_outputs(run: Path, steps: dict) -> None:
    learner = RewardLearner.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    obs, act = torch.from_numpy(steps[fmt.STATE]), torch.from_numpy(steps[fmt.ACTION])
    with torch.no_grad():
        expected = learner.reward({fmt.STATE: obs, fmt.ACTION: act})
    reward = rrm_data.load_reward(run)
    assert isinstance(reward, RewardFunction)
    assert reward.columns == (fmt.STATE, fmt.ACTION)
    from_numpy = reward(steps[fmt.STATE], steps[fmt.ACTION])
    from_torch = reward(obs, act)
    from_columns = reward.score({c: v[:, None] for c, v in steps.items()})
    assert isinstance(from_numpy.total, np.ndarray) and isinstance(from_torch.total, torch.Tensor)
    for got in (from_numpy, from_torch, from_columns):
        for a, b in zip(got, expected, strict=True):
            assert np.array_equal(np.asarray(a), b.numpy())
    std = reward.ensemble_std(steps[fmt.STATE], steps[fmt.ACTION])
    assert std.shape == (len(obs),) and (std > 0).all()
    assert isinstance(resolve_reward(run / "reward"), type(reward))


def test_residual_bound_and_prior_part(run: Path, steps: dict) -> None:
    reward = rrm_data.load_reward(run)
    with torch.no_grad():  # saturate the residual net: the bound must still hold
        for p in reward.model.net.parameters():
            p.mul_(50.0)
    out = reward.score({c: v[:, None] for c, v in steps.items()})
    w_r0 = PRIORS.get("gripper_object")(steps[fmt.STATE].astype(np.float64))
    np.testing.assert_allclose(out.prior, w_r0, rtol=1e-5, atol=1e-6)
    assert np.abs(out.total - out.prior).max() <= 1.0
    assert np.abs(out.residual).max() > 0.99


def test_prior_receives_no_gradient(run: Path, steps: dict) -> None:
    model = rrm_data.load_reward(run).model.train()
    obs = torch.from_numpy(steps[fmt.STATE]).requires_grad_(True)
    parts = model({fmt.STATE: obs, fmt.ACTION: torch.from_numpy(steps[fmt.ACTION])})
    assert not parts.prior.requires_grad
    assert parts.residual.requires_grad
    parts.total.sum().backward()
    assert all(p.grad is not None for p in model.net.parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in model.net.parameters())


def test_resume_continues_from_the_last_checkpoint(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(small_dataset, out, "trainer.max_epochs=2") == 0
    assert train(small_dataset, out, "trainer.max_epochs=4", "resume=true") == 0
    assert len(epoch_losses(out)) == 4
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 4
    assert rrm_data.load_reward(out).spec.training["epochs"] == 4


def test_early_stop_on_train_agreement(small_dataset: Path, tmp_path: Path) -> None:
    assert train(small_dataset, tmp_path / "run", "trainer.max_epochs=8",
                 "optim.stop_agreement=0.5", "model.prior_as_input=true") == 0
    assert len(epoch_losses(tmp_path / "run")) < 8


def test_a_batch_of_ties_alone_trains(small_dataset: Path, tmp_path: Path) -> None:
    """A batch whose pairs are all ties has no pair to agree on; an epoch's short last batch
    can be one (a 60-episode door-close-v3 dataset's was, seed 4). One pair a batch here, so
    every tie is such a batch: it trains, and agreement counts the decided pairs only."""
    settings = ["data.teacher=equal", "data.batch_size=1", "trainer.max_epochs=1"]
    cfg = make_config([f"data={small_dataset}", *TINY, *settings])
    module = make_datamodule(cfg, open_dataset(small_dataset))
    module.setup("fit")
    assert module.train_pairs is not None
    labels = module.train_pairs.label
    assert (labels == 0.5).any() and (labels != 0.5).any()  # ties, and pairs to agree on
    assert train(small_dataset, tmp_path / "run", *settings) == 0
    with open(tmp_path / "run" / "metrics.csv") as f:
        agreement = [float(r["train/agreement"]) for r in csv.DictReader(f)
                     if r.get("train/agreement")]
    assert len(agreement) == 1 and 0.0 <= agreement[0] <= 1.0


def test_same_seed_same_model(small_dataset: Path, tmp_path: Path, run: Path) -> None:
    assert train(small_dataset, tmp_path / "again", "trainer.max_epochs=6") == 0
    a = (run / "reward" / "weights.safetensors").read_bytes()
    assert (tmp_path / "again" / "reward" / "weights.safetensors").read_bytes() == a


def test_cli_cfg_shows_the_merged_recipe(capsys: pytest.CaptureFixture) -> None:
    assert main(["train-reward", "recipe=state_mlp", "data=somewhere/bp", "model.hidden=128",
                 "data.num_labels=50", "--cfg"]) == 0
    text = capsys.readouterr().out
    for line in ("prior: zero", "hidden: 128", "num_labels: 50", "members: 3",
                 "out: runs/state_mlp-bp-seed0", "source: somewhere/bp"):
        assert line in text, line


@pytest.mark.parametrize(("extra", "message"), [
    (["data.teacher=nobody"], "no labels of teacher 'nobody'"),
    (["model.prior=prior.elsewhere"], "unknown prior 'prior.elsewhere'"),
    (["data.num_labels=100000"], "num_labels=100000 but only"),
    (["recipe=nope"], "unknown recipe 'nope'; available recipes: "),
    (["model.hiden=3"], "network 'mlp' takes no parameter hiden"),
    (["resume=true"], "no checkpoint at"),
    (["trainer.bogus=1"], "invalid trainer option"),
])
def test_bad_input_exits_2_with_one_line(extra: list[str], message: str, small_dataset: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train(small_dataset, tmp_path / "bad", *extra) == 2
    err = one_line_error(capsys, "train-reward")
    assert message in err
    if extra == ["recipe=nope"]:
        assert "state_mlp, state_residual" in err
    assert not (tmp_path / "bad" / "reward").exists()


def test_corrupt_checkpoint_and_artifact_are_refused(run: Path, small_dataset: Path,
                                                      tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    assert train(small_dataset, broken, "resume=true") == 2
    assert "corrupt checkpoint" in capsys.readouterr().err
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "reward.json").write_text((run / "reward" / "reward.json").read_text())
    (artifact / "weights.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(RrmError, match="unusable weights"):
        rrm_data.load_reward(artifact)
    (artifact / "reward.json").write_text("{")
    with pytest.raises(RrmError, match="corrupt reward artifact"):
        rrm_data.load_reward(artifact)
    with pytest.raises(RrmError, match="no reward artifact"):
        rrm_data.load_reward(tmp_path)


def test_fit_and_resume_print_no_weights_only_notice(small_dataset: Path, tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Checkpoints are saved and loaded whole (optimizer state for resume=true), said so
    explicitly: Lightning prints nothing about `weights_only`."""
    out = tmp_path / "run"
    assert train(small_dataset, out, "trainer.max_epochs=1") == 0
    assert train(small_dataset, out, "trainer.max_epochs=2", "resume=true") == 0
    printed = "".join(capfd.readouterr()) + caplog.text
    assert "wrote" in printed and "weights_only" not in printed
