"""Reward networks in torch: ensembles of MLPs or of sequence models, and the residual
model r̂ = w · r0 + tanh(f).

The residual model is the one shape every recipe shares: a from-scratch PEBBLE model is
the same thing with the ``zero`` prior. A Markovian network maps the concatenated,
normalized input columns of one step (..., D) to one raw output per ensemble member
(K, ...); a sequence network (``SequenceNetwork``: ``transformer``, ``gru``) maps a window
of k steps (..., k, D) to one output for the window's newest step. ``NETWORKS`` names the
kinds a recipe can ask for, so a new network is one decorated class.

Why a sliding window and not Preference Transformer's weighted sum: Preference
Transformer scores a whole segment as Σ_t w_t · r_t with attention weights w_t that depend
on the entire segment, so there is no reward of a step alone for SAC, relabelling or a
segment of another length. Here r̂_t is a function of the window ending at t only
(causal), the segment score is the plain sum of r̂_t, and every consumer of the reward
contract (SAC's wrapper, relabelling, score, evaluate, query) works unchanged.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError
from rrm_data.registry import Registry
from rrm_data.reward.base import RewardOutput
from rrm_data.reward.spec import NetworkSpec
from rrm_data.reward.window import window_index
from rrm_data.triton_apart import load_triton_apart

if TYPE_CHECKING:
    from rrm_data.vision.finetune import TunedEncoder


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


class SequenceNetwork(nn.Module):
    """An ensemble of ``members`` sequence models over windows of ``length`` steps.

    Each step becomes a token (linear → LayerNorm → tanh, as the trunk of ``trunk_mlp``,
    so wide image features are squeezed once per step); ``aggregate`` reads a window of
    tokens (K, ..., k, dim) and returns one raw output per member for its newest step.
    Tokens are computed per step, so training gathers windows of tokens, not of inputs.
    """

    def __init__(self, in_dim: int, length: int, dim: int, members: int) -> None:
        super().__init__()
        if min(dim, members, length) < 1:
            raise RrmError("network sizes dim, members and the window must be at least 1")
        self.members, self.length = members, length
        self.token = EnsembleLinear(members, in_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def tokens(self, x: Tensor) -> Tensor:
        """(..., D) → (K, ..., dim): each step's token, one per member."""
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        return torch.tanh(self.norm(self.token(flat))).reshape(self.members, *lead, -1)

    def aggregate(self, tokens: Tensor) -> Tensor:
        """(K, ..., k, dim) → (K, ...)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Windows (..., k, D) → (K, ...)."""
        return self.aggregate(self.tokens(x))


def _per_member(tokens: Tensor, run: Callable[[int, Tensor], Tensor]) -> Tensor:
    """Apply ``run(member, windows (B, k, dim)) → (B,)`` to each member's windows."""
    lead = tokens.shape[1:-2]
    flat = tokens.reshape(tokens.shape[0], -1, *tokens.shape[-2:])
    return torch.stack([run(m, flat[m]) for m in range(len(flat))]).reshape(len(flat), *lead)


