"""Who answers the queries: one interface, so a human labelling queue can replace a script.

A teacher receives a :class:`~rrm_data.rl.online.queries.Queries` batch (which episodes and
windows to compare, and their true per-step rewards, which only a scripted teacher reads)
and returns one label per pair: P(a ≻ b) in {1, 0, 0.5}, or NaN for a skipped query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rrm_data.labels.teachers import PairRewards, make_teacher, teacher_params
from rrm_data.rl.online.queries import Queries


@runtime_checkable
class Teacher(Protocol):
    """Labels query batches. ``name`` is the ``teacher`` column of the feedback dataset."""

    name: str

    def label(self, queries: Queries) -> np.ndarray: ...

    def params(self) -> dict[str, float]: ...


class ScriptedTeacher:
    """A B-Pref scripted teacher (``rrm_data.labels.teachers``) answering online queries.

    Thresholds (skip, equal) are ε × the mean true segment return of the batch asked, as
    B-Pref sets them each round (without its second multiplication by ε).
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None, seed: int) -> None:
        self.name = name
        self.script = make_teacher(name, params)
        self.rng = np.random.default_rng([seed, 7])

    def label(self, queries: Queries) -> np.ndarray:
        mean = float(np.concatenate([queries.rewards_a.sum(1), queries.rewards_b.sum(1)]).mean())
        return self.script.label(PairRewards(queries.rewards_a, queries.rewards_b, mean),
                                 self.rng)

    def params(self) -> dict[str, float]:
        return teacher_params(self.script)
