"""Label budget: agreement on oracle test pairs vs. number of training labels.

The paper's claim in offline form: a residual model (prior + learned residual) should
reach at small label budgets what a from-scratch PEBBLE model needs many more labels for.
For the teachers `oracle` and `mistake`, budgets 50 … 2000 and 3 seeds, it trains
`state_mlp` and `state_residual` with `train-reward` (the same number of gradient steps at
every budget) and scores the exported artifact on the test split's oracle pairs; the
prior alone is the reference. Results are written after every run, so a partial run
still reports. Writes benchmarks/results/label_budget.json and label_budget.png.

    python benchmarks/label_budget.py [--data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from rrm_data.cli import main as cli
from rrm_data.dataset.reader import DatasetDir, open_dataset
from rrm_data.reward.artifact import load_reward
from rrm_data.reward.base import PriorReward, RewardFunction
from rrm_data.reward.window import dataset_windows
from rrm_data.training.pairs import labelled_pairs, segment_windows
from rrm_data.workflows.train_reward import make_config, run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

RESULTS = Path(__file__).parent / "results"
MODELS = ("state_mlp", "state_residual")
TEACHERS = ("oracle", "mistake")


def agreement(reward: RewardFunction, dataset: DatasetDir) -> float:
    """Strict accuracy of the reward's segment returns on the non-tie oracle test pairs."""
    first, length = segment_windows(dataset)
    pairs = labelled_pairs(dataset, "test", "oracle", first)
    scores = reward.score(dataset_windows(dataset, reward.columns, reward.window)).total
    returns = scores[pairs.first[..., None] + np.arange(length)].sum(axis=-1)
    decided = pairs.label != 0.5
    return float(((returns[:, 0] > returns[:, 1]) == (pairs.label > 0.5))[decided].mean())


def collect(workdir: Path) -> Path:
    out = workdir / "data"
    assert cli(["collect", "episodes=100", "pairs=2500", "teachers=[oracle,mistake]",
                f"out={out}"]) == 0
    return out


def train_and_score(data: Path, recipe: str, teacher: str, budget: int, seed: int, steps: int,
                    workdir: Path) -> float:
    out = workdir / f"{recipe}-{teacher}-{budget}-{seed}"
    cfg = make_config([f"recipe={recipe}", f"data={data}", f"data.teacher={teacher}",
                       f"data.num_labels={budget}", f"seed={seed}", f"out={out}",
                       "trainer.max_epochs=-1", f"trainer.max_steps={steps}",
                       "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false"])
    run(cfg)
    return agreement(load_reward(out), open_dataset(data))


def plot(result: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(result["teachers"]), figsize=(5 * len(result["teachers"]), 4),
                             sharey=True, squeeze=False)
    for ax, teacher in zip(axes[0], result["teachers"], strict=True):
        for model in MODELS:
            rows = [r for r in result["runs"] if r["model"] == model and r["teacher"] == teacher]
            budgets = sorted({r["budget"] for r in rows})
            if not budgets:
                continue
            values = [[r["agreement"] for r in rows if r["budget"] == b] for b in budgets]
            ax.errorbar(budgets, [np.mean(v) for v in values], yerr=[np.std(v) for v in values],
                        marker="o", capsize=3, label=model)
        ax.axhline(result["prior_only"], color="gray", ls="--", label="prior only")
        ax.set(xscale="log", xlabel="training labels", title=f"teacher: {teacher}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("agreement on oracle test pairs")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset with oracle and mistake labels "
                                       "(default: collect 100 episodes, 2,500 pairs)")
    parser.add_argument("--quick", action="store_true", help="budgets 50/250/1000, one seed, "
                                                             "oracle only, fewer steps")
    parser.add_argument("--steps", type=int, help="gradient steps per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    budgets = [50, 250, 1000] if args.quick else [50, 100, 250, 500, 1000, 2000]
    seeds = [0] if args.quick else [0, 1, 2]
    teachers = ("oracle",) if args.quick else TEACHERS
    steps = args.steps or (40 if args.quick else 60)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = Path(args.data) if args.data else collect(workdir)
        dataset = open_dataset(data)
        result = {"benchmark": "label_budget", "data": str(data), "quick": args.quick,
                  "steps_per_run": steps, "batch_size": 64, "budgets": budgets, "seeds": seeds,
                  "teachers": list(teachers), "prior": "gripper_object",
                  "prior_only": agreement(PriorReward("gripper_object"), dataset), "runs": []}
        for seed in seeds:
            for teacher in teachers:
                for budget in budgets:
                    for model in MODELS:
                        start = time.perf_counter()
                        value = train_and_score(data, model, teacher, budget, seed, steps,
                                                workdir)
                        result["runs"].append({"model": model, "teacher": teacher,
                                               "budget": budget, "seed": seed,
                                               "agreement": round(value, 4),
                                               "seconds": round(time.perf_counter() - start, 1)})
                        result["summary"] = summary(result["runs"])
                        (RESULTS / "label_budget.json").write_text(json.dumps(result, indent=2))
                        plot(result, RESULTS / "label_budget.png")
    print(json.dumps({k: result[k] for k in ("prior_only", "summary")}, indent=2))


def summary(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean agreement per teacher, model and budget."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in runs:
        cell = out.setdefault(r["teacher"], {}).setdefault(r["model"], {})
        cell.setdefault(str(r["budget"]), [])
        cell[str(r["budget"])].append(r["agreement"])
    return {t: {m: {b: round(float(np.mean(v)), 4) for b, v in c.items()} for m, c in ms.items()}
            for t, ms in out.items()}


if __name__ == "__main__":
    main()
