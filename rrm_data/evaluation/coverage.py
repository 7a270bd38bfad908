"""EPIC, STARC, value-order and progress-order on a split: D drawn from its transitions,
rewards as functions of rows.

States and actions are ids of the split's step rows (the steps of the episodes its pairs
come from). What is drawn, with one seeded generator:

- transitions (s, a, s′): stored steps t whose s′ is the next row t + 1 of the same episode
  (an episode's last step, whose s′ no row stores, is left out); all of them when there
  are at most ``transitions``, else that many without replacement;
- the coverage distribution: S_i, A_j and S′_j, ``coverage`` each, drawn independently and
  uniformly with replacement from the split's rows (A_j is a row's stored action), as EPIC's
  sample-based estimator draws them; so R is also scored on (s, a, s′) no episode holds.

How each reward scores any (s, a, s′) of rows:

- the true reward is Meta-World's reward of action a reaching s′ (s′'s stored physics
  state, in its episode's task variation; ``sim.true_reward``): no v3 reward reads s, so
  each distinct (a, s′) is simulated once;
- a Markovian reward of step columns (state, embeddings, action) is r̂ of a step whose
  columns are row s's and whose action is row a's; it does not read s′;
- a windowed reward (k > 1) reads steps before s and is no function of one transition,
  and a reward of other columns (camera frames, next.*) cannot be scored off the dataset:
  both get no EPIC distance, with a note saying why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import is_embedding_column, step_columns
from rrm_data.evaluation.distances import (
    Coverage,
    canonicalize,
    cosine_distance,
    pearson_distance,
    progress_order,
    value_order,
)
from rrm_data.evaluation.scoring import Scored, SplitData, window_rows
from rrm_data.reward.base import PARTS, RewardFunction, TrueReward
from rrm_data.reward.window import dataset_windows
from rrm_data.sim.envs import PhysicsState
from rrm_data.sim.transitions import stored_physics
from rrm_data.sim.true_reward import task_scene

EPIC_RULE = ("EPIC distance to the true reward (Gleave et al. 2021): each reward canonicalised "
             "as C(R)(s,a,s') = R(s,a,s') + E[γR(s',A,S') − R(s,A,S') − γR(S,A,S')], then "
             "√((1 − ρ)/2) of the Pearson ρ of the canonical rewards; 0 = the same reward up to "
             "potential shaping and positive scale, 1 = its negation. Transitions are the split's "
             "stored steps (an episode's last step left out); S, A, S' are drawn independently "
             "and uniformly from the split's steps (states, actions), so rewards are also scored "
             "on (s, a, s') no episode holds; the true reward of those is simulated from s''s "
             "physics state")
STARC_RULE = ("STARC distance to the true reward (Skalse et al. 2024) on EPIC's canonical "
              "rewards and samples: each divided by its L2 norm over the transitions, then half "
              "the L2 distance of the two, √((1 − cos)/2); 0 = the same up to shaping and "
              "positive scale, 1 = its negation. Unlike EPIC it keeps the canonical rewards' "
              "mean, so a shaping term leaves the constant γ(mean Φ(S) − mean Φ(S')) of the "
              "coverage sample")
VALUE_ORDER_RULE = ("value-order ρ: Spearman correlation of a successful episode's cumulative "
                    "predicted reward with the step index, averaged over those episodes (as GVL "
                    "and Robometer); a reward that is never negative scores 1")
PROGRESS_ORDER_RULE = ("progress-order ρ: Spearman correlation of a successful episode's "
                       "per-step predicted reward with the step index, averaged over those "
                       "episodes (the reward read as progress, as GVL reads its per-frame "
                       "values); unchanged by adding a constant to the reward, which decides "
                       "value-order")
READABLE = (fmt.STATE, fmt.ACTION)


class TrueTransitionReward:
    """Meta-World's reward of (s, a, s′) over row ids: action a reaching row s′'s stored
    physics state in its episode's task variation (s is not read)."""

    def __init__(self, data: SplitData, rows: np.ndarray, columns: dict[str, np.ndarray]
                 ) -> None:
        self.data, self.rows, self.columns = data, rows, columns
        episodes = data.episodes
        starts = episodes["index_from"].to_numpy(np.int64)
        order = np.argsort(starts)
        # each row's episode, as a position in data.episodes
        self.episode = order[np.searchsorted(starts[order], rows, side="right") - 1]
        self.tasks = [str(t) for t in episodes["task"]]
        self.rand_vecs = [np.asarray(v, np.float64) for v in episodes["rand_vec"]]
        self.states: dict[int, PhysicsState] = {}

    def _physics(self, ids: np.ndarray) -> None:
        missing = np.array(sorted({int(i) for i in ids} - self.states.keys()), np.int64)
        if len(missing):
            self.states.update(zip(missing.tolist(),
                                   stored_physics(self.data.dataset, self.rows[missing]),
                                   strict=True))

    def __call__(self, s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        pairs, inverse = np.unique(np.stack([a, s_next], axis=1), axis=0, return_inverse=True)
        self._physics(pairs[:, 1])
        values = np.empty(len(pairs))
        obs, actions = self.columns[fmt.STATE], self.columns[fmt.ACTION]
        for i in np.lexsort((pairs[:, 1], self.episode[pairs[:, 1]])):
            act, nxt = pairs[i]
            scene = task_scene(self.tasks[self.episode[nxt]])
            scene.restore(self.rand_vecs[self.episode[nxt]])
            values[i] = scene.reward(obs[nxt], actions[act], self.states[int(nxt)])[0]
        return values[inverse.ravel()]


class StepReward:
    """A Markovian reward of step columns over row ids: r̂ of a step with row s's columns and
    row a's action, as (parts, N) in ``PARTS`` order; each distinct (s, a) is scored once.
    ``columns`` are the reward's windowed columns (rows, 1, ...) of every row id."""

    def __init__(self, reward: RewardFunction, columns: dict[str, np.ndarray]) -> None:
        self.reward, self.columns = reward, columns

    def __call__(self, s: np.ndarray, a: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        n = len(next(iter(self.columns.values())))
        if fmt.ACTION not in self.columns:  # a reward of the state alone: one score per s
            a = np.zeros_like(a)
        keys, inverse = np.unique(np.asarray(s, np.int64) * n + a, return_inverse=True)
        s_u, a_u = keys // n, keys % n
        out = self.reward.score({c: v[a_u] if c == fmt.ACTION else v[s_u]
                                 for c, v in self.columns.items()})
        return np.stack([np.asarray(p, np.float64) for p in out[:3]])[:, inverse.ravel()]


def why_not(reward: RewardFunction, has_physics: bool) -> str | None:
    """Why a reward gets no EPIC distance here, or None."""
    if not has_physics:
        return ("the dataset stores no physics state (sim.*), so the true reward of (s, a, s') "
                "off the dataset cannot be computed")
    if isinstance(reward, TrueReward):
        return None
    if reward.window.length > 1:
        return (f"a windowed reward (k = {reward.window.length}) reads steps before s: it is "
                "no function of one transition")
    other = [c for c in reward.columns if c not in READABLE and not is_embedding_column(c)
             and not fmt.is_image_column(c)]  # features and frames: of the step's own state
    if other:
        return f"reads {', '.join(other)}, which cannot be scored on (s, a) no step holds"
    return None


def draw(data: SplitData, rows: np.ndarray, transitions: int, coverage: int, seed: int
         ) -> tuple[np.ndarray, np.ndarray, Coverage]:
    """Transition ids s (s′ = s + 1, a = s) and the coverage sample (see the module doc)."""
    rng = np.random.default_rng(seed)
    last = np.searchsorted(rows, (data.episodes["index_from"] + data.episodes["length"] - 1)
                           .to_numpy(np.int64))
    s = np.setdiff1d(np.arange(len(rows)), last)
    if len(s) > transitions:
        s = np.sort(rng.choice(s, transitions, replace=False))
    states, actions, nexts = (rng.integers(0, len(rows), coverage) for _ in range(3))
    return s, s + 1, Coverage(states, actions, nexts)


def split_distances(data: SplitData, scored: list[Scored], rewards: list[RewardFunction],
                    transitions: int, coverage: int, gamma: float, seed: int
                    ) -> dict[str, dict[str, Any]]:
    """``{view: {"epic": ..., "starc": ..., "value_order": ..., "progress_order": ...}}`` for
    every view of every scored reward (``rewards``: the resolved ``scored[i].ref``, each
    loaded once)."""
    rows = window_rows(data.episodes["index_from"], data.episodes["length"])
    has_physics = all(c in data.dataset.info.features["steps"] for c in fmt.SIM_COLUMNS)
    notes = [why_not(r, has_physics) for r in rewards]
    distances: dict[str, dict[str, float | None]] = {}  # part → {"epic": …, "starc": …}
    if any(note is None for note in notes):
        columns = step_columns(data.dataset, list(READABLE), rows=rows)
        s, s_next, cov = draw(data, rows, transitions, coverage, seed)
        true = TrueTransitionReward(data, rows, columns)
        reference = canonicalize(true, s, s, s_next, cov, gamma)
    successes = data.episodes[data.episodes["success"].to_numpy(bool)]
    out: dict[str, dict[str, Any]] = {}
    for scored_reward, reward, note in zip(scored, rewards, notes, strict=True):
        views = scored_reward.views()
        if note is None:
            if isinstance(reward, TrueReward):
                canonical = np.stack([reference] * len(PARTS))
            else:
                step_reward = StepReward(reward, dataset_windows(data.dataset, reward.columns,
                                                                 reward.window, rows))
                canonical = canonicalize(step_reward, s, s, s_next, cov, gamma)
            distances = {part: {"epic": pearson_distance(canonical[PARTS.index(part)],
                                                         reference),
                                "starc": cosine_distance(canonical[PARTS.index(part)],
                                                         reference)}
                         for part in views.values()}
        for view, part in views.items():
            per_step = [getattr(scored_reward.steps.window(int(f), int(n)), part)
                        for f, n in zip(successes["index_from"], successes["length"],
                                        strict=True)]
            out[view] = {
                "epic": {"distance": distances[part]["epic"] if note is None else None,
                         "transitions": int(len(s)) if note is None else 0,
                         "coverage": coverage if note is None else 0,
                         "discount": gamma, "seed": seed, "note": note},
                "starc": {"distance": distances[part]["starc"] if note is None else None,
                          "note": note},
                "value_order": value_order(per_step),
                "progress_order": progress_order(per_step),
            }
    return out
