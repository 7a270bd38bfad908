"""Small parts checked against their definitions, computed here independently (plain math /
numpy), so a test fails when a formula drifts from what its docstring and DESIGN.md say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rrm_data.errors import RrmError
from rrm_data.labels.acquisition import disagreement, entropy
from rrm_data.registry import Registry
from rrm_data.reward.loss import bradley_terry_loss
from rrm_data.reward.networks import EnsembleLinear


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in nats, by its definition."""
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_bradley_terry_loss_by_hand_with_ties(smoothing: float) -> None:
    logits = [[1.5, -0.3, 0.0, 2.0], [-1.0, 0.4, 0.7, -2.5]]  # 2 members, 4 pairs
    labels = [1.0, 0.0, 0.5, 0.5]  # two ties
    terms = []
    for member in logits:
        for z, y in zip(member, labels, strict=True):
            t = y * (1 - smoothing) + 0.5 * smoothing
            p = sigmoid(z)  # P(a ≻ b) = σ(R_a − R_b)
            terms.append(-(t * math.log(p) + (1 - t) * math.log(1 - p)))
    expected = sum(terms) / len(terms)
    got = bradley_terry_loss(torch.tensor(logits, dtype=torch.float64),
                             torch.tensor(labels, dtype=torch.float64), smoothing)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_a_tie_is_cheapest_at_equal_returns() -> None:
    label = torch.tensor([0.5], dtype=torch.float64)
    at = {z: float(bradley_terry_loss(torch.tensor([[z]], dtype=torch.float64), label))
          for z in (-1.0, 0.0, 1.0)}
    assert at[0.0] == pytest.approx(math.log(2)) and at[0.0] < at[-1.0] == pytest.approx(at[1.0])


def test_ensemble_linear_equals_separate_linear_layers() -> None:
    torch.manual_seed(0)
    members, n, i, o = 3, 5, 4, 2
    ensemble = EnsembleLinear(members, i, o).double()
    separate = [nn.Linear(i, o).double() for _ in range(members)]
    with torch.no_grad():
        for k, layer in enumerate(separate):
            layer.weight.copy_(ensemble.weight[k].T)
            layer.bias.copy_(ensemble.bias[k, 0])
    x = torch.randn(members, n, i, dtype=torch.float64)
    upstream = torch.randn(members, n, o, dtype=torch.float64)

    out = ensemble(x)
    expected = torch.stack([layer(x[k]) for k, layer in enumerate(separate)])
    torch.testing.assert_close(out, expected)

    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for k, layer in enumerate(separate):
        assert layer.weight.grad is not None and ensemble.weight.grad is not None
        torch.testing.assert_close(ensemble.weight.grad[k], layer.weight.grad.T)
        torch.testing.assert_close(ensemble.bias.grad[k, 0], layer.bias.grad)


def test_registry_adds_gets_and_refuses() -> None:
    colours: Registry[int] = Registry("colour")
    colours.register("red")(1)
    colours.register("green")(2)
    assert colours.get("green") == 2 and colours.names() == ["red", "green"] and "red" in colours
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        colours.register("red")(3)
    assert colours.get("red") == 1  # the first registration stays
    with pytest.raises(RrmError) as error:
        colours.get("greeen")
    assert str(error.value) == "unknown colour 'greeen'; known: red, green; did you mean green?"
    with pytest.raises(RrmError, match="known: red, green$"):
        colours.get("blue")  # nothing close: no "did you mean"


# Member probabilities P_k(A ≻ B), (members, pairs): agreeing, split, all unsure, mixed.
P = np.array([[0.9, 0.99, 0.5, 0.2],
              [0.9, 0.01, 0.5, 0.6],
              [0.9, 0.50, 0.5, 0.7]])


def test_disagreement_is_the_std_over_members() -> None:
    mean = P.sum(axis=0) / len(P)
    expected = np.sqrt(((P - mean) ** 2).sum(axis=0) / len(P))  # B-Pref: std over members
    np.testing.assert_allclose(disagreement(P), expected, rtol=1e-12)
    assert disagreement(P)[0] == 0.0


def test_entropy_is_the_mean_of_member_entropies() -> None:
    """B-Pref's get_entropy: the mean over members of H(P_k), not H(mean P_k): two members
    sure of opposite answers (pair 1) are not 'uncertain' as a mean of 0.5 would say."""
    expected = binary_entropy(P).mean(axis=0)
    np.testing.assert_allclose(entropy(P), expected, rtol=1e-9)
    assert entropy(P)[1] < entropy(P)[2] == pytest.approx(math.log(2))
