"""Training throughput: the data module + model vs. the same model fed pre-built tensors.

Both arms run the same Lightning fit (same model, batch size, steps) in one process; the
baseline's batches are gathered in advance, so the ratio measures what the data module's
gathers cost. Target: ratio >= 0.8. Writes benchmarks/results/train.json.

    python benchmarks/train.py [--data DIR] [--steps 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from rrm_data.cli import main as cli
from rrm_data.dataset.reader import open_dataset
from rrm_data.training.datamodule import PreferenceDataModule, already_batched
from rrm_data.training.module import RewardLearner, reward_spec
from rrm_data.training.trainer import make_datamodule
from rrm_data.workflows.train_reward import make_config

RESULTS = Path(__file__).parent / "results"


def dataset(path: str | None, workdir: Path) -> str:
    if path:
        return path
    out = workdir / "data"
    assert cli(["collect", "episodes=20", "episode_steps=200", "pairs=1000", "teachers=[oracle]",
                f"out={out}"]) == 0
    return str(out)


def fit_seconds(learner: RewardLearner, loader: object, steps: int) -> float:
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, deterministic=True)
    start = time.perf_counter()
    trainer.fit(learner, train_dataloaders=loader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset directory (default: collect a small one)")
    parser.add_argument("--recipe", default="state_residual")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(args.data, Path(tmp))
        cfg = make_config([f"recipe={args.recipe}", f"data={data}"])
        dm: PreferenceDataModule = make_datamodule(cfg, open_dataset(data))
        dm.setup("fit")
        spec = reward_spec(cfg.model, dm.column_widths,
                           dm.input_stats(cfg.model.inputs)).to_json()
        dm.order = RewardLearner(spec).order  # the order train-reward's seed 0 gives
        # Every batch of one epoch gathered in advance, handed out one by one as they are.
        prebuilt = DataLoader(list(dm.train_dataloader()), batch_size=None,
                              collate_fn=already_batched)
        batch = cfg.data.batch_size

        def learner() -> RewardLearner:
            pl.seed_everything(0, verbose=False)
            return RewardLearner(spec, lr=cfg.optim.lr)

        fit_seconds(learner(), prebuilt, 5)  # warm-up
        times: dict[str, list[float]] = {"datamodule": [], "prebuilt": []}
        for _ in range(args.repeats):  # interleaved, so load changes hit both arms alike
            times["datamodule"].append(fit_seconds(learner(), dm.train_dataloader(), args.steps))
            times["prebuilt"].append(fit_seconds(learner(), prebuilt, args.steps))
    rate = {k: args.steps * batch / min(v) for k, v in times.items()}
    result = {
        "benchmark": "train", "recipe": args.recipe, "batch_size": batch, "steps": args.steps,
        "segment_length": dm.segment_length, "threads": 1,
        "datamodule_pairs_per_s": round(rate["datamodule"], 1),
        "prebuilt_pairs_per_s": round(rate["prebuilt"], 1),
        "ratio": round(rate["datamodule"] / rate["prebuilt"], 3), "target_ratio": 0.8,
        "seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
