"""PNG figures of an evaluation (matplotlib's object API with the Agg canvas: no GUI, no
global pyplot state): reliability diagram, predicted vs true returns, reward over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rrm_data.reward.base import RewardOutput

PART_STYLE = {"total": ("C0", "-"), "prior": ("C1", "--"), "residual": ("C2", ":")}
DPI = 100


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png", metadata={"Software": None})


def reliability_diagram(report: dict[str, Any], path: Path) -> None:
    """Observed preference rate against predicted P(A ≻ B), per view, with bin counts."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="perfect calibration")
    for i, (view, numbers) in enumerate(report["views"].items()):
        bins = numbers["reliability"]
        points = [(p, y, c) for p, y, c in zip(bins["mean_p"], bins["mean_label"],
                                              bins["count"], strict=True) if c]
        if not points:
            continue
        p, y, c = map(np.asarray, zip(*points, strict=True))
        ax.plot(p, y, marker="o", color=f"C{i}",
                label=f"{view} (ECE {numbers['ece']:.3f})")
        for px, py, n in zip(p, y, c, strict=True):
            ax.annotate(str(n), (px, py), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color=f"C{i}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(A ≻ B)",
           ylabel="label mean (observed preference for A)", title="Reliability diagram")
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)


def returns_scatter(views: dict[str, tuple[np.ndarray, np.ndarray]], segment_true: np.ndarray,
                    episode_true: np.ndarray, success: np.ndarray, path: Path) -> None:
    """Predicted vs true return per segment (top row) and per episode (bottom row; stars are
    successful episodes), one column per view: ``views[name] = (segment_pred, episode_pred)``.
    """
    fig = _figure(4.2 * len(views), 7.5)
    axes = fig.subplots(2, len(views), squeeze=False)
    success = np.asarray(success, bool)
    for col, (view, (segment_pred, episode_pred)) in enumerate(views.items()):
        top, bottom = axes[0, col], axes[1, col]
        top.scatter(segment_true, segment_pred, s=12, alpha=0.7, color=f"C{col}")
        top.set(title=view, xlabel="true segment return", ylabel="predicted segment return")
        bottom.scatter(episode_true[~success], episode_pred[~success], s=16, alpha=0.7,
                       color=f"C{col}", label="failure")
        bottom.scatter(episode_true[success], episode_pred[success], s=60, marker="*",
                       color="k", label="success")
        bottom.set(xlabel="true episode return", ylabel="predicted episode return")
        bottom.legend(fontsize=7)
    _save(fig, path)


def draw_rewards(ax: Axes, output: RewardOutput, true: np.ndarray, title: str) -> None:
    """Predicted total (and its prior and residual parts, for a residual model) on the left
    axis, true reward on the right axis, over time."""
    t = np.arange(len(true))
    parts = output.parts()
    if not (np.any(output.prior) and np.any(output.residual)):
        parts = {"total": output.total}  # no prior/residual split to show
    for part, values in parts.items():
        color, style = PART_STYLE[part]
        ax.plot(t, values, color=color, ls=style, lw=1.4, label=f"predicted {part}")
    ax.set(xlabel="step", ylabel="predicted reward", title=title)
    twin = ax.twinx()
    twin.plot(t, true, color="k", lw=1.0, alpha=0.6, label="true reward")
    twin.set_ylabel("true reward")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=7, loc="best")


def rewards_over_time(grid: list[list[tuple[str, RewardOutput, np.ndarray]]],
                      path: Path) -> None:
    """A grid of :func:`draw_rewards` panels: one row per episode, one column per reward."""
    rows, cols = len(grid), len(grid[0])
    fig = _figure(5.0 * cols, 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, row in enumerate(grid):
        for c, (title, output, true) in enumerate(row):
            draw_rewards(axes[r, c], output, true, title)
    _save(fig, path)


def episode_rewards(output: RewardOutput, true: np.ndarray, title: str, path: Path) -> None:
    """One small reward-over-time figure (for gallery cards)."""
    fig = _figure(4.8, 2.8)
    draw_rewards(fig.add_subplot(), output, true, title)
    _save(fig, path)
