"""EPIC, STARC and value-order from their definitions: a tabular MDP computed exactly by hand,
shaping and scale invariance, negation, symmetry and range; and evaluate's report of them
on a real small dataset (true reward ≈ 0, a prior > 0, a windowed reward refused)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from helpers import SMALL

from rrm_data.cli import main
from rrm_data.dataset import format as fmt
from rrm_data.dataset.columns import step_columns
from rrm_data.dataset.reader import open_dataset
from rrm_data.evaluation.coverage import TrueTransitionReward, draw
from rrm_data.evaluation.distances import (
    Coverage,
    canonicalize,
    epic_distance,
    pearson_distance,
    progress_order,
    starc_distance,
    value_order,
)
from rrm_data.evaluation.scoring import load_split, window_rows
from rrm_data.reward.base import RewardFunction, RewardOutput, single
from rrm_data.reward.resolve import REFERENCES
from rrm_data.reward.spec import RewardSpec, Window

S, A, GAMMA = 6, 3, 0.9


def tabular(seed: int) -> dict[str, np.ndarray]:
    """A random reward table R[s, a, s′], coverage D_S, D_A and transition distribution D."""
    rng = np.random.default_rng(seed)
    return {"R": rng.normal(size=(S, A, S)), "ds": rng.dirichlet(np.ones(S)),
            "da": rng.dirichlet(np.ones(A)), "d": rng.dirichlet(np.ones(S * A * S))}


def table_reward(table: np.ndarray):
    return lambda s, a, s_next: table[s, a, s_next]


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (s, a, s′) of the tabular MDP, in R.ravel() order."""
    s, a, s_next = np.meshgrid(np.arange(S), np.arange(A), np.arange(S), indexing="ij")
    return s.ravel(), a.ravel(), s_next.ravel()


def exact_coverage(ds: np.ndarray, da: np.ndarray) -> Coverage:
    """The whole support of D_S and D_A × D_S with their probabilities: exact expectations."""
    a, s_next = np.meshgrid(np.arange(A), np.arange(S), indexing="ij")
    return Coverage(np.arange(S), a.ravel(), s_next.ravel(), ds, np.outer(da, ds).ravel())


def hand_canonical(r: np.ndarray, ds: np.ndarray, da: np.ndarray) -> np.ndarray:
    """EPIC's canonical reward by the paper's formula, with plain numpy sums over the table."""
    mean_from = np.einsum("xas,a,s->x", r, da, ds)  # E[R(x, A, S′)]
    base = ds @ mean_from                           # E[R(S, A, S′)]
    return (r + GAMMA * mean_from[None, None, :] - mean_from[:, None, None]
            - GAMMA * base).ravel()


def hand_epic(r1: np.ndarray, r2: np.ndarray, ds: np.ndarray, da: np.ndarray,
              d: np.ndarray) -> float:
    """EPIC by the paper's formulas with plain numpy sums over the tables."""
    c1, c2 = hand_canonical(r1, ds, da), hand_canonical(r2, ds, da)
    cov = np.cov(c1, c2, aweights=d)
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    return float(np.sqrt(max(1 - rho, 0.0) / 2))  # ρ may exceed 1 by rounding


def hand_starc(r1: np.ndarray, r2: np.ndarray, ds: np.ndarray, da: np.ndarray,
               d: np.ndarray) -> float:
    """STARC as its paper composes it: canonicalise (EPIC's), divide by the L2 norm under D,
    then half the L2 distance under D of the two normalised rewards."""
    def normalised(r: np.ndarray) -> np.ndarray:
        c = hand_canonical(r, ds, da)
        return c / np.sqrt(np.sum(d * c ** 2))
    return 0.5 * float(np.sqrt(np.sum(d * (normalised(r1) - normalised(r2)) ** 2)))


def shaped(r: np.ndarray, seed: int, scale: float = 3.7) -> np.ndarray:
    """scale · R + γΦ(s′) − Φ(s) for a random potential Φ."""
    phi = np.random.default_rng(seed).normal(size=S) * 5
    return scale * r + GAMMA * phi[None, None, :] - phi[:, None, None]


