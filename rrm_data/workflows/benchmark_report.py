"""Statistics of benchmark runs as rliable computes them: IQM of final success per condition
and task with 95% stratified-bootstrap intervals, probability of improvement between the suite's
`pairs`, sample-efficiency curves (against env steps, and labels for online conditions),
performance profiles and, where the suite runs one method at several label budgets
(conditions that differ only in `feedback=`, `data.num_labels=` or `num_labels=`), final
success against the budget, as report.json, report.md, curves.png, profiles.png and
label_efficiency.png in `out`.
With `heldout=[DATA,...]` (a dataset per task) each run's reward is also evaluated on its
task's held-out oracle pairs, and each measure's rank correlation with success is reported.

`runs=[DIR,...]` are benchmark outputs (shards, machines, Ray) or earlier reports, whose
runs.jsonl records every run they joined (with its reward measures) so that results outlive
the run folders; the runs are joined, and every number says how many runs it comes from. A
report given in runs= may also be `out` (with overwrite=true): it is read before it is
replaced, so a grid run shard by shard, session by session, grows one report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from rrm_data.benchmark.report import build_report, markdown, plot, read_results
from rrm_data.benchmark.reward_measures import markdown as measures_markdown
from rrm_data.benchmark.reward_measures import open_heldout, reward_measures, row_measures
from rrm_data.benchmark.runner import RECORDS, SUITE_COPY
from rrm_data.benchmark.suite import parse_suite, same_suite
from rrm_data.config import COUNT, SEED32, build_config, doc
from rrm_data.errors import RrmError
from rrm_data.io import Kind, atomic_directory, check_out, write_json
from rrm_data.progress import console


@dataclass
class Config:
    runs: Any = field(default=None, metadata=doc(
        "benchmark output folder(s) or earlier benchmark reports to join", strings=True,
        nonempty=True))
    out: str | None = field(default=None, metadata=doc(
        "report folder (default <first runs folder>/report)"))
    reps: int = field(default=2000, metadata=doc("bootstrap resamples", COUNT))
    last: int = field(default=1, metadata=doc(
        "a run's score: its mean success over its last this many evaluations", COUNT))
    until: int | None = field(default=None, metadata=doc(
        "score each run as it stood at this many env steps, from its evaluations up to there "
        "(a shorter budget read off longer runs); held-out reward measures, which are of the "
        "final reward, are then left out", COUNT))
    seed: int = field(default=0, metadata=doc("seed of the bootstrap", SEED32))
    heldout: Any = field(default=None, metadata=doc(
        "held-out dataset(s), one per task: each run's reward is evaluated on its test "
        "split's oracle pairs (agreement, EPIC, STARC, value-order) beside the run's success",
        strings=True))
    overwrite: bool = field(default=False, metadata=doc(
        "replace an earlier benchmark report at out"))


def make_config(overrides: list[str]) -> DictConfig:
    cfg = build_config(Config(), overrides)
    if cfg.runs is None:
        raise RrmError("runs= is required: the out folder(s) of rrm-data benchmark")
    if isinstance(cfg.runs, str):
        cfg.runs = [cfg.runs]
    if isinstance(cfg.heldout, str):
        cfg.heldout = [cfg.heldout]
    if cfg.until is not None and cfg.heldout:
        raise RrmError("heldout= measures each run's final reward; with until= the runs are "
                       "scored earlier, so give one or the other")
    return cfg


def run(cfg: DictConfig) -> None:
    folders = [Path(str(f)) for f in cfg.runs]
    out = Path(cfg.out or folders[0] / "report")
    grids = [f for f in folders if not (f / RECORDS).is_file()]  # the report at out is read first
    check_out(out, Kind.BENCHMARK_REPORT, cfg.overwrite, inputs={"runs": grids})
    texts = [(f / SUITE_COPY).read_text() for f in folders if (f / SUITE_COPY).is_file()]
    if any(not same_suite(t, texts[0]) for t in texts):
        raise RrmError("the runs folders hold different suites; report them apart")
    text = texts[-1] if texts else None  # the grid's, which has the latest comments
    suite = parse_suite(yaml.safe_load(text), text) if text else None
    heldout = open_heldout([str(p) for p in cfg.heldout or []])
    results = read_results(folders)
    if suite:  # conditions in the order the suite declares them
        order = [c.name for c in suite.conditions]
        results.sort(key=lambda r: order.index(r.condition) if r.condition in order
                     else len(order))
    scored = results if cfg.until is None else [r.until(cfg.until) for r in results]
    report = build_report(scored, suite.pairs if suite else (), cfg.reps, cfg.seed,
                          cfg.last, suite.label_budgets() if suite else None, cfg.until)
    if cfg.until is None and (heldout or any(r.measures for r in results)):
        report["reward_measures"] = reward_measures(
            [{"task": r.task, "condition": r.condition, "seed": r.seed,
              "success": r.score(cfg.last), "reward": r.reward, "measures": r.measures}
             for r in results], heldout, cfg.reps, cfg.seed)
        kept = {(row["task"], row["condition"], row["seed"]): row_measures(row)
                for row in report["reward_measures"]["rows"]}
        results = [replace(r, measures=kept.get(r.key)) for r in results]
    name = suite.name if suite else folders[0].name
    text = markdown(report, name)
    if "reward_measures" in report:
        text += "\n".join(measures_markdown(report["reward_measures"])) + "\n"
    with atomic_directory(out, Kind.BENCHMARK_REPORT, cfg.overwrite) as tmp:
        write_json(tmp / "report.json", {"suite": name, "runs": [str(f) for f in folders],
                                         **report})
        (tmp / "report.md").write_text(text)
        (tmp / RECORDS).write_text("".join(json.dumps(r.record()) + "\n" for r in results))
        if suite:
            (tmp / SUITE_COPY).write_text(suite.text)
        figures = plot(report, tmp, name, suite.step_unit() if suite else "env steps")
    console.print(text)
    console.print(f"wrote {out}: report.json, report.md, {RECORDS}, "
                  + ", ".join(f.name for f in figures))


__all__ = ["Config", "make_config", "run"]
