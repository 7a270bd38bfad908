"""The grid's statistics with rliable (Agarwal et al., NeurIPS 2021): IQM of final success
with 95% stratified-bootstrap intervals, probability of improvement, sample-efficiency
curves, performance profiles and, for methods run at several label budgets, final success
against the budget. Every number carries the count of runs it comes from.

The aggregates are rliable's (``rliable.metrics``: ``aggregate_iqm``,
``probability_of_improvement``); the interval is rliable's stratified percentile bootstrap
(runs resampled with replacement within each task), written out in ``bootstrap`` because
``rliable.library`` builds it on ``arch``, which cannot be imported beside pandas 3
(arch < 8) and no longer takes rliable's ``random_state`` (arch 8).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from rrm_data.benchmark.reuse import report_records, source
from rrm_data.benchmark.runner import DONE, RECORDS, one_try
from rrm_data.errors import RrmError

TAUS = np.linspace(0.0, 1.0, 21)
# eval.csv columns reported beside success, IQM of the final evaluation like it
OTHER_METRICS = {"true_return": "true return", "mean_squared_jerk": "hand mean squared jerk"}


@dataclass(frozen=True)
class Result:
    """One finished run: its evaluations (env steps, success rate, labels used if any) and
    the final evaluation's other measures (``OTHER_METRICS`` that its eval.csv has)."""

    task: str
    condition: str
    seed: int
    axis: str
    timesteps: np.ndarray
    success: np.ndarray
    labels: np.ndarray | None
    other: dict[str, float]
    reward: str | None = None  # what the policy was trained on (trained_on)
    # the reward's held-out measures (reward_measures), kept in a report's records
    measures: dict[str, Any] | None = None
    # CPU seconds of its commands (run.json), when it ran in one try: a resumed run's
    # run.json times its last try only. Kept in the records, so a grid's cost outlives it.
    cpu_seconds: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.task, self.condition, self.seed

    def score(self, last: int = 1) -> float:
        """The run's score: its mean success over its last ``last`` evaluations."""
        return float(np.mean(self.success[-last:]))

    def until(self, steps: int) -> Result:
        """This run as it stood at ``steps`` env steps: its evaluations up to there (a shorter
        budget read off a longer run); the final evaluation's ``other`` measures only if that
        evaluation is kept."""
        kept = self.timesteps <= steps
        if not kept.any():
            raise RrmError(f"run {'/'.join(map(str, self.key))} has no evaluation at or before "
                           f"{steps} env steps (its first is at {self.timesteps[0]})")
        return replace(self, timesteps=self.timesteps[kept], success=self.success[kept],
                       labels=None if self.labels is None else self.labels[kept],
                       other=self.other if kept.all() else {})

    def record(self) -> dict[str, Any]:
        """This run as one line of a report's ``RECORDS``."""
        return {"task": self.task, "condition": self.condition, "seed": self.seed,
                "axis": self.axis, "timesteps": self.timesteps.tolist(),
                "success": self.success.tolist(),
                "labels": None if self.labels is None else self.labels.tolist(),
                "other": self.other, "reward": self.reward, "measures": self.measures,
                "cpu_seconds": self.cpu_seconds}

    @classmethod
    def from_record(cls, line: dict[str, Any]) -> Result:
        labels = line["labels"]
        return cls(line["task"], line["condition"], int(line["seed"]), line["axis"],
                   np.array(line["timesteps"], dtype=int), np.array(line["success"], float),
                   None if labels is None else np.array(labels, float), line["other"],
                   line["reward"], line.get("measures"), line.get("cpu_seconds"))