class EnsembleLayerNorm(nn.Module):
    """K LayerNorms over the last axis of (K, ..., dim), one affine pair per member."""

    def __init__(self, members: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        """(K, N, dim) → (K, N, dim)."""
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


class _EnsembleBlock(nn.Module):
    """One pre-norm Transformer layer (causal self-attention, ReLU feed-forward of
    2 × dim) for all K members at once: batched weights, no per-member loop."""

    def __init__(self, members: int, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = EnsembleLayerNorm(members, dim)
        self.query = EnsembleLinear(members, dim, dim)
        self.key = EnsembleLinear(members, dim, dim)
        self.value = EnsembleLinear(members, dim, dim)
        self.out = EnsembleLinear(members, dim, dim)
        self.feed_forward_norm = EnsembleLayerNorm(members, dim)
        self.feed_forward = nn.Sequential(EnsembleLinear(members, dim, 2 * dim), nn.ReLU(),
                                          EnsembleLinear(members, 2 * dim, dim))

    def _split(self, x: Tensor, steps: int) -> Tensor:
        """(K, N·steps, dim) → (K·N, heads, steps, dim / heads): 4-d, so that
        ``scaled_dot_product_attention`` takes its fused kernel, not the math path."""
        members, rows, dim = x.shape
        return x.view(members * rows // steps, steps, self.heads, dim // self.heads
                      ).transpose(1, 2)

    def forward(self, x: Tensor, newest_only: bool) -> Tensor:
        """Windows (K, N, k, dim) → (K, N, k, dim), or with ``newest_only`` the newest
        step's output (K, N, 1, dim): the last layer needs no other query, and the newest
        step attends to the whole window, so it needs no mask either."""
        members, n, k, dim = x.shape
        h = self.attention_norm(x.reshape(members, n * k, dim))
        key, value = self.key(h), self.value(h)
        if newest_only:
            x = x[:, :, -1:]
            h = h.view(members, n, k, dim)[:, :, -1]
        query = self.query(h.reshape(members, -1, dim))
        steps = x.shape[2]
        mixed = F.scaled_dot_product_attention(
            self._split(query, steps), self._split(key, k), self._split(value, k),
            is_causal=not newest_only)  # (K·N, heads, steps, dim / heads)
        x = x + self.out(mixed.transpose(1, 2).reshape(members, n * steps, dim)
                         ).view(members, n, steps, dim)
        flat = x.reshape(members, n * steps, dim)
        return (flat + self.feed_forward(self.feed_forward_norm(flat))
                ).view(members, n, steps, dim)


@NETWORKS.register("transformer")
class EnsembleTransformer(SequenceNetwork):
    """Per member: tokens + a learned positional embedding, a causal Transformer encoder
    (``layers`` × ``heads``, pre-norm, feed-forward 2 × dim), a final LayerNorm and a
    linear head on the newest step's output.

    All members run in one batched computation (``EnsembleLinear`` weights, one
    ``scaled_dot_product_attention`` call per layer), and the last layer computes only the
    newest step's query, feed-forward and head: the other steps' outputs there are never read.
    """

    def __init__(self, in_dim: int, length: int, dim: int = 64, layers: int = 2,
                 heads: int = 4, members: int = 3) -> None:
        super().__init__(in_dim, length, dim, members)
        if layers < 1 or heads < 1 or dim % heads:
            raise RrmError(f"transformer: layers and heads must be at least 1 and dim ({dim}) "
                           f"a multiple of heads ({heads})")
        self.position = nn.Parameter(torch.zeros(members, 1, length, dim))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(_EnsembleBlock(members, dim, heads) for _ in range(layers))
        self.final_norm = EnsembleLayerNorm(members, dim)
        self.head = EnsembleLinear(members, dim, 1)

    def aggregate(self, tokens: Tensor) -> Tensor:
        lead = tokens.shape[1:-2]
        x = tokens.reshape(self.members, -1, *tokens.shape[-2:]) + self.position
        for i, block in enumerate(self.blocks):
            x = block(x, newest_only=i == len(self.blocks) - 1)
        return self.head(self.final_norm(x[:, :, 0])).reshape(self.members, *lead)


@NETWORKS.register("gru")
class EnsembleGRU(SequenceNetwork):
    """Per member: a GRU of ``layers`` × ``dim`` over the window's tokens (oldest first) and
    a linear head on its last hidden state (causal by construction)."""

    def __init__(self, in_dim: int, length: int, dim: int = 64, layers: int = 1,
                 members: int = 3) -> None:
        super().__init__(in_dim, length, dim, members)
        if layers < 1:
            raise RrmError("gru: layers must be at least 1")
        self.grus = nn.ModuleList(nn.GRU(dim, dim, layers, batch_first=True)
                                  for _ in range(members))
        self.heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(members))

    def aggregate(self, tokens: Tensor) -> Tensor:
        def run(m: int, windows: Tensor) -> Tensor:
            return self.heads[m](self.grus[m](windows)[0][:, -1]).squeeze(-1)

        return _per_member(tokens, run)


def build_network(kind: str, in_dim: int, params: Mapping[str, Any], length: int = 1
                  ) -> nn.Module:
    """A registered network, refusing parameters its constructor does not take, and a
    window of more than one step for a Markovian network."""
    cls = NETWORKS.get(kind)
    sequence = issubclass(cls, SequenceNetwork)
    accepted = set(inspect.signature(cls).parameters) - {"in_dim", "length"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise RrmError(f"network '{kind}' takes no parameter {', '.join(unknown)}; "
                       f"it takes: {', '.join(sorted(accepted))}")
    if not sequence and length != 1:
        known = ", ".join(n for n in NETWORKS.names()
                          if issubclass(NETWORKS.get(n), SequenceNetwork))
        raise RrmError(f"network '{kind}' scores one step: its window must be 1, not {length} "
                       f"(networks that read a window: {known})")
    return cls(in_dim, length, **params) if sequence else cls(in_dim, **params)


class RewardNetwork(nn.Module):
    """The learned reward's torch module: r̂ = w · r0(s) + tanh(f(x)), with r0 a fixed prior
    (possibly negated) and f an ensemble: Markovian (one step in) or a sequence network
    (the window of k steps ending at t in, r0 of step t).

    Built from a ``NetworkSpec`` (kind and sizes, inputs in concatenation order, prior,
    normalization, window); the normalization stats live in buffers so they travel with the
    weights. A spec with an ``encoder`` adds the image encoder it fine-tunes
    (``vision.finetune``): its camera-frame inputs enter as uint8 frames and are encoded
    here, and the encoder's weights are part of the network's.
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
        self.window = spec.window
        width = sum(self.inputs.values())
        norm = spec.normalization
        mean = torch.tensor(norm.mean) if norm else torch.zeros(width)
        std = torch.tensor(norm.std) if norm else torch.ones(width)
        if mean.shape != (width,) or std.shape != (width,):
            raise RrmError(f"normalization stats have {mean.numel()} entries, inputs {width}")
        self.register_buffer("input_mean", mean.float())
        self.register_buffer("input_std", std.float())
        self.net = build_network(spec.network, width + self.prior_as_input, spec.params,
                                 spec.window.length)
        self.encoder: TunedEncoder | None = None
        if spec.encoder is not None:  # timm is imported for image encoders only
            from rrm_data.vision.finetune import tuned_encoder

            self.encoder = tuned_encoder(spec.encoder)
        self.frame_inputs = () if self.encoder is None else tuple(
            c for c in self.inputs if fmt.is_image_column(c))

    @property
    def sequence(self) -> bool:
        """Whether the network reads windows of steps (..., k, width)."""
        return isinstance(self.net, SequenceNetwork)

    def prior(self, columns: Mapping[str, Tensor]) -> Tensor:
        """r0 with its sign, before the weight; never trained (no parameters, no gradient)."""
        state = columns.get(fmt.STATE)
        if state is None:
            return next(iter(columns.values())).new_zeros(())
        with torch.no_grad():
            return self.prior_sign * PRIORS.get(self.prior_name)(state.float())

    def encoded(self, columns: Mapping[str, Tensor],
                index: Tensor | None = None) -> Mapping[str, Tensor]:
        """``columns`` with each frame input given as uint8 frames (..., H, W, 3) replaced by
        the encoder's features (..., dim); features pass as they are. With ``index``, the
        frame columns hold a batch's distinct frames (U, H, W, 3) and ``index`` (...) which
        one each position shows, so each frame is encoded once (training's batches)."""
        if self.encoder is None:
            return columns
        out = dict(columns)
        for name in self.frame_inputs:
            if columns[name].dtype == torch.uint8:
                features = self.encoder(columns[name])
                out[name] = features if index is None else features[index]
        return out

    def _features(self, columns: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Normalized inputs (..., D) (r0 appended when it is an input) and r0 (...)."""
        columns = self.encoded(columns)
        x = torch.cat([columns[name].float() for name in self.inputs], dim=-1)
        x = (x - self.input_mean) / self.input_std
        r0 = self.prior(columns).expand(x.shape[:-1])
        if self.prior_as_input:
            x = torch.cat([x, r0.unsqueeze(-1)], dim=-1)
        return x, r0

    def _output(self, raw: Tensor, r0: Tensor) -> RewardOutput:
        residual = torch.tanh(raw)
        prior = self.prior_weight * r0
        members = prior + residual
        return RewardOutput(members.mean(0), prior, residual.mean(0), members)

    def forward(self, columns: Mapping[str, Tensor]) -> RewardOutput:
        """Columns (..., width) of one step, or windows (..., k, width) for a sequence
        network → parts of shape (...) (members: (K, ...))."""
        x, r0 = self._features(columns)
        return self._output(self.net(x), r0[..., -1] if self.sequence else r0)

    def segment_rewards(self, columns: Mapping[str, Tensor]) -> RewardOutput:
        """Per-step parts (..., T) of a run of consecutive steps (..., T + span − 1, width)
        whose first span − 1 steps are history (padded at an episode start as
        ``reward.window`` pads): what training sums per segment. Each step is tokenized
        once and its windows gathered by ``window_index``, so this equals ``forward`` on
        each step's window."""
        if not isinstance(self.net, SequenceNetwork):
            return self(columns)
        x, r0 = self._features(columns)
        span, steps = self.window.span, x.shape[-2] - self.window.span + 1
        if steps < 1:
            raise RrmError(f"a run of {x.shape[-2]} steps is shorter than the window's "
                           f"{span}")
        positions = torch.from_numpy(window_index(np.arange(span - 1, x.shape[-2]),
                                                  np.zeros(steps), self.window)).to(x.device)
        tokens = self.net.tokens(x)  # (K, ..., L, dim)
        return self._output(self.net.aggregate(tokens[..., positions, :]), r0[..., span - 1:])
