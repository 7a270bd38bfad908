"""Epoch time of the sequence rewards against their Markovian counterparts on the same pairs.

`image_sequence` ÷ `image_frozen` (target ≤ 2) and `state_sequence` ÷ `state_mlp` (quoted),
each an epoch of the recipe's model over the same training pairs, the image ones reading
the cached EfficientNet-Lite0 embeddings (built once by `embed` before timing). One CPU
thread, the best of ``--repeats`` rounds after a warm-up one; rounds alternate the recipes
(the machine is shared), and CPU seconds are kept beside wall ones. Writes
benchmarks/results/sequence_train.json.

    python benchmarks/sequence_train.py [--data DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import Clock, clock, save_result, since

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
    assert cli(["collect", "episodes=20", "episode_steps=100", "segment_length=50",
                "segments_per_episode=6", "pairs=300", "teachers=[oracle]", "camera=corner",
                "image_size=64", f"out={out}"]) == 0
    assert cli(["embed", f"data={out}"]) == 0
    return str(out)


class Recipe:
    """One recipe's model and training pairs on ``data``, set up once for every round."""

    def __init__(self, recipe: str, data: str) -> None:
        cfg = make_config([f"recipe={recipe}", f"data={data}"])
        self.lr = cfg.optim.lr
        self.dm = make_datamodule(cfg, open_dataset(data))
        self.dm.setup("fit")
        assert self.dm.train_pairs is not None
        self.pairs = len(self.dm.train_pairs)
        self.spec = reward_spec(cfg.model, self.dm.column_widths,
                                self.dm.input_stats(cfg.model.inputs)).to_json()
        self.parameters = sum(p.numel() for p in RewardLearner(self.spec).reward.parameters())

    def epoch(self) -> Clock:
        """(CPU, wall) seconds of one epoch from freshly seeded weights."""
        learner = RewardLearner(self.spec, lr=self.lr)  # seeded: seed 0
        self.dm.order = learner.order
        trainer = pl.Trainer(max_epochs=1, logger=False, accelerator="cpu",
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0,
                             deterministic=True)
        start = clock()
        trainer.fit(learner, train_dataloaders=self.dm.train_dataloader())
        return since(start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset with embeddings (default: collect a small one)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(args.data, Path(tmp))
        recipes = {r: Recipe(r, data) for r in dict.fromkeys(r for pair in PAIRS for r in pair)}
        times: dict[str, list[Clock]] = {r: [] for r in recipes}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeats + 1):  # rounds alternate the recipes; the first warms up
            for name, recipe in recipes.items():
                times[name].append(recipe.epoch())
            load.append(os.getloadavg()[0])
    best = {r: (min(c for c, _ in t[1:]), min(w for _, w in t[1:])) for r, t in times.items()}
    runs = {r: {"epoch_s": round(best[r][1], 3), "epoch_cpu_s": round(best[r][0], 3),
                "pairs": recipe.pairs, "parameters": recipe.parameters}
            for r, recipe in recipes.items()}
    result = {
        "what": "one training epoch per recipe on the same pairs, 1 CPU thread, best of "
                f"{args.repeats} rounds that alternate the recipes; wall and CPU seconds "
                "(the machine is shared: CPU seconds are the steadier)",
        "data": args.data or "collect episodes=20 episode_steps=100 segment_length=50 "
                             "pairs=300 camera=corner image_size=64, then embed",
        "recipes": runs,
        "ratios": {f"{a}/{b}": round(runs[a]["epoch_s"] / runs[b]["epoch_s"], 2)
                   for a, b in PAIRS},
        "cpu_ratios": {f"{a}/{b}": round(runs[a]["epoch_cpu_s"] / runs[b]["epoch_cpu_s"], 2)
                       for a, b in PAIRS},
        "load_1min": [round(x, 2) for x in load],
        "target": "image_sequence/image_frozen <= 2",
    }
    save_result("sequence_train", result)


if __name__ == "__main__":
    main()
