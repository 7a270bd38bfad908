"""Success rate against env steps: true reward, prior, RRM and PEBBLE online, offline.

On one task (default drawer-close-v3 with `sac=cpu`, CPU-sized SAC: with the true reward
both seeds pass 0.8 evaluation success by 30k steps, about 11 minutes of one core), at
equal env steps and for each seed, it runs:

- `true`: train-sac on the task's own reward (the ceiling);
- `prior`: train-sac on the prior alone (`prior:gripper_object`);
- `rrm-<B>`: train-online recipe=rrm with B oracle labels (default B = 500, 2000);
  `--prior-weights 1 3 10` adds `rrm-<B>-w<w>` runs with `model.prior_weight=w` (the
  priors span about [-0.5, 0], the residual [-1, 1]: the prior's scale is a parameter);
- `pebble-<B>`: train-online recipe=pebble with the same budgets;
- `offline`: collect (expert with noise, and random), train-reward state_residual on
  2,000 oracle labels, train-sac on the result.

At CPU scale the B-Pref cadence (50 labels every 5,000 steps) would not spend 2,000
labels in 30k steps, so online runs ask `budget / rounds` labels every `round_every`
steps (default 10 rounds, every 2,000 steps: the last round is at 19k steps);
PEBBLE's unsupervised phase is scaled the same way (`--unsupervised-steps`).

Every run writes its own directory under `--work` (kept; a finished run is not redone,
and a longer earlier run counts up to `--steps`, so the script resumes and extends; a
failed run is listed in the JSON and the rest go on). Seeds can run as parallel
processes (`--seeds 0` and `--seeds 1` with their own `--name`); a last run with all
seeds then only reads their `eval.csv` and `summary.json` (`--report` reads what is
finished and starts nothing, while other runs are going). The curves (each seed's, and
their mean, min and max, of the evaluation success rate at each evaluation) go to
benchmarks/results/<name>.json and .png, after every run. `--smoke` runs the whole
machinery in a few minutes (tiny steps and budgets; results/rl_curves_smoke.json): the
numbers mean nothing.

    python benchmarks/rl_curves.py [--task drawer-close-v3] [--steps 30000] [--seeds 0 1]
    python benchmarks/rl_curves.py --smoke
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib
import numpy as np

from rrm_data.cli import main as cli

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

RESULTS = Path(__file__).parent / "results"


def conditions(args: argparse.Namespace) -> dict[str, list[str]]:
    """Condition name → the CLI command (without out=) of one seed (``{seed}`` filled later)."""
    common = [f"task={args.task}", f"steps={args.steps}", f"eval_every={args.eval_every}",
              f"eval_episodes={args.eval_episodes}", "seed={seed}", *args.extra]
    sac = ["train-sac", f"sac={args.sac}", "checkpoint_every=0", *common]
    out: dict[str, list[str]] = {"true": [*sac, "reward=true"],
                                 "prior": [*sac, "reward=prior:gripper_object"]}
    for budget in args.budgets:
        per_round = max(1, budget // args.rounds)
        online = ["train-online", f"sac={args.sac}", *common,
                  f"feedback={per_round * args.rounds}", f"labels_per_round={per_round}",
                  f"round_every={args.round_every}"]
        for weight in args.prior_weights:  # the prior's scale, a studied parameter
            name = f"rrm-{budget}" + ("" if weight == 1.0 else f"-w{weight:g}")
            out[name] = [*online, "recipe=rrm", f"model.prior_weight={weight}"]
        out[f"pebble-{budget}"] = [*online, "recipe=pebble",
                                   f"unsupervised_steps={args.unsupervised_steps}"]
    out["offline"] = [*sac, "reward={offline_reward}"]
    return out


def offline_reward(args: argparse.Namespace, seed: int) -> Path:
    """collect + train-reward (state_residual) for one seed; the reward run directory."""
    data, run = args.work / f"offline-data-seed{seed}", args.work / f"offline-reward-seed{seed}"
    if not data.exists():
        assert cli(["collect", f"task={args.task}", f"episodes={args.offline_episodes}",
                    "policy=[expert:0.3,expert:1.0,random]", f"pairs={args.offline_labels}",
                    f"seed={seed}", f"out={data}", *args.collect_extra]) == 0
    if not run.exists():
        assert cli(["train-reward", "recipe=state_residual", f"data={data}",
                    f"seed={seed}", f"out={run}"]) == 0
    return run


def run_all(args: argparse.Namespace) -> dict:
    """Run (or pick up) every condition and seed; a failed run is recorded, not fatal, so
    one crash does not cost the rest of a multi-hour sweep."""
    args.work.mkdir(parents=True, exist_ok=True)
    curves: dict[str, dict[int, list[dict]]] = {}
    seconds: dict[str, list[float]] = {}
    failed: list[str] = []
    for name, command in conditions(args).items():
        if args.only and name not in args.only:
            continue
        for seed in args.seeds:
            out = args.work / f"{name}-seed{seed}"
            if not (out / "eval.csv").exists():
                if args.report:
                    continue
                reward = offline_reward(args, seed) if name == "offline" else ""
                argv = [a.format(seed=seed, offline_reward=reward) for a in command]
                if cli([*argv, f"out={out}"]) != 0:
                    failed.append(out.name)
                    continue
            with (out / "eval.csv").open() as f:  # a longer earlier run counts up to --steps
                rows = [r for r in csv.DictReader(f) if int(r["timesteps"]) <= args.steps]
            curves.setdefault(name, {})[seed] = rows
            summary = json.loads((out / "summary.json").read_text())
            seconds.setdefault(name, []).append(summary["seconds"])
            save(args, curves, seconds, failed)
    return save(args, curves, seconds, failed)


def summarize(rows_by_seed: dict[int, list[dict]]) -> dict:
    rows_at = {seed: {int(r["timesteps"]): r for r in rows}
               for seed, rows in sorted(rows_by_seed.items())}
    steps = sorted({s for rows in rows_at.values() for s in rows})
    success = {seed: {s: float(r["success_rate"]) for s, r in rows.items()}
               for seed, rows in rows_at.items()}
    by_step = {s: [c[s] for c in success.values() if s in c] for s in steps}
    labels = {s: [float(rows[s]["labels"]) for rows in rows_at.values()
                  if s in rows and "labels" in rows[s]] for s in steps}
    return {"timesteps": steps, "seeds": sorted(rows_by_seed),
            "success_per_seed": {seed: [c.get(s) for s in steps] for seed, c in success.items()},
            # per seed: the mean over all evaluations (area under the curve, in [0, 1]) and
            # the first evaluation step at >= 0.8 success (None: never within the run)
            "success_area_per_seed": {seed: round(float(np.mean(list(c.values()))), 3)
                                      for seed, c in success.items()},
            "first_step_at_0.8_per_seed": {seed: next((s for s in sorted(c) if c[s] >= 0.8), None)
                                           for seed, c in success.items()},
            "success_mean": [round(float(np.mean(by_step[s])), 3) for s in steps],
            "success_min": [float(np.min(by_step[s])) for s in steps],
            "success_max": [float(np.max(by_step[s])) for s in steps],
            "labels_mean": [float(np.mean(labels[s])) if labels[s] else None for s in steps]}


def save(args: argparse.Namespace, curves: dict, seconds: dict, failed: list[str]) -> dict:
    result = {"task": args.task, "steps": args.steps, "sac": args.sac,
              "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
              "round_every": args.round_every, "rounds": args.rounds,
              "budgets": args.budgets, "smoke": args.smoke,
              "conditions": {name: summarize(rows) for name, rows in curves.items()},
              "seconds_per_run": seconds, "failed_runs": failed}
    name = args.name or ("rl_curves_smoke" if args.smoke else "rl_curves")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(args, result, RESULTS / f"{name}.png")
    return result


def plot(args: argparse.Namespace, result: dict, path: Path) -> None:
    """One panel per condition: each seed thin, their mean bold, the true reward's mean
    dashed for reference (overlaid min-max bands of seven conditions are unreadable)."""
    conds = result["conditions"]
    if not conds:  # --report before any run finished: the JSON says so, no empty figure
        return
    cols = min(4, max(1, len(conds)))
    rows = -(-len(conds) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.8), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (cond, c) in zip(axes.flat, conds.items(), strict=False):  # spare panels stay
        if cond != "true" and "true" in conds:
            ax.plot(conds["true"]["timesteps"], conds["true"]["success_mean"], "--",
                    color="grey", lw=1, label="true (mean)")
        for seed, ys in c["success_per_seed"].items():
            ax.plot(c["timesteps"], ys, lw=0.8, alpha=0.6, label=f"seed {seed}")
        ax.plot(c["timesteps"], c["success_mean"], color="black", lw=2, marker="o", ms=3,
                label="mean")
        ax.set_title(f"{cond} ({len(c['seeds'])} seeds)", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(conds):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="lower right")
    fig.supxlabel("env steps")
    fig.supylabel(f"evaluation success ({args.eval_episodes} episodes)")
    fig.suptitle(f"{args.task}, SAC {args.sac}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="drawer-close-v3")
    parser.add_argument("--sac", default="cpu", help="option of recipes/sac/")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--prior-weights", type=float, nargs="+", default=[1.0],
                        help="RRM runs for each weight w of r0 (e.g. 1 3 10)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-every", type=int, default=2000)
    parser.add_argument("--unsupervised-steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--offline-episodes", type=int, default=60)
    parser.add_argument("--offline-labels", type=int, default=2500)
    parser.add_argument("--only", nargs="*", help="run only these conditions")
    parser.add_argument("--work", type=Path, default=Path("runs/rl_curves"))
    parser.add_argument("--report", action="store_true",
                        help="start no run: plot the finished ones (others may be running)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--name", help="results file name (default rl_curves[_smoke])")
    args = parser.parse_args(argv)
    args.extra, args.collect_extra = [], []
    if args.smoke:  # the machinery, end to end, in a few minutes
        args.steps, args.seeds, args.budgets, args.rounds = 600, [0], [20, 40], 2
        args.round_every, args.unsupervised_steps = 150, 100
        args.eval_every, args.eval_episodes = 300, 1
        args.offline_episodes, args.offline_labels = 6, 60
        args.work = args.work.with_name(args.work.name + "_smoke")
        args.extra = ["episode_steps=50", "sac.learning_starts=100", "sac.batch_size=64",
                      "sac.net_arch=[64,64]"]
        args.collect_extra = ["episode_steps=50", "segment_length=25", "segments_per_episode=4"]
    return args


if __name__ == "__main__":
    run_all(parse())
