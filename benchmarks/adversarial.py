"""Replays issue #18's adversarial pass as concrete command lines on small real data.

Each case is one ``rrm-data`` command run in this process on fixtures made in a temporary
folder (a 4-episode collection, a queried copy, two shards, a tiny reward run, a campaign),
and is classified as:

- ``refused cleanly``: non-zero exit, exactly one ``rrm-data CMD: error:`` line on stderr, no
  traceback, nothing anywhere in the work folder changed or left behind, every input dataset
  still valid;
- ``accepted correctly``: exit 0, every input dataset still valid, the output there (and
  valid, where it is a dataset);
- ``defective``: anything else (a traceback, several lines, exit 0 where the issue asks for a
  refusal, a refusal that left something behind, an input that no longer validates).

Writes results/adversarial.json: every case's outcome and the totals. Run:
``PYTHONPATH=. python benchmarks/adversarial.py`` (a few minutes on one core).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from common import save_result

from rrm_data.annotation.campaign import (
    CampaignSpec,
    campaign_items,
    campaign_queues,
    campaign_settings,
)
from rrm_data.annotation.store import Store
from rrm_data.cli import main
from rrm_data.dataset.reader import open_dataset
from rrm_data.dataset.validate import validate_dataset

SUITE = Path(__file__).parent / "suites" / "smoke.yaml"
TINY_TRAIN = ["model.hidden=16", "model.layers=2", "model.members=2", "trainer.max_epochs=2",
              "trainer.enable_progress_bar=false"]
COLLECT = ["episodes=6", "episode_steps=50", "segment_length=10", "segments_per_episode=4",
           "pairs=20"]
SAC = ["task=reach-v3", "steps=200", "eval_every=100", "eval_episodes=1", "episode_steps=50",
       "sac.learning_starts=50", "sac.batch_size=32", "sac.net_arch=[32,32]"]
ONLINE = ["task=reach-v3", "episode_steps=50", "sac.learning_starts=100", "sac.batch_size=32",
          "sac.net_arch=[32,32]", "model.hidden=32", "model.layers=2", "labels_per_round=10",
          "round_every=100", "segment_length=20", "pool_factor=3", "reward_max_epochs=10",
          "eval_every=200", "eval_episodes=1", "steps=300", "feedback=20"]


@dataclass
class Case:
    """One command line; ``expect`` is "refuse" or "accept"; ``datasets`` must stay valid;
    ``output`` (accepted cases) must exist, and validate where ``output_dataset``."""

    defect: str
    name: str
    argv: list[str]
    expect: str
    datasets: list[Path] = field(default_factory=list)
    output: Path | None = None
    output_dataset: bool = False
    no_text: str | None = None  # text that must not appear on stderr (a library warning)


def cli(*argv: str) -> None:
    """Make a fixture; it must succeed."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(list(argv)) == 0, (argv, err.getvalue()[-500:])


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (hidden ones included): a digest of files, '' for folders."""
    return {str(p.relative_to(root)): "" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if not p.is_symlink()}


def fixtures(root: Path) -> dict[str, Path]:
    """Small real inputs: datasets, a queried copy, shards, a run, a report, a campaign."""
    f = {name: root / name for name in ("data", "other", "queried", "s0", "s1", "run",
                                        "campaign", "retasked", "file", "plain",
                                        "report")}
    cli("collect", *COLLECT, f"out={f['data']}")
    cli("collect", *COLLECT, "seed=1", f"out={f['other']}")
    cli("query", f"data={f['other']}", "strategy=uniform", "n=5")
    shutil.copytree(f["data"], f["queried"])
    cli("query", f"data={f['queried']}", "strategy=uniform", "n=5")
    for i in range(2):
        cli("collect", "episodes=2", "episode_steps=20", "segment_length=10",
            "segments_per_episode=2", "pairs=0", f"shard={i}/2", f"out={f[f's{i}']}")
    cli("train-reward", "recipe=state_residual", f"data={f['data']}", f"out={f['run']}",
        *TINY_TRAIN)
    dataset = open_dataset(f["queried"])
    spec = CampaignSpec(("ana",), calibration=1, calibration_first=0, overlap=1)
    items = campaign_items(dataset, spec)
    f["campaign"].mkdir()
    store = Store(f["campaign"] / "store.sqlite")
    store.create(items, campaign_queues(items, spec), campaign_settings(dataset, spec))
    store.answer("ana", 0, "left", 3, 2.0, "request-0")
    store.close()
    cli("evaluate", f"reward={f['run']}", f"data={f['data']}", f"out={f['report']}")
    shutil.copytree(f["run"] / "reward", f["retasked"])  # a reward of another task
    spec_path = f["retasked"] / "reward.json"
    record = json.loads(spec_path.read_text())
    record["training"] = {**record["training"], "tasks": ["drawer-close-v3"]}
    spec_path.write_text(json.dumps(record))
    shutil.copytree(f["run"] / "reward", f["plain"])  # a reward artifact in a plain folder
    f["file"].write_text("a file where a folder should be")
    return f


def out_cases(f: dict[str, Path], outs: Path) -> list[Case]:
    """Defects 1 and 10: for every command taking out=, out inside a dataset, inside a run,
    inside an input, under a file (the unwritable location a root user can make)."""
    d, r = f["data"], f["run"]
    # (command, its arguments without out=, an out name, the datasets it reads)
    commands: list[tuple[str, list[str], str, list[Path]]] = [
        ("collect", COLLECT, "c", []),
        ("merge", [f"shards=[{f['s0']},{f['s1']}]"], "m", [f["s0"], f["s1"]]),
        ("render", [f"data={d}", "camera=corner", "image_size=32"], "v2", [d]),
        ("query", [f"data={d}", "strategy=uniform", "n=5"], "q", [d]),
        ("label", [f"data={d}", "teacher=oracle", "replace=true"], "l", [d]),
        ("train-reward", [f"data={d}", *TINY_TRAIN], "run", [d]),
        ("evaluate", [f"reward={r}", f"data={d}"], "report", [d]),
        ("score", [f"reward={r}", f"data={d}"], "s.parquet", [d]),
        ("gallery", [f"reward={r}", f"data={d}", "k=1"], "g", [d]),
        ("publish", [f"data={d}", "repo_id=a/b", "dry_run=true"], "hub", [d]),
        ("export-trl", [f"data={d}"], "train-00001-of-00002.parquet", [d]),
        ("train-sac", ["reward=true", *SAC], "sac", []),
        ("train-online", ONLINE, "online", []),
        ("train-offline", [f"data={d}", "steps=10", "eval_every=0", "eval_episodes=1"],
         "off", [d]),
        ("annotate", [f"data={f['queried']}", f"campaign={f['campaign']}", "export=true",
                      "threshold=0"], "v2", [f["queried"]]),
        ("benchmark", [f"suite={SUITE}", "dry_run=true"], "grid", []),
        ("benchmark-report", [f"runs=[{outs}]"], "report", []),
    ]
    cases = []
    for command, args, name, datasets in commands:
        keep = [*datasets, d]
        where = {"inside a dataset": d / "steps" / "sub" / name,
                 "inside a run": r / "checkpoints" / name,
                 "inside a report": f["report"] / "deeper" / name,
                 "under a file (unwritable)": f["file"] / "sub" / name}
        for shape, out in where.items():
            cases.append(Case("1" if "file" not in shape else "10", f"{command} out= {shape}",
                              [command, *args, f"out={out}"], "refuse", keep))
    # inside one of its own inputs (a plain reward folder, no rrm-data marker)
    cases.append(Case("1", "score out= inside its reward= input (a plain folder)",
                      ["score", f"reward={f['plain']}", f"data={d}",
                       f"out={f['plain'] / 'sub' / 's.parquet'}"], "refuse", [d]))
    cases.append(Case("1", "export-trl out= holding its data= input",
                      ["export-trl", f"data={d}", f"out={d.parent}"], "refuse", [d]))
    # defect 8: campaign= in a dataset, in a run, a file
    for shape, campaign in {"in a dataset": d / "ann", "in a run": r / "ann",
                            "a file": f["file"]}.items():
        cases.append(Case("8", f"annotate campaign= {shape}",
                          ["annotate", f"data={f['queried']}", f"campaign={campaign}",
                           "annotators=[ana]", "port=0"], "refuse", [f["queried"], d]))
    return cases


def other_cases(f: dict[str, Path], outs: Path) -> list[Case]:
    d, q, r = f["data"], f["queried"], f["run"]
    c = f["campaign"]
    cases = [
        # 3: a campaign bound to its dataset
        Case("3", "annotate export onto another dataset",
             ["annotate", f"data={f['other']}", f"campaign={c}", "export=true"], "refuse",
             [f["other"]]),
        Case("3", "annotate serve another dataset",
             ["annotate", f"data={f['other']}", f"campaign={c}", "port=0"], "refuse",
             [f["other"]]),
        # 4: every query of a round skipped
        Case("4", "train-online teacher=skip teacher_params.epsilon=2",
             ["train-online", *ONLINE, "teacher=skip", "teacher_params.epsilon=2",
              f"out={outs / 'skip'}"], "accept", output=outs / "skip" / "summary.json"),
        # 13: refusals that follow from the config, before the work
        Case("13", "train-online sac.learning_starts before the first episode ends",
             ["train-online", *ONLINE, "sac.learning_starts=40", f"out={outs / 'ls'}"],
             "refuse"),
        Case("13", "collect more test pairs than its segments make",
             ["collect", *COLLECT[:-1], "pairs=5000", f"out={outs / 'toomany'}"], "refuse"),
        # 12: a reward of another task
        Case("12", "train-sac a reward trained on another task",
             ["train-sac", f"reward={f['retasked']}", *SAC, f"out={outs / 'xsac'}"], "refuse"),
        Case("12", "query with a reward trained on another task",
             ["query", f"data={d}", f"reward={f['retasked']}", "strategy=disagreement", "n=3",
              f"out={outs / 'xq'}"], "refuse", [d]),
        Case("12", "query with it and allow_other_task=true",
             ["query", f"data={d}", f"reward={f['retasked']}", "strategy=disagreement", "n=3",
              "allow_other_task=true", f"out={outs / 'xq2'}"], "accept", [d],
             outs / "xq2", True),
        # 14: smaller points
        Case("14", "embed camera=[corner,corner]",
             ["embed", f"data={d}", "camera=[corner,corner]"], "refuse", [d]),
        Case("14", "render camera=[corner,corner]",
             ["render", f"data={d}", "camera=[corner,corner]", f"out={outs / 'cc'}"],
             "refuse", [d]),
        Case("14", "publish license with a newline",
             ["publish", f"data={d}", "repo_id=a/b", "dry_run=true",
              'license="mit\\nprivate: true"', f"out={outs / 'lic'}"], "refuse", [d]),
        Case("14", "publish license=MIT (not an id)",
             ["publish", f"data={d}", "repo_id=a/b", "dry_run=true", "license=MIT",
              f"out={outs / 'lic2'}"], "refuse", [d]),
        Case("14", "query reward=true where a run is needed",
             ["query", f"data={d}", "reward=true", "strategy=disagreement", "n=3"], "refuse",
             [d]),
        Case("14", "embed on a frameless dataset", ["embed", f"data={d}"], "refuse", [d]),
        Case("14", "train-reward prints no weights_only warning",
             ["train-reward", f"data={d}", *TINY_TRAIN, f"out={outs / 'tr'}"], "accept", [d],
             outs / "tr" / "reward" / "reward.json", no_text="weights_only"),
    ]
    # 5 and 9: numbers that reached the libraries
    for command, args in [
            ("train-online", ["sac.batch_size=0"]), ("train-online", ["sac.n_envs=0"]),
            ("train-online", ["sac.train_freq=0"]),
            ("train-online", ["sac.target_update_interval=0"]),
            ("train-online", ["model.prior_weight=.nan"]), ("train-online", ["reward_lr=nan"]),
            ("train-online", ["episode_steps=0"]), ("train-online", ["sac.gamma=5"]),
            ("train-sac", ["sac.gamma=5", "sac.tau=-3"]),
            ("train-sac", ["sac.learning_rate=nan"]), ("train-sac", ["episode_steps=0"]),
            ("train-sac", ["sac.net_arch=[256,0]"]), ("train-sac", ["seed=4294967296"]),
            ("publish", [f"data={d}", "repo_id=a/b", "dry_run=true", "max_file_mb=nan"]),
            ("publish", [f"data={d}", "repo_id=a/b", "dry_run=true", "max_file_mb=inf"]),
            ("annotate", [f"data={q}", "annotators=[ana]", "port=99999"]),
            ("annotate", [f"data={q}", "annotators=[ana]", "port=-1"]),
            ("annotate", [f"data={q}", "annotators=[ana]", "host=::1", "port=-.inf"]),
            ("embed", [f"data={d}", "camera=5"]),
            ("collect", [*COLLECT, "test_fraction=nan"]),
            ("collect", [*COLLECT, "episodes=0"]), ("collect", [*COLLECT, "episode_steps=-1"]),
            ("collect", [*COLLECT, "policy=[]"]),
            ("train-reward", [f"data={d}", "optim.lr=-1"]),
            ("train-reward", [f"data={d}", "trainer.max_epochs=0"]),
            ("train-reward", [f"data={d}", "model.hidden=1.5"]),
            ("train-reward", [f"data={d}", "model.prior_weight=inf"]),
            ("train-offline", [f"data={d}", "gamma=nan"]),
            ("train-offline", [f"data={d}", "batch_size=0"]),
            ("train-offline", [f"data={d}", "learning_rate=inf"]),
            ("query", [f"data={d}", "n=0"]), ("query", [f"data={d}", "n=nan"]),
            ("gallery", [f"reward={r}", f"data={d}", "k=-1"]),
            ("evaluate", [f"reward={r}", f"data={d}", "discount=1.5"]),
            ("merge", ["shards=[]"]), ("evaluate", ["reward=[]", f"data={d}"]),
            ("benchmark-report", [f"runs=[{outs}]", "reps=0"])]:
        name = " ".join([command, *(a for a in args if a not in COLLECT
                                    and not a.startswith(("data=", "reward=", "repo_id=")))])
        cases.append(Case("5" if command == "train-online" and "sac." in args[0] else "9",
                          name, [command, *args, f"out={outs / 'nan'}"]
                          if command not in ("embed", "annotate") else [command, *args],
                          "refuse", [d, q]))
    # the same outputs where they belong: accepted, inputs intact
    cases += [
        Case("-", "query out= a new folder", ["query", f"data={d}", "strategy=uniform", "n=5",
                                              f"out={outs / 'q'}"], "accept", [d],
             outs / "q", True),
        Case("-", "export-trl out= a new file", ["export-trl", f"data={d}",
                                                 f"out={outs / 'trl.parquet'}"], "accept",
             [d], outs / "trl.parquet"),
        Case("-", "publish dry run out= a new folder",
             ["publish", f"data={d}", "repo_id=a/b", "dry_run=true", f"out={outs / 'hub'}"],
             "accept", [d], outs / "hub"),
        Case("-", "merge out= a new folder",
             ["merge", f"shards=[{f['s0']},{f['s1']}]", f"out={outs / 'merged'}"], "accept",
             [f["s0"], f["s1"]], outs / "merged", True),
        Case("-", "label out= a new folder", ["label", f"data={d}", "teacher=oracle",
                                              "replace=true", f"out={outs / 'lab'}"],
             "accept", [d], outs / "lab", True),
        Case("-", "score out= in its run (a report's place)",
             ["score", f"reward={r}", f"data={d}", f"out={r / 'scores.parquet'}"], "accept",
             [d], r / "scores.parquet"),
        Case("-", "evaluate default out", ["evaluate", f"reward={r}", f"data={d}",
                                           f"out={outs / 'ev'}"], "accept", [d], outs / "ev"),
        Case("-", "annotate export in place", ["annotate", f"data={q}", f"campaign={c}",
                                               "export=true", "threshold=0"], "accept", [q],
             q, True),
        Case("3", "annotate export after a new query",
             ["annotate", f"data={q}", f"campaign={c}", "export=true", "threshold=0"],
             "refuse", [q]),
        Case("-", "train-sac small", ["train-sac", "reward=true", *SAC,
                                      f"out={outs / 'sac'}"], "accept",
             output=outs / "sac" / "summary.json"),
    ]
    return cases


def classify(case: Case, root: Path) -> dict[str, object]:
    """Run one case and say how it ended."""
    before = snapshot(root)
    err, began = io.StringIO(), time.perf_counter()
    crashed = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(case.argv)
        except BaseException as exc:  # noqa: BLE001 - a crash is what this looks for
            code, crashed = -1, "".join(traceback.format_exception_only(exc)).strip()
    text = err.getvalue()
    lines = text.strip().splitlines()
    problems = [f"dataset {p.name} no longer validates" for p in case.datasets
                if validate_dataset(p)]
    if crashed or "Traceback" in text:
        problems.append(f"traceback: {crashed or lines[-1]}")
    if code == 0:
        if case.output is not None and not case.output.exists():
            problems.append("no output")
        if case.output_dataset and case.output is not None and validate_dataset(case.output):
            problems.append("output does not validate")
        if case.expect == "refuse":
            problems.append("accepted where the issue asks for a refusal")
        if case.no_text and case.no_text in text:
            problems.append(f"printed {case.no_text}")
        outcome = "defective" if problems else "accepted correctly"
    else:
        if len(lines) != 1 or not lines[0].startswith(f"rrm-data {case.argv[0]}: error: "):
            problems.append(f"{len(lines)} lines on stderr")
        after = snapshot(root)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            problems.append(f"left or changed {changed[0][0]} (+{len(changed) - 1})")
        if case.expect == "accept":
            problems.append("refused where it should run")
        outcome = "defective" if problems else "refused cleanly"
    return {"defect": case.defect, "case": case.name, "expect": case.expect,
            "outcome": outcome, "exit": code, "stderr": lines[-1] if lines else "",
            "problems": problems, "seconds": round(time.perf_counter() - began, 2)}


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)
        began = time.perf_counter()
        f = fixtures(root / "in")
        outs = root / "outs"
        outs.mkdir()
        setup = round(time.perf_counter() - began, 1)
        # in place, after the accepted export, a new query makes the campaign stale
        cases = out_cases(f, outs) + other_cases(f, outs)
        results = []
        for case in cases:
            if case.name == "annotate export after a new query":
                cli("query", f"data={f['queried']}", "strategy=uniform", "n=4", "seed=3")
            result = classify(case, root)
            print(f"{result['outcome']:>18}  [{case.defect}] {case.name}"
                  + (f"  {result['problems']}" if result["problems"] else ""), flush=True)
            results.append(result)
    totals = {k: sum(r["outcome"] == k for r in results)
              for k in ("refused cleanly", "accepted correctly", "defective")}
    return {"cases": len(results), **totals, "setup_seconds": setup,
            "seconds": round(sum(float(r["seconds"]) for r in results), 1),  # type: ignore[arg-type]
            "results": results}


if __name__ == "__main__":
    save_result("adversarial", run())
