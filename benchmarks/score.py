"""Speed of `rrm-data score` against a bare forward pass of the same network, in one process.

A dataset is collected (collect's default episode shape: 500 steps, 8 segments of 50)
and a reward model (recipe state_residual, its full-size network)
is trained for a few batches with the real commands, in child processes so that the
measuring process starts clean; then, alternating, best of ``REPEATS``:

- ``score``: the score command's `run` (open the dataset, read pairs, segments and steps,
  score, window sums, P(A ≻ B), write Parquet);
- ``bare_forward``: the artifact's network on pre-built torch tensors of exactly the steps
  those pairs cover (each step once, as `score` does), under `torch.no_grad`.

``score_vs_bare`` = pairs/s of score over pairs/s of the bare forward (target >= 0.7), on
this process's CPU time (1 torch thread), which other jobs disturb less than wall time.
``score_vs_bare_chunked`` is the stricter reference: the bare forward in the same
``CHUNK``-step slices that `score` feeds the network (cache-sized, hence faster than one
whole-tensor call), so it isolates what score adds around the network.
``bare_per_pair_tensors_s`` is for reference: a forward over per-pair tensors (2 × H steps
per pair, repeats included), what a naive scorer would run.

    .venv/bin/python benchmarks/score.py [episodes] [pairs]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import save_result

from rrm_data.config import build_config
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.evaluation.scoring import load_split, window_rows
from rrm_data.reward.artifact import CHUNK, load_reward
from rrm_data.workflows import score

REPEATS = 9
SPLIT = "train"


def rrm_data(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "rrm_data.cli", *args], check=True)


def cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main_benchmark(episodes: int, pairs: int) -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data, run = Path(tmp) / "data", Path(tmp) / "run"
        rrm_data("collect", f"episodes={episodes}", "episode_steps=500", "segment_length=50",
                 "segments_per_episode=8", f"pairs={pairs}", "teachers=[oracle]", f"out={data}")
        rrm_data("train-reward", "recipe=state_residual", f"data={data}", f"out={run}",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                 "trainer.enable_progress_bar=false")

        cfg = build_config(score.Config(), [f"reward={run}", f"data={data}", f"split={SPLIT}",
                                            f"out={Path(tmp) / 'scores.parquet'}",
                                            "overwrite=true"])
        split = load_split(open_dataset(data), SPLIT, teacher=None)
        n_pairs = len(split.pairs)
        rows = window_rows(split.segments["first"], split.segments["length"])
        reward = load_reward(run)
        network = reward.model
        columns = step_columns(split.dataset, network.columns)
        unique = {c: torch.from_numpy(np.ascontiguousarray(columns[c][rows]))
                  for c in network.columns}
        length = int(split.segments["length"].iloc[0])
        windows = np.concatenate([
            (split.segments["first"].to_numpy()[split.pairs[side].to_numpy()][:, None]
             + np.arange(length)).ravel() for side in ("seg_a", "seg_b")])
        per_pair = {c: torch.from_numpy(np.ascontiguousarray(columns[c][windows]))
                    for c in network.columns}

        def bare(tensors: dict, chunk: int | None = None) -> None:
            n = len(next(iter(tensors.values())))
            step = chunk or n
            with torch.no_grad():
                for i in range(0, n, step):
                    network({c: v[i:i + step] for c, v in tensors.items()})

        times: dict[str, list[float]] = {"score": [], "bare": [], "chunked": []}
        for _ in range(REPEATS):
            times["score"].append(cpu_time(lambda: score.run(cfg)))
            times["bare"].append(cpu_time(lambda: bare(unique)))
            times["chunked"].append(cpu_time(lambda: bare(unique, CHUNK)))
        # Last and apart: its 160,000-step batch (~0.5 GB of activations) leaves the memory
        # allocator in a state that slows whatever runs next.
        times["per_pair"] = [cpu_time(lambda: bare(per_pair)) for _ in range(3)]
        best = {k: min(v) for k, v in times.items()}
    return {
        "pairs": n_pairs,
        "scored_steps": int(len(rows)),
        "per_pair_steps": int(len(windows)),
        "network": dict(reward.spec.network.params) if reward.spec.network else {},
        "score_s": best["score"],
        "bare_forward_s": best["bare"],
        "bare_chunked_forward_s": best["chunked"],
        "chunk": CHUNK,
        "bare_per_pair_tensors_s": best["per_pair"],
        "score_pairs_per_s": n_pairs / best["score"],
        "bare_pairs_per_s": n_pairs / best["bare"],
        "score_vs_bare": best["bare"] / best["score"],
        "target": 0.7,
        "score_vs_bare_chunked": best["chunked"] / best["score"],
        "torch_threads": 1,
        "repeats": REPEATS,
        "clock": "process CPU time, best of repeats",
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    result = main_benchmark(*(args or [40, 2000]))
    save_result("score", result)
