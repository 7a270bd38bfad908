"""Reward networks in torch: ensembles of MLPs and the residual model r̂ = w · r0 + tanh(f).

The residual model is the one shape every recipe shares: a from-scratch PEBBLE model is
the same thing with the ``zero`` prior. A network maps the concatenated, normalized input
columns (..., D) to one raw output per ensemble member (K, ...); ``NETWORKS`` names the
kinds a recipe can ask for, so a new network is one decorated class.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.registry import Registry
from rrm_data.reward.base import RewardOutput
from rrm_data.reward.spec import NetworkSpec
from rrm_data.triton_apart import load_triton_apart


class EnsembleLinear(nn.Module):
    """K independent linear layers applied in one batched matmul: (K, N, I) → (K, N, O)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        load_triton_apart()  # every network here has one: before its first optimizer step
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialization
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
for _name, _module in (("leaky_relu", nn.LeakyReLU), ("relu", nn.ReLU), ("tanh", nn.Tanh),
                       ("silu", nn.SiLU)):
    ACTIVATIONS.register(_name)(_module)

NETWORKS: Registry[type[nn.Module]] = Registry("network")


@NETWORKS.register("mlp")
class EnsembleMLP(nn.Module):
    """PEBBLE's reward net: ``members`` MLPs of ``layers`` × ``hidden`` units, one output each.

    The output is raw; the residual model bounds it with tanh.
    """

    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 3, members: int = 3,
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        make_activation = ACTIVATIONS.get(activation)
        if min(hidden, layers, members) < 1:
            raise RrmError("network sizes hidden, layers and members must be at least 1")
        self.members = members
        sizes = [in_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            blocks += [EnsembleLinear(members, a, b), make_activation()]
        self.body = nn.Sequential(*blocks, EnsembleLinear(members, sizes[-1], 1))

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) → (K, ...)."""
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        return self.body(flat).reshape(self.members, *lead)


@NETWORKS.register("trunk_mlp")
class EnsembleTrunkMLP(nn.Module):
    """For wide inputs such as frozen image features (1,280 per camera for EfficientNet-Lite0).

    Each member first squeezes its input through a small trunk (linear → LayerNorm → tanh,
    as DrQ-v2 does on image features), then runs PEBBLE's MLP on the ``trunk`` units.
    """

    def __init__(self, in_dim: int, trunk: int = 64, hidden: int = 256, layers: int = 2,
                 members: int = 3, activation: str = "leaky_relu") -> None:
        super().__init__()
        if trunk < 1:
            raise RrmError("network size trunk must be at least 1")
        self.members = members
        self.trunk = EnsembleLinear(members, in_dim, trunk)
        self.norm = nn.LayerNorm(trunk)
        self.head = EnsembleMLP(trunk, hidden, layers, members, activation).body

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) → (K, ...)."""
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        return self.head(torch.tanh(self.norm(self.trunk(flat)))).reshape(self.members, *lead)


def build_network(kind: str, in_dim: int, params: Mapping[str, Any]) -> nn.Module:
    """A registered network, refusing parameters its constructor does not take."""
    cls = NETWORKS.get(kind)
    accepted = set(inspect.signature(cls).parameters) - {"in_dim"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise RrmError(f"network '{kind}' takes no parameter {', '.join(unknown)}; "
                       f"it takes: {', '.join(sorted(accepted))}")
    return cls(in_dim, **params)


class RewardNetwork(nn.Module):
    """The learned reward's torch module: r̂ = w · r0(s) + tanh(f(x)), with r0 a fixed prior
    (possibly negated) and f an ensemble; Markovian (one step in, one value out).

    Built from a ``NetworkSpec`` (kind and sizes, inputs in concatenation order, prior,
    normalization); the normalization stats live in buffers so they travel with the weights.
    """

    input_mean: Tensor  # buffers, registered in __init__
    input_std: Tensor

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.inputs = dict(spec.inputs)
        self.prior_name = spec.prior.name
        self.prior_weight = spec.prior.weight
        self.prior_sign = -1.0 if spec.prior.negate else 1.0
        self.prior_as_input = spec.prior.as_input
        self.columns = spec.columns
        width = sum(self.inputs.values())
        norm = spec.normalization
        mean = torch.tensor(norm.mean) if norm else torch.zeros(width)
        std = torch.tensor(norm.std) if norm else torch.ones(width)
        if mean.shape != (width,) or std.shape != (width,):
            raise RrmError(f"normalization stats have {mean.numel()} entries, inputs {width}")
        self.register_buffer("input_mean", mean.float())
        self.register_buffer("input_std", std.float())
        self.net = build_network(spec.network, width + self.prior_as_input, spec.params)

    def prior(self, columns: Mapping[str, Tensor]) -> Tensor:
        """r0 with its sign, before the weight; never trained (no parameters, no gradient)."""
        state = columns.get(fmt.STATE)
        if state is None:
            return next(iter(columns.values())).new_zeros(())
        with torch.no_grad():
            return self.prior_sign * PRIORS.get(self.prior_name)(state.float())

    def forward(self, columns: Mapping[str, Tensor]) -> RewardOutput:
        """Columns of shape (..., width) → parts of shape (...) (members: (K, ...))."""
        x = torch.cat([columns[name].float() for name in self.inputs], dim=-1)
        x = (x - self.input_mean) / self.input_std
        r0 = self.prior(columns).expand(x.shape[:-1])
        if self.prior_as_input:
            x = torch.cat([x, r0.unsqueeze(-1)], dim=-1)
        residual = torch.tanh(self.net(x))
        prior = self.prior_weight * r0
        members = prior + residual
        return RewardOutput(members.mean(0), prior, residual.mean(0), members)