def read_results(folders: Sequence[Path]) -> list[Result]:
    """Every finished run under these benchmark outputs (shards, Ray tasks) — its run.json
    and the eval.csv of its last step — or in these earlier reports' records. A run found
    twice (a grid and a report of it) is joined once; with different evaluations, refused."""
    results: dict[tuple[str, str, int], Result] = {}
    for folder in folders:
        if not folder.is_dir():
            raise RrmError(f"runs folder {folder} not found")
        records = folder / RECORDS
        found = ([Result.from_record(line) for line in report_records(folder)]
                 if records.is_file() else
                 [_read_run(marker) for marker in sorted(folder.glob(f"*/*/seed*/{DONE}"))])
        for result in found:
            seen = results.get(result.key)
            if seen is not None and _evaluations(seen) != _evaluations(result):
                raise RrmError(f"run {'/'.join(map(str, result.key))} is found twice with "
                               f"different evaluations (again in {folder})")
            if seen is not None:  # a report's record keeps its measures, a grid its time
                kept, other = (seen, result) if seen.measures else (result, seen)
                result = replace(kept, cpu_seconds=kept.cpu_seconds or other.cpu_seconds)
            results[result.key] = result
    return list(results.values())


def _evaluations(result: Result) -> dict[str, Any]:
    return {k: v for k, v in result.record().items()
            if k not in ("measures", "reward", "cpu_seconds")}


