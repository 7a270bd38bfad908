"""Can a sequence reward express what a Markovian one cannot? Held-out agreement of
`state_sequence` against `state_mlp` (and, with ``--image``, `image_sequence` against
`image_frozen`) trained on the labels of one teacher, for `smooth` and `safe` (quantities of
a whole segment: jerk, a peak speed) and `oracle` (a sum of per-step rewards).

One dataset per kind is collected once (an expert mixture with graded noise; teachers
oracle, smooth and safe label the same pairs; the test split's pairs come from episodes no
model trains on). Each (recipe, teacher, seed) trains on the first ``--labels`` training
labels of that teacher, validated on the same teacher, and `rrm-data evaluate` scores the
test split against the same teacher: agreement on its non-tie pairs, with the 95% bootstrap
interval over episodes. Writes benchmarks/results/sequence_heldout[_image].json (``--quick``:
<work>/<kind>/result.json).

    python benchmarks/sequence_heldout.py [--image] [--seeds 0 1 2] [--quick]

Every step is an `rrm-data` command in ``--work`` (default runs/sequence_heldout), and a
finished step is not run again, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from common import save_result  # sets the process up before rrm_data

from rrm_data.cli import main as cli

TEACHERS = ("oracle", "smooth", "safe")
POLICIES = "[expert:0,expert:0.3,expert:0.6,expert:1,expert:3]"


def run(argv: list[str], done: Path) -> None:
    """One rrm-data command, skipped when ``done`` exists (it was finished before)."""
    if done.exists():
        return
    print("$ rrm-data " + " ".join(argv), flush=True)
    if cli(argv) != 0:
        raise SystemExit(f"failed: rrm-data {' '.join(argv)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", action="store_true", help="image models (camera, embed)")
    parser.add_argument("--task", default="drawer-close-v3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs")
    parser.add_argument("--work", type=Path, default=Path("runs/sequence_heldout"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.labels, args.seeds, args.epochs = 12, 60, [0], 1
    recipes = ("image_frozen", "image_sequence") if args.image else ("state_mlp",
                                                                    "state_sequence")
    kind = "image" if args.image else "state"
    work = args.work / kind
    data = work / "data"
    pairs = int(args.labels / 0.6) + 1  # 0.2 held out for test, about 0.1 of training for val
    camera = ["camera=corner", "image_size=64"] if args.image else []
    run(["collect", f"task={args.task}", f"episodes={args.episodes}", f"policy={POLICIES}",
         f"pairs={pairs}", f"teachers=[{','.join(TEACHERS)}]", *camera, f"out={data}"],
        data / "meta" / "info.json")
    if args.image:
        run(["embed", f"data={data}"], work / "embedded")
        (work / "embedded").touch()
    epochs = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
    result: dict[str, Any] = {
        "what": __doc__.split("\n\n")[0], "task": args.task, "episodes": args.episodes,
        "policy": POLICIES, "labels": args.labels, "seeds": args.seeds,
        "command": "python benchmarks/sequence_heldout.py" + (" --image" if args.image else ""),
        "teachers": {}}
    for teacher in TEACHERS:
        runs = {}
        for recipe in recipes:
            for seed in args.seeds:
                out = work / f"{recipe}-{teacher}-seed{seed}"
                run(["train-reward", f"recipe={recipe}", f"data={data}",
                     f"data.teacher={teacher}", f"data.val_teacher={teacher}",
                     f"data.num_labels={args.labels}", f"seed={seed}", *epochs, f"out={out}"],
                    out)
                runs[(recipe, seed)] = out
        report = work / f"eval-{teacher}"
        run(["evaluate", f"reward=[{','.join(str(r) for r in runs.values())}]",
             f"data={data}", "split=test", f"teacher={teacher}",
             f"out={report}"], report)
        views = json.loads((report / "report.json").read_text())["views"]
        cells: dict[str, Any] = {}
        for recipe in recipes:
            per_seed = []
            for seed in args.seeds:
                agreement = views[str(runs[(recipe, seed)])]["agreement"]
                per_seed.append({"seed": seed, "agreement": agreement["value"],
                                 "n": agreement["n"],
                                 "bootstrap_episodes": [agreement["bootstrap"]["low"],
                                                        agreement["bootstrap"]["high"]]})
            values = [s["agreement"] for s in per_seed]
            cells[recipe] = {"mean": round(float(np.mean(values)), 4), "per_seed": per_seed}
        gap = [s["agreement"] - m["agreement"] for s, m in
               zip(cells[recipes[1]]["per_seed"], cells[recipes[0]]["per_seed"], strict=True)]
        cells[f"{recipes[1]} - {recipes[0]}"] = {"per_seed": [round(g, 4) for g in gap],
                                                 "mean": round(float(np.mean(gap)), 4)}
        result["teachers"][teacher] = cells
    if args.quick:  # a smoke test's numbers are no result
        (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["teachers"], indent=2))
    else:
        save_result(f"sequence_heldout{'_image' if args.image else ''}", result)


if __name__ == "__main__":
    main()
