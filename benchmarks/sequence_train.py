"""Epoch time of the sequence rewards against their Markovian counterparts on the same pairs.

`image_sequence` ÷ `image_frozen` (target ≤ 2) and `state_sequence` ÷ `state_mlp` (quoted),
each an epoch of the recipe's model over the same training pairs, the image ones reading
the cached EfficientNet-Lite0 embeddings (built once by `embed` before timing). One CPU
thread, the best of ``--repeats`` epochs after a warm-up. Writes
benchmarks/results/sequence_train.json.

    python benchmarks/sequence_train.py [--data DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import RESULTS

from rrm_data.cli import main as cli
from rrm_data.dataset.reader import open_dataset
from rrm_data.training.module import RewardLearner, reward_spec
from rrm_data.training.trainer import make_datamodule
from rrm_data.workflows.train_reward import make_config

PAIRS = (("image_sequence", "image_frozen"), ("state_sequence", "state_mlp"))


def dataset(path: str | None, workdir: Path) -> str:
    """A collection with frames and their cached embeddings."""
    if path:
        return path
    out = workdir / "data"
    assert cli(["collect", "episodes=20", "max_steps=100", "segment_length=50",
                "segments_per_episode=6", "pairs=300", "teachers=[oracle]", "camera=corner",
                "image_size=64", f"out={out}"]) == 0
    assert cli(["embed", f"data={out}"]) == 0
    return str(out)


def epoch_seconds(recipe: str, data: str, repeats: int) -> tuple[float, int, int]:
    """Best epoch time of ``recipe`` on ``data``, its pairs, and its parameters."""
    cfg = make_config([f"recipe={recipe}", f"data={data}"])
    dm = make_datamodule(cfg, open_dataset(data))
    dm.setup("fit")
    spec = reward_spec(cfg.model, dm.column_widths, dm.input_stats(cfg.model.inputs)).to_json()
    times = []
    for _ in range(repeats + 1):  # the first epoch warms up
        pl.seed_everything(0, verbose=False)
        learner = RewardLearner(spec, lr=cfg.optim.lr)
        dm.order = learner.order
        trainer = pl.Trainer(max_epochs=1, logger=False, accelerator="cpu",
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0,
                             deterministic=True)
        start = time.perf_counter()
        trainer.fit(learner, train_dataloaders=dm.train_dataloader())
        times.append(time.perf_counter() - start)
    assert dm.train_pairs is not None
    size = sum(p.numel() for p in learner.reward.parameters())
    return min(times[1:]), len(dm.train_pairs), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset with embeddings (default: collect a small one)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(args.data, Path(tmp))
        runs = {}
        for recipe in dict.fromkeys(r for pair in PAIRS for r in pair):
            seconds, pairs, size = epoch_seconds(recipe, data, args.repeats)
            runs[recipe] = {"epoch_s": round(seconds, 3), "pairs": pairs, "parameters": size}
    result = {
        "what": "one training epoch per recipe on the same pairs, 1 CPU thread, best of "
                f"{args.repeats}",
        "data": args.data or "collect episodes=20 max_steps=100 segment_length=50 "
                             "pairs=300 camera=corner image_size=64, then embed",
        "recipes": runs,
        "ratios": {f"{a}/{b}": round(runs[a]["epoch_s"] / runs[b]["epoch_s"], 2)
                   for a, b in PAIRS},
        "target": "image_sequence/image_frozen <= 2",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sequence_train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
