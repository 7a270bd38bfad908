"""CPL's loss (Hejna et al. 2023), apart from data and training loop as TorchRL's objectives.

IQL's loss is TorchRL's ``IQLLoss`` (built in ``iql``); CPL has none in a library, so it is
written here from the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cpl_loss(log_probs: Tensor, label: Tensor, alpha: float, bias: float, discount: float,
             bc_weight: float) -> dict[str, Tensor]:
    """Contrastive Preference Learning, Hejna et al. 2023, Eq. (5) with the conservative
    bias λ of their §3.2 ("CPL (λ)"):

        L = −E[ log exp(Σ_t γ^t α log π(a⁺_t|s⁺_t))
                / (exp(Σ_t γ^t α log π(a⁺_t|s⁺_t)) + exp(λ Σ_t γ^t α log π(a⁻_t|s⁻_t))) ]
          = E[ softplus(−(A⁺ − λ A⁻)) ],   A = Σ_t γ^t α log π(a_t|s_t),

    with soft labels y = P(a ≻ b) as their code's ``biased_bce_with_logits``:
    y · softplus(−(A_a − λA_b)) + (1 − y) · softplus(−(A_b − λA_a)). Their code's BC
    regulariser mixes in behaviour cloning of every step of both segments:
    (1 − β) · L_CPL + β · E[−log π(a|s)].

    ``log_probs`` (B, 2, T) are log π of segment a's and b's steps; ``label`` (B,) is
    P(a ≻ b); ``alpha`` the temperature α, ``bias`` λ, ``discount`` γ, ``bc_weight`` β.
    """
    steps = log_probs.shape[-1]
    weights = discount ** torch.arange(steps, device=log_probs.device, dtype=log_probs.dtype)
    advantage = alpha * (log_probs * weights).sum(-1)  # (B, 2)
    a, b = advantage.unbind(-1)
    cpl = (label * F.softplus(-(a - bias * b)) + (1 - label) * F.softplus(-(b - bias * a))).mean()
    bc = -log_probs.mean()
    decided = label != 0.5
    accuracy = ((a > b) == (label > 0.5))[decided].float().mean() if decided.any() \
        else torch.zeros((), device=label.device)
    return {"loss": (1 - bc_weight) * cpl + bc_weight * bc, "loss_cpl": cpl, "loss_bc": bc,
            "accuracy": accuracy}