def _read_run(marker: Path) -> Result:
    """A finished run under this grid's condition name; its outputs are those of the run it
    reuses, if it reuses one (``benchmark reuse=``), or an earlier report's record of it."""
    record = json.loads(marker.read_text())
    own = {k: record[k] for k in ("task", "condition", "seed", "axis")}
    found = source(marker)
    if found.record is not None:
        return Result.from_record({**found.record, **own})
    made = found.folder
    if made != marker.parent:
        record = {**json.loads((made / DONE).read_text()), **own}
    with (made / record["final"] / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise RrmError(f"{marker.parent}: eval.csv has no evaluation")
    labels = (np.array([float(r["labels"]) for r in rows]) if "labels" in rows[0] else None)
    other = {m: float(rows[-1][m]) for m in OTHER_METRICS if rows[-1].get(m)}
    return Result(record["task"], record["condition"], int(record["seed"]),
                  str(record["axis"]), np.array([int(r["timesteps"]) for r in rows]),
                  np.array([float(r["success_rate"]) for r in rows]), labels, other,
                  trained_on(record["commands"], made, record.get("shared")),
                  cpu_seconds=(record.get("cpu_seconds") if one_try(made, record["commands"])
                               else None))


def trained_on(commands: Sequence[Sequence[str]], folder: Path,
               shared: str | None = None) -> str | None:
    """The reward reference of a run's last command (``run.json``'s ``commands``, ``{run}``
    standing for its folder and ``{shared}`` for the shared steps', ``shared`` under the
    grid): train-online's final reward, or the ``reward=`` of train-sac and train-offline
    (default ``true``); None for CPL, which trains without a reward."""
    grid = folder.parents[2]  # <grid>/<task>/<condition>/seed<seed>
    argv = [a.replace("{run}", str(folder)).replace("{shared}", str(grid / (shared or "")))
            for a in commands[-1]]
    options = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    if argv[0] == "train-online":
        return str(Path(options["out"]) / "reward")
    if argv[0] == "train-offline" and options.get("algo") == "cpl":
        return None
    return options.get("reward", "true")


def score_table(results: Sequence[Result], condition: str, tasks: Sequence[str],
                value: Callable[[Result], Any]) -> np.ndarray:
    """(runs, tasks, …) of ``value`` for the seeds every task has (stratified bootstrap
    needs one table)."""
    by_task = {t: {r.seed: r for r in results if r.condition == condition and r.task == t}
               for t in tasks}
    seeds = sorted(set.intersection(*(set(s) for s in by_task.values()))) if by_task else []
    return np.array([[value(by_task[t][s]) for t in tasks] for s in seeds], dtype=float)


def bootstrap(tables: Sequence[np.ndarray], func: Callable[..., np.ndarray], reps: int,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``func(*tables)`` and its 95% stratified percentile-bootstrap interval (2, …): each
    table (runs, tasks, …) has its runs drawn with replacement within every task apart."""
    rng = np.random.default_rng(seed)
    point = np.asarray(func(*tables))
    draws = np.empty((reps, *point.shape))
    for i in range(reps):
        resampled = []
        for table in tables:
            rows = rng.integers(0, len(table), size=table.shape[:2])  # (runs, tasks)
            resampled.append(np.take_along_axis(
                table, rows.reshape(rows.shape + (1,) * (table.ndim - 2)), axis=0))
        draws[i] = func(*resampled)
    return point, np.percentile(draws, [2.5, 97.5], axis=0)


def interval(table: np.ndarray, func: Callable[..., np.ndarray], reps: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    return bootstrap([table], func, reps, seed)


def build_report(results: Sequence[Result], pairs: Sequence[tuple[str, str]], reps: int,
                 seed: int = 0, last: int = 1,
                 budgets: Mapping[str, tuple[str, int]] | None = None,
                 until: int | None = None) -> dict[str, Any]:
    """Each run scored by its mean success over its ``last`` evaluations; ``budgets`` maps
    conditions to their (method, labels) (``Suite.label_budgets``); ``until``: the env steps
    the results were cut at (``Result.until``), said in the report."""
    from rliable import metrics

    if not results:
        raise RrmError("no finished runs to report (no run.json under runs=)")
    tasks = sorted({r.task for r in results})
    conditions = list(dict.fromkeys(r.condition for r in results))

    def iqm(table: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(table)])

    report: dict[str, Any] = {"tasks": tasks, "conditions": {}, "reps": reps, "last": last,
                              "until": until,
                              "interval": "95% stratified bootstrap (percentile)"}
    finals: dict[str, np.ndarray] = {}
    for cond in conditions:
        entry: dict[str, Any] = {"per_task": {}}
        for task in tasks:
            table = score_table(results, cond, [task], lambda r: r.score(last))
            if len(table):
                point, ci = interval(table, iqm, reps, seed)
                entry["per_task"][task] = {"iqm": float(point[0]), "ci": ci[:, 0].tolist(),
                                           "runs": len(table)}
        table = score_table(results, cond, tasks, lambda r: r.score(last))
        if len(table):
            finals[cond] = table
            point, ci = interval(table, iqm, reps, seed)
            entry["all_tasks"] = {"iqm": float(point[0]), "ci": ci[:, 0].tolist(),
                                  "runs": int(table.size), "seeds": len(table)}
        entry["curve"] = _curve(results, cond, tasks, reps, seed)
        entry["other"] = _other_metrics(results, cond, tasks, reps, seed)
        report["conditions"][cond] = entry
    report["probability_of_improvement"] = []
    for x, y in pairs:
        if x not in finals or y not in finals:
            continue
        point, ci = bootstrap(
            [finals[x], finals[y]],
            lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps, seed)
        report["probability_of_improvement"].append(
            {"x": x, "y": y, "p": float(point[0]), "ci": ci[:, 0].tolist(),
             "runs": [int(finals[x].size), int(finals[y].size)]})
    report["performance_profiles"] = {"taus": TAUS.tolist()}
    for cond, table in finals.items():
        point, ci = interval(table, run_score_profile, reps, seed)
        report["performance_profiles"][cond] = {"fraction": point.tolist(), "ci": ci.tolist(),
                                                "runs": int(table.size)}
    report["label_efficiency"] = label_efficiency(report["conditions"], budgets or {})
    return report


def label_efficiency(conditions: Mapping[str, Any],
                     budgets: Mapping[str, tuple[str, int]]) -> dict[str, Any]:
    """Per method reported at two or more distinct budgets: its conditions' final IQM
    [95% CI] over all tasks against their labels, fewest first (the RRM paper's headline:
    success against labels for RRM and PEBBLE)."""
    points: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for cond, (method, labels) in budgets.items():
        final = conditions.get(cond, {}).get("all_tasks")
        if final:
            points.setdefault(method, []).append((labels, cond, final))
    lines = {}
    for method, found in points.items():
        found.sort(key=lambda point: point[0])
        if len({labels for labels, _, _ in found}) < max(len(found), 2):
            continue  # one budget, or two conditions at one budget: not a budget line
        lines[method] = {"labels": [labels for labels, _, _ in found],
                         "conditions": [cond for _, cond, _ in found],
                         "iqm": [final["iqm"] for _, _, final in found],
                         "ci": [[final["ci"][0] for _, _, final in found],
                                [final["ci"][1] for _, _, final in found]],
                         "runs": [final["runs"] for _, _, final in found]}
    return lines


def _other_metrics(results: Sequence[Result], cond: str, tasks: Sequence[str], reps: int,
                   seed: int) -> dict[str, Any]:
    """Per task, IQM [95% CI] of each ``OTHER_METRICS`` measure of the final evaluation, for
    the measures every run of the condition on that task has."""
    from rliable import metrics

    other: dict[str, Any] = {}
    for metric in OTHER_METRICS:
        per_task = {}
        for task in tasks:
            runs = [r for r in results if r.condition == cond and r.task == task]
            if not runs or not all(np.isfinite(r.other.get(metric, np.nan)) for r in runs):
                continue
            table = score_table(results, cond, [task], partial(_other, metric=metric))
            point, ci = interval(table, lambda t: np.array([metrics.aggregate_iqm(t)]), reps,
                                 seed)
            per_task[task] = {"iqm": float(point[0]), "ci": ci[:, 0].tolist(),
                              "runs": len(table)}
        if per_task:
            other[metric] = per_task
    return other


def _other(result: Result, metric: str) -> float:
    return result.other[metric]


def run_score_profile(table: np.ndarray) -> np.ndarray:
    """The performance profile of run scores: the fraction of runs above each τ, every task
    weighted alike (rliable's ``run_score_distribution``)."""
    return np.mean([np.mean(table[:, t, None] > TAUS, axis=0) for t in range(table.shape[1])],
                   axis=0)


def _curve(results: Sequence[Result], cond: str, tasks: Sequence[str], reps: int,
           seed: int) -> dict[str, Any]:
    """IQM success with its band at each evaluation step every run of the condition has;
    for online conditions also the mean labels used by then."""
    from rliable import metrics

    runs = [r for r in results if r.condition == cond]
    steps = sorted(set.intersection(*(set(r.timesteps.tolist()) for r in runs)))
    if not steps:
        return {}

    def at(r: Result, column: np.ndarray) -> list[float]:
        index = {int(s): i for i, s in enumerate(r.timesteps)}
        return [float(column[index[s]]) for s in steps]

    table = score_table(results, cond, tasks, lambda r: at(r, r.success))  # (runs, tasks, T)
    if not len(table):
        return {}

    def iqm_per_step(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores[..., t]) for t in range(len(steps))])

    points, cis = interval(table, iqm_per_step, reps, seed)
    curve: dict[str, Any] = {"timesteps": steps, "iqm": points.tolist(), "ci": cis.tolist(),
                             "runs": int(table.shape[0] * table.shape[1])}
    if all(r.labels is not None for r in runs):
        curve["labels"] = np.mean([at(r, r.labels) for r in runs if r.labels is not None],
                                  axis=0).tolist()
    return curve


def score_rule(last: int, until: int | None = None) -> str:
    """What a run's score is, in words."""
    rule = ("final evaluation success" if last == 1 else
            f"each run's mean success over its last {last} evaluations")
    return rule if until is None else f"{rule} at or before {until:,} env steps"


def markdown(report: dict[str, Any], name: str) -> str:
    """The tables of the report; n is the number of runs behind each number."""
    tasks = report["tasks"]
    lines = [f"# Benchmark {name}", "",
             f"IQM of {score_rule(report.get('last', 1), report.get('until'))}, "
             f"{report['interval']} intervals "
             f"({report['reps']} resamples); n = runs.", "",
             "| condition | all tasks | " + " | ".join(tasks) + " |",
             "|---|---|" + "---|" * len(tasks)]
    for cond, entry in report["conditions"].items():
        cells = [_cell(entry.get("all_tasks"))]
        cells += [_cell(entry["per_task"].get(t)) for t in tasks]
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    for metric, title in OTHER_METRICS.items():
        rows = {c: e["other"][metric] for c, e in report["conditions"].items()
                if metric in e.get("other", {})}
        if rows:
            lines += ["", f"IQM of the final evaluation's {title} per task:", "",
                      "| condition | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
            lines += [f"| {c} | " + " | ".join(_cell(v.get(t), ".3g") for t in tasks) + " |"
                      for c, v in rows.items()]
    if report["probability_of_improvement"]:
        lines += ["", "Probability of improvement P(X > Y) over all tasks:", "",
                  "| X | Y | P(X > Y) | n (X, Y) |", "|---|---|---|---|"]
        for p in report["probability_of_improvement"]:
            lines.append(f"| {p['x']} | {p['y']} | {p['p']:.2f} [{p['ci'][0]:.2f}, "
                         f"{p['ci'][1]:.2f}] | {p['runs'][0]}, {p['runs'][1]} |")
    if report.get("label_efficiency"):
        lines += ["", "Final success against the label budget (IQM over all tasks):", "",
                  "| method | labels | condition | IQM [95% CI] (n) |", "|---|---|---|---|"]
        for method, line in report["label_efficiency"].items():
            for i, labels in enumerate(line["labels"]):
                cell = {"iqm": line["iqm"][i], "runs": line["runs"][i],
                        "ci": [line["ci"][0][i], line["ci"][1][i]]}
                lines.append(f"| {method} | {labels} | {line['conditions'][i]} | "
                             f"{_cell(cell)} |")
    return "\n".join(lines) + "\n"


def _cell(entry: dict[str, Any] | None, form: str = ".2f") -> str:
    if not entry:
        return "–"
    low, high = entry["ci"]
    return f"{entry['iqm']:{form}} [{low:{form}}, {high:{form}}] (n={entry['runs']})"


def plot(report: dict[str, Any], folder: Path, name: str, step_unit: str = "env steps"
         ) -> list[Path]:
    """curves.png (IQM against ``step_unit``, and against labels for online conditions),
    profiles.png (performance profiles) and, with methods at several label budgets,
    label_efficiency.png (final IQM against labels); the legends give the runs (n)."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = {c: e["curve"] for c, e in report["conditions"].items() if e.get("curve")}
    labelled = {c: v for c, v in conds.items() if "labels" in v}
    fig, axes = plt.subplots(1, 2 if labelled else 1, figsize=(11 if labelled else 6, 4),
                             squeeze=False)
    for c, v in conds.items():
        ci = np.array(v["ci"])
        axes[0, 0].plot(v["timesteps"], v["iqm"], label=f"{c} (n={v['runs']})")
        axes[0, 0].fill_between(v["timesteps"], ci[0], ci[1], alpha=0.2)
    for c, v in labelled.items():
        ci = np.array(v["ci"])
        axes[0, 1].plot(v["labels"], v["iqm"], label=f"{c} (n={v['runs']})")
        axes[0, 1].fill_between(v["labels"], ci[0], ci[1], alpha=0.2)
        axes[0, 1].set_xlabel("labels used")
    axes[0, 0].set_xlabel(step_unit)
    for ax in axes.flat:
        _success_axis(ax, "IQM success (95% CI)")
    fig.suptitle(f"{name}: sample efficiency", fontsize=10)
    fig.tight_layout()
    paths = [folder / "curves.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    profiles = report["performance_profiles"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, v in profiles.items():
        if c == "taus":
            continue
        ci = np.array(v["ci"])
        ax.plot(profiles["taus"], v["fraction"], label=f"{c} (n={v['runs']})")
        ax.fill_between(profiles["taus"], ci[0], ci[1], alpha=0.2)
    ax.set_xlabel("final success τ")
    ax.set_ylabel("fraction of runs with success > τ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    paths.append(folder / "profiles.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    if report.get("label_efficiency"):
        paths.append(_plot_label_efficiency(report["label_efficiency"], folder, name))
    return paths


def _success_axis(ax: Any, label: str) -> None:
    """A success-rate y axis (0 to 1, a margin kept), grid and legend."""
    ax.set_ylabel(label)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def _plot_label_efficiency(lines: Mapping[str, Any], folder: Path, name: str) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, line in lines.items():
        runs = sorted(set(line["runs"]))
        ax.plot(line["labels"], line["iqm"], marker="o",
                label=f"{method} (n={'/'.join(map(str, runs))} per point)")
        ax.fill_between(line["labels"], line["ci"][0], line["ci"][1], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("label budget")
    _success_axis(ax, "final IQM success (95% CI)")
    ax.set_title(f"{name}: final success against labels", fontsize=10)
    fig.tight_layout()
    path = folder / "label_efficiency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
