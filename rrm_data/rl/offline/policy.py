"""The policy ``train-offline`` saves (``policy.pt``: the actor's weights and widths) and
loads for evaluation and ``collect policy=offline:RUN``; torch only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrm_data.dataset.observation import ACTION_DIM, STATE_DIM
from rrm_data.errors import RrmError, first_line
from rrm_data.io import saved_policy_file
from rrm_data.rl.offline.networks import GaussianActor

OFFLINE_POLICY_FILE = "policy.pt"


class OfflinePolicy:
    """The actor's deterministic action tanh(loc), with SB3's ``predict`` signature so the
    evaluation of ``rl.sac.evaluate`` runs it as it runs SAC."""

    def __init__(self, actor: GaussianActor) -> None:
        self.actor = actor

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        device = next(self.actor.parameters()).device
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, np.float32), device=device)
            return self.actor.act(x).cpu().numpy().astype(np.float64), None


def save_policy(actor: GaussianActor, hidden: list[int], path: Path) -> None:
    torch.save({"hidden": list(hidden), "state_dict": {k: v.cpu() for k, v in
                                                      actor.state_dict().items()}}, path)


def load_offline_policy(path: str | Path) -> OfflinePolicy:
    """A ``train-offline`` run directory or its ``policy.pt``."""
    file = saved_policy_file(path, OFFLINE_POLICY_FILE, "offline", "train-offline")
    try:
        saved: dict[str, Any] = torch.load(file, map_location="cpu", weights_only=True)
        actor = GaussianActor(STATE_DIM, ACTION_DIM, saved["hidden"])
        actor.load_state_dict(saved["state_dict"])
    except Exception as exc:  # torch's loader raises whatever the zip or pickle layer raises
        raise RrmError(f"{file}: not a loadable train-offline policy ({first_line(exc)})") \
            from None
    return OfflinePolicy(actor.eval())
