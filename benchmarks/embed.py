"""Speed of `rrm-data embed` against a bare timm forward, and of image_frozen training epochs.

``embed_vs_bare_forward``: frames/s of the embed loop (read PNG frames from Parquet, decode,
preprocess, encode; batch 64) over frames/s of a bare forward pass of the same timm model
on already preprocessed batches of the same size (target: close to 1, the encoder
dominates). ``embed_command_frames_per_s`` adds loading the weights and writing the new
dataset version. ``image_frozen_vs_state_residual_epoch``: seconds per training epoch of
``recipe=image_frozen`` (cached features) over ``recipe=state_residual`` on the same pairs
(target <= 2). Torch runs on one thread; each figure is the best of ``REPEATS`` runs.

    .venv/bin/python benchmarks/embed.py [episodes] [episode_steps] [image_size]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from common import save_result

from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.training.module import RewardLearner, reward_spec
from rrm_data.training.trainer import make_datamodule
from rrm_data.vision.embeddings import embed_steps, ensure_embeddings
from rrm_data.vision.encoders import load_encoder
from rrm_data.workflows.train_reward import make_config

TASK = "button-press-v3"
BATCH = 64
REPEATS = 3
EPOCHS = 3


def collect(out: Path, episodes: int, episode_steps: int, size: int) -> None:
    assert main(["collect", f"task={TASK}", f"episodes={episodes}",
                 f"episode_steps={episode_steps}",
                 "segment_length=25", "segments_per_episode=3", "pairs=600", "camera=corner",
                 f"image_size={size}", "teachers=[oracle]", f"out={out}"]) == 0


def bare_forward_rate(size: int, frames: int) -> float:
    """Frames/s of the encoder alone on preprocessed batches of BATCH frames."""
    encoder = load_encoder()
    x = encoder.preprocessing(np.random.default_rng(0).integers(
        0, 255, (BATCH, size, size, 3), dtype=np.uint8))
    batches = -(-frames // BATCH)
    with torch.inference_mode():
        encoder.model(x)
        start = time.perf_counter()
        for _ in range(batches):
            encoder.model(x)
    return batches * BATCH / (time.perf_counter() - start)


def embed_loop_rate(data: Path) -> float:
    dataset = open_dataset(data)
    encoder = load_encoder()
    start = time.perf_counter()
    table = embed_steps(dataset, ["corner"], encoder, BATCH)
    return table.num_rows / (time.perf_counter() - start)


def embed_command_rate(data: Path) -> float:
    start = time.perf_counter()
    ensure_embeddings(open_dataset(data))
    return open_dataset(data).info.counts.steps / (time.perf_counter() - start)


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def epoch_seconds(data: Path, recipe: str, root: Path) -> tuple[float, int]:
    """Fastest training epoch (no validation) of a recipe; also the number of train pairs."""
    cfg = make_config([f"recipe={recipe}", f"data={data}", f"out={root / recipe}"])
    pl.seed_everything(0, verbose=False)
    datamodule = make_datamodule(cfg, open_dataset(data))
    datamodule.setup("fit")
    spec = reward_spec(cfg.model, datamodule.column_widths,
                       datamodule.input_stats(cfg.model.inputs)).to_json()
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
    learner = RewardLearner(spec, lr=cfg.optim.lr)
    datamodule.order = learner.order
    trainer.fit(learner, datamodule=datamodule)
    return min(timer.seconds), len(datamodule.train_pairs)


def measure(episodes: int, episode_steps: int, size: int) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        collect(data, episodes, episode_steps, size)
        frames = open_dataset(data).info.counts.steps
        loop = max(embed_loop_rate(data) for _ in range(REPEATS))
        bare = max(bare_forward_rate(size, frames) for _ in range(REPEATS))
        command = embed_command_rate(data)
        state, pairs = epoch_seconds(data, "state_residual", root)
        image, _ = epoch_seconds(data, "image_frozen", root)
    return {
        "task": TASK, "frames": frames, "image_size": size, "batch_size": BATCH,
        "encoder": "tf_efficientnet_lite0", "torch_threads": 1,
        "embed_loop_frames_per_s": loop, "bare_forward_frames_per_s": bare,
        "embed_vs_bare_forward": loop / bare, "embed_command_frames_per_s": command,
        "train_pairs": pairs, "epochs": EPOCHS,
        "state_residual_epoch_s": state, "image_frozen_epoch_s": image,
        "image_frozen_vs_state_residual_epoch": image / state,
    }


if __name__ == "__main__":
    defaults = ["8", "80", "84"]
    episodes, episode_steps, size = (int(a) for a in sys.argv[1:] + defaults[len(sys.argv[1:]):])
    result = measure(episodes, episode_steps, size)
    save_result("embed", result)