@pytest.mark.parametrize("seed", range(5))
def test_exact_tabular_epic_matches_hand_computation(seed: int) -> None:
    t, other = tabular(seed), tabular(seed + 100)
    got = epic_distance(table_reward(t["R"]), table_reward(other["R"]), *grid(),
                        exact_coverage(t["ds"], t["da"]), GAMMA, t["d"])
    assert got == pytest.approx(hand_epic(t["R"], other["R"], t["ds"], t["da"], t["d"]),
                                abs=1e-12)
    assert 0.0 < got < 1.0


@pytest.mark.parametrize("seed", range(5))
def test_shaping_and_scale_give_zero_negation_one(seed: int) -> None:
    t = tabular(seed)
    r, cov = table_reward(t["R"]), exact_coverage(t["ds"], t["da"])
    assert hand_epic(t["R"], shaped(t["R"], seed), t["ds"], t["da"], t["d"]) < 1e-7
    assert epic_distance(r, table_reward(shaped(t["R"], seed)), *grid(), cov, GAMMA,
                         t["d"]) < 1e-7
    assert epic_distance(r, table_reward(-t["R"]), *grid(), cov, GAMMA,
                         t["d"]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_exact_tabular_starc_matches_hand_computation(seed: int) -> None:
    t, other = tabular(seed), tabular(seed + 100)
    cov = exact_coverage(t["ds"], t["da"])
    got = starc_distance(table_reward(t["R"]), table_reward(other["R"]), *grid(), cov, GAMMA,
                         t["d"])
    assert got == pytest.approx(hand_starc(t["R"], other["R"], t["ds"], t["da"], t["d"]),
                                abs=1e-12)
    assert 0.0 < got < 1.0
    r = table_reward(t["R"])
    assert starc_distance(r, table_reward(shaped(t["R"], seed)), *grid(), cov, GAMMA,
                          t["d"]) < 1e-7
    assert starc_distance(r, table_reward(-t["R"]), *grid(), cov, GAMMA,
                          t["d"]) == pytest.approx(1.0, abs=1e-12)
    assert got == pytest.approx(starc_distance(table_reward(other["R"]), r, *grid(), cov,
                                               GAMMA, t["d"]), abs=1e-12)


def sampled(seed: int, transitions: int = 2000, coverage: int = 256
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Coverage]:
    """Transitions drawn from D and a coverage sample, as evaluate's estimator draws them."""
    t, rng = tabular(0), np.random.default_rng(seed)
    x = rng.choice(S * A * S, transitions, p=t["d"])
    s, a, s_next = (g[x] for g in grid())
    cov = Coverage(rng.choice(S, coverage, p=t["ds"]), rng.choice(A, coverage, p=t["da"]),
                   rng.choice(S, coverage, p=t["ds"]))
    return s, a, s_next, cov


def test_sampled_epic_shaping_zero_and_monte_carlo_error() -> None:
    """With samples, both rewards share them, so shaping and scale still cancel (up to a
    constant, which Pearson ignores): distance < 1e-6. Canonicalised with independent
    coverage samples, the shaped reward is off only by Monte-Carlo error: at evaluate's
    default 256 coverage samples, 0.058 on average here, at most 0.096 over 10 seeds; the
    sampled estimate of a real distance (0.629) has a standard deviation of 0.011 over 20
    seeds (largest error 0.027)."""
    t = tabular(0)
    r, r_shaped = table_reward(t["R"]), table_reward(shaped(t["R"], 1))
    s, a, s_next, cov = sampled(1)
    assert epic_distance(r, r_shaped, s, a, s_next, cov, GAMMA) < 1e-6
    *_, other = sampled(2)
    apart = pearson_distance(canonicalize(r, s, a, s_next, cov, GAMMA),
                             canonicalize(r_shaped, s, a, s_next, other, GAMMA))
    assert apart is not None and 1e-6 < apart < 0.15
    # the sampled estimate of a real distance is within Monte-Carlo error of the exact one
    second = tabular(7)["R"]
    exact = hand_epic(t["R"], second, t["ds"], t["da"], t["d"])
    estimates = [epic_distance(r, table_reward(second), *sampled(k), GAMMA) for k in range(5)]
    assert np.abs(np.array(estimates) - exact).max() < 0.05


def test_sampled_starc_keeps_a_small_constant_of_the_shaping() -> None:
    """With shared samples, canonicalising γΦ(s′) − Φ(s) leaves the constant
    γ(mean Φ(S_i) − mean Φ(S′_j)), which EPIC's Pearson ignores and STARC's cosine does not:
    0.009 on average here, at most 0.016 over 10 seeds. A real distance (0.615 exactly) is
    estimated within 0.018 over 20 seeds (standard deviation 0.010)."""
    t = tabular(0)
    r = table_reward(t["R"])
    shaping = [starc_distance(r, table_reward(shaped(t["R"], 1)), *sampled(k), GAMMA)
               for k in range(5)]
    assert all(d is not None and d < 0.03 for d in shaping)
    second = tabular(7)["R"]
    exact = hand_starc(t["R"], second, t["ds"], t["da"], t["d"])
    estimates = [starc_distance(r, table_reward(second), *sampled(k), GAMMA) for k in range(5)]
    assert np.abs(np.array(estimates) - exact).max() < 0.05


@pytest.mark.parametrize("seed", range(5))
def test_symmetric_and_in_unit_interval(seed: int) -> None:
    s, a, s_next, cov = sampled(seed, 300, 64)
    rng = np.random.default_rng(seed)
    r1, r2 = (table_reward(rng.normal(size=(S, A, S)) * rng.exponential()) for _ in range(2))
    forward = epic_distance(r1, r2, s, a, s_next, cov, GAMMA)
    assert forward == pytest.approx(epic_distance(r2, r1, s, a, s_next, cov, GAMMA),
                                    abs=1e-12)
    assert forward is not None and 0.0 <= forward <= 1.0


def test_constant_reward_has_no_distance() -> None:
    s, a, s_next, cov = sampled(0, 100, 16)
    assert epic_distance(lambda *x: np.zeros(len(x[0])), table_reward(tabular(0)["R"]),
                         s, a, s_next, cov, GAMMA) is None


def test_value_order_from_definition() -> None:
    rising, falling = np.array([0.0, 1.0, 0.5, 2.0]), np.array([-1.0, -0.1, -3.0])
    got = value_order([rising, falling, np.zeros(5)])
    assert got == {"mean": 0.0, "episodes": 2, "of": 3}  # ρ = 1 and −1; constant: undefined
    hump = np.array([1.0, 1.0, -1.0, -2.0])  # cumulative 1, 2, 1, −1: ranks 2.5, 4, 2.5, 1
    ranks, time = np.array([2.5, 4.0, 2.5, 1.0]), np.arange(4.0)
    expected = np.corrcoef(ranks, time)[0, 1]
    assert value_order([hump])["mean"] == pytest.approx(expected)


def test_progress_order_from_definition_and_unchanged_by_shift_and_scale() -> None:
    hump = np.array([1.0, 3.0, 2.0, 2.0, 0.5])  # ranks 2, 5, 3.5, 3.5, 1
    ranks, time = np.array([2.0, 5.0, 3.5, 3.5, 1.0]), np.arange(5.0)
    got = progress_order([hump, np.zeros(4)])
    assert got["mean"] == pytest.approx(np.corrcoef(ranks, time)[0, 1])
    assert (got["episodes"], got["of"]) == (1, 2)  # a constant reward: undefined
    rising = np.array([-3.0, -2.0, -1.5, -0.1])  # a negative reward that rises
    for shifted in (rising + 10.0, 0.3 * rising - 5.0):
        assert progress_order([shifted])["mean"] == progress_order([rising])["mean"] == 1.0
    # the cumulative reward's order is decided by the shift: one sign, ±1
    assert value_order([rising])["mean"] == -1.0 and value_order([rising + 10])["mean"] == 1.0


class WindowedPrior(RewardFunction):
    """The mean of a stored state feature over the last 3 steps: a windowed reward."""

    def __init__(self) -> None:
        self.spec = RewardSpec("window3", (fmt.STATE,), Window(3))

    def score(self, columns: Mapping[str, np.ndarray]) -> RewardOutput:
        return single(np.asarray(columns[fmt.STATE], np.float64)[:, :, 0].mean(axis=1))


@REFERENCES.register("window3")
def _window3(argument: str) -> RewardFunction:
    return WindowedPrior()


def evaluate_views(data: Path, out: Path, *rewards: str, extra: tuple[str, ...] = ()
                   ) -> dict:
    assert main(["evaluate", f"reward=[{','.join(rewards)}]", f"data={data}", f"out={out}",
                 *extra]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "EPIC distance" in (out / "report.md").read_text()
    return report["views"]


def split_transitions(data: Path, split: str) -> int:
    """Stored steps of the split's episodes whose next state is stored (not a last step)."""
    dataset = open_dataset(data)
    episodes = dataset.table("episodes").to_pandas()
    segments = dataset.table("segments").to_pandas()
    prefs = dataset.preferences(split).to_pandas()
    prefs = prefs[prefs.teacher == "oracle"]
    used = set(prefs.segment_a) | set(prefs.segment_b)
    eps = set(segments[segments.segment_index.isin(used)].episode_index)
    return int(sum(episodes[episodes.episode_index.isin(eps)].length - 1))


def test_evaluate_reports_epic_starc_value_and_progress_order(
        small_dataset: Path, trained_reward: Path, tmp_path: Path) -> None:
    views = evaluate_views(small_dataset, tmp_path / "a", "true", "prior:gripper_object",
                           str(trained_reward), "window3", extra=("split=train",))
    n = split_transitions(small_dataset, "train")
    assert n < SMALL["episodes"] * SMALL["episode_steps"]
    true, prior = views["true"]["epic"], views["prior:gripper_object"]["epic"]
    assert true["distance"] < 1e-9 and true["transitions"] == n and true["coverage"] == 256
    assert 0.05 < prior["distance"] <= 1.0
    learned = [v["epic"]["distance"] for k, v in views.items() if k.startswith(str(trained_reward))]
    assert len(learned) == 2 and all(0.0 < d <= 1.0 for d in learned)  # total and prior part
    windowed = views["window3"]["epic"]
    assert windowed["distance"] is None and "windowed" in windowed["note"]
    assert views["true"]["starc"]["distance"] < 1e-9
    assert 0.05 < views["prior:gripper_object"]["starc"]["distance"] <= 1.0
    assert views["window3"]["starc"] == {"distance": None, "note": windowed["note"]}
    assert views["true"]["value_order"]["mean"] == 1.0  # Meta-World's reward is never negative
    order = views["prior:gripper_object"]["value_order"]
    assert order["of"] == views["true"]["value_order"]["of"] > 0
    for view in ("true", "prior:gripper_object"):
        progress = views[view]["progress_order"]
        assert progress["of"] == order["of"] and -1.0 <= progress["mean"] <= 1.0
    # Meta-World's reward rises towards success over a successful episode
    assert views["true"]["progress_order"]["mean"] > 0


def test_true_reward_of_rows_is_the_stored_reward(small_dataset: Path) -> None:
    """The simulated true reward of each stored transition (a_t reaching s_{t+1}) equals the
    collector's next.reward: the row ids of the coverage sample mean what they say."""
    data = load_split(open_dataset(small_dataset), "test", "oracle")
    rows = window_rows(data.episodes["index_from"], data.episodes["length"])
    columns = step_columns(data.dataset, [fmt.STATE, fmt.ACTION, fmt.REWARD], rows=rows)
    s, s_next, _ = draw(data, rows, 10_000, 1, seed=0)
    got = TrueTransitionReward(data, rows, columns)(s, s, s_next)
    assert len(s) == len(rows) - len(data.episodes)
    np.testing.assert_allclose(got, columns[fmt.REWARD][s], rtol=1e-5, atol=1e-5)
