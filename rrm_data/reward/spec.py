"""The JSON-able spec of a reward model (what the artifact stores), from a ``model`` config.

Shared by ``train-reward`` (Lightning) and the online loop, which build the same models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrm_data.config import FINITE, Range
from rrm_data.reward.networks import prior_name

# Keys of the ``model`` config that describe the reward; all others go to the network.
REWARD_KEYS = ("network", "inputs", "prior", "prior_weight", "negate_prior", "prior_as_input",
               "normalize")
# The known numeric keys of a ``model`` section (train-reward's and train-online's).
# Sizes are capped so that even checking a model's shape (train-reward) cannot overflow.
_WIDTH, _DEPTH = Range(1, 2**20, integer=True), Range(1, 1024, integer=True)
MODEL_RANGES = {"prior_weight": FINITE, "hidden": _WIDTH, "trunk": _WIDTH, "layers": _DEPTH,
                "members": _DEPTH}


def reward_spec(model: Mapping[str, Any], widths: Mapping[str, int],
                stats: Mapping[str, list[float]] | None) -> dict[str, Any]:
    """The JSON-able spec of a reward model (what the artifact stores) from a ``model`` config."""
    return {
        "network": str(model["network"]),
        "params": {k: v for k, v in model.items() if k not in REWARD_KEYS},
        "inputs": [{"column": name, "width": int(widths[name])} for name in model["inputs"]],
        "prior": {"name": prior_name(str(model["prior"])),
                  "weight": float(model["prior_weight"]),
                  "negate": bool(model["negate_prior"]),
                  "as_input": bool(model["prior_as_input"])},
        "normalization": dict(stats) if stats is not None else None,
    }
