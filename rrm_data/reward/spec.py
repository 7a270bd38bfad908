"""The reward contract's description of a reward: typed, frozen, parsed once from JSON.

``RewardSpec`` is what every reward carries as ``reward.spec``: its name, the steps
columns it reads, the window of steps it scores (``Window``), the frames and encoder
records of an image reward (one on cached features reads ``embeddings/<encoder>`` columns;
one that fine-tuned its encoder reads the frames, ``observation.images.<camera>``, and its
network records the encoder), the task it was trained on, and for a learned reward the
network (``NetworkSpec``). An artifact's ``reward.json`` is ``RewardSpec.to_json()``;
``from_json`` reads it back (an artifact without ``window`` is Markovian, k = 1).
No torch here: the true and prior rewards use this module without loading a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rrm_data.config import FINITE, Range
from rrm_data.dataset import format as fmt
from rrm_data.dataset.priors import PRIORS
from rrm_data.errors import RrmError

# Where a run keeps its exported reward, and the file of its spec (what says it is whole).
ARTIFACT_DIR = "reward"
SPEC_FILE = "reward.json"
# Keys of the ``model`` config that describe the reward; all others go to the network.
REWARD_KEYS = ("network", "inputs", "prior", "prior_weight", "negate_prior", "prior_as_input",
               "normalize", "window", "stride", "finetune_blocks")
# Reward keys a ``model`` section may leave out: a Markovian model has no window (k = 1), a
# model on cached frame features fine-tunes no encoder (finetune_blocks = 0).
OPTIONAL_KEYS = ("window", "stride", "finetune_blocks")
# The known numeric keys of a ``model`` section (train-reward's and train-online's).
# Sizes are capped so that even checking a model's shape (train-reward) cannot overflow.
_WIDTH, _DEPTH = Range(1, 2**20, integer=True), Range(1, 1024, integer=True)
MODEL_RANGES = {"prior_weight": FINITE, "hidden": _WIDTH, "trunk": _WIDTH, "layers": _DEPTH,
                "members": _DEPTH, "dim": _WIDTH, "heads": _DEPTH, "window": _DEPTH,
                "stride": _DEPTH, "finetune_blocks": Range(0, 1024, integer=True)}
# How a window is padded before an episode's first step: that first step, repeated.
PAD_FIRST = "first"
PADS = (PAD_FIRST,)


def prior_name(name: str) -> str:
    """Accept ``gripper_object`` or ``prior.gripper_object``; refuse unknown priors."""
    bare = fmt.prior_name(name)
    if bare not in PRIORS:
        raise RrmError(PRIORS.unknown(name))
    return bare


def columns_read(inputs: list[str], prior: str) -> tuple[str, ...]:
    """Steps columns a model reads: its inputs, and observation.state for a non-zero prior."""
    needs_state = prior_name(prior) != "zero" and fmt.STATE not in inputs
    return (*inputs, fmt.STATE) if needs_state else tuple(inputs)


@dataclass(frozen=True)
class Window:
    """The steps r̂_t reads: t − (length − 1)·stride, …, t − stride, t (oldest first).

    A window never crosses its episode's start: positions before it are filled by
    repeating the episode's first step (``pad="first"``). Markovian rewards have length 1.
    """

    length: int = 1
    stride: int = 1
    pad: str = PAD_FIRST

    def __post_init__(self) -> None:
        if self.length < 1 or self.stride < 1:
            raise RrmError(f"a reward window needs length and stride >= 1, got length="
                           f"{self.length} stride={self.stride}")
        if self.pad not in PADS:
            raise RrmError(f"unknown window padding '{self.pad}'; known: {', '.join(PADS)}")

    @property
    def span(self) -> int:
        """Steps from the window's oldest to its newest step, both included."""
        return (self.length - 1) * self.stride + 1

    def to_json(self) -> dict[str, Any]:
        return {"length": self.length, "stride": self.stride, "pad": self.pad}


@dataclass(frozen=True)
class PriorSpec:
    """The residual model's fixed prior r0: which one, its weight, sign, and whether the
    network also reads it as an input."""

    name: str
    weight: float
    negate: bool
    as_input: bool


@dataclass(frozen=True)
class Normalization:
    """Mean and std of the concatenated network inputs (one entry per input feature)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class NetworkSpec:
    """A learned reward network: kind and parameters, inputs (column, width) in
    concatenation order, prior, input normalization (None: none), and the window of steps
    it reads (k = 1 for the Markovian networks; a sequence network reads k steps).

    ``encoder`` (``vision.finetune.tuning_record``) is set when the network holds an image
    encoder it fine-tuned: its camera-frame inputs then enter as frames, their width the
    encoder's features per frame, and its weights are part of the network's."""

    network: str
    params: Mapping[str, Any]
    inputs: tuple[tuple[str, int], ...]
    prior: PriorSpec
    normalization: Normalization | None = None
    window: Window = Window()
    encoder: Mapping[str, Any] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return columns_read([c for c, _ in self.inputs], self.prior.name)

    def with_normalization(self, stats: Normalization | None) -> NetworkSpec:
        return replace(self, normalization=stats)

    def to_json(self) -> dict[str, Any]:
        norm = self.normalization
        return {"network": self.network, "params": dict(self.params),
                "inputs": [{"column": c, "width": w} for c, w in self.inputs],
                "prior": {"name": self.prior.name, "weight": self.prior.weight,
                          "negate": self.prior.negate, "as_input": self.prior.as_input},
                "normalization": None if norm is None else {"mean": list(norm.mean),
                                                            "std": list(norm.std)},
                "window": self.window.to_json(),
                **({} if self.encoder is None else {"encoder": dict(self.encoder)})}

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> NetworkSpec:
        prior, norm = spec["prior"], spec.get("normalization")
        return cls(str(spec["network"]), dict(spec.get("params", {})),
                   tuple((str(i["column"]), int(i["width"])) for i in spec["inputs"]),
                   PriorSpec(prior_name(str(prior["name"])), float(prior["weight"]),
                             bool(prior["negate"]), bool(prior["as_input"])),
                   None if not norm else Normalization(tuple(map(float, norm["mean"])),
                                                       tuple(map(float, norm["std"]))),
                   Window(**spec["window"]) if spec.get("window") else Window(),
                   dict(spec["encoder"]) if spec.get("encoder") else None)


@dataclass(frozen=True)
class Frames:
    """How an image reward's frames look: cameras, square size, scene quality."""

    cameras: tuple[str, ...]
    height: int | None = None
    width: int | None = None
    quality: str = "fast"


@dataclass(frozen=True)
class RewardSpec:
    """Everything a consumer may ask of a reward, besides its scores."""

    name: str
    columns: tuple[str, ...]
    window: Window = Window()
    frames: Frames | None = None
    # Encoder records by ``embeddings/<encoder>`` column, as the dataset's info holds them
    # (a fine-tuned encoder's record is its network's: ``network.encoder``).
    encoders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    task: str | None = None
    network: NetworkSpec | None = None
    training: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cameras(self) -> tuple[str, ...]:
        """Cameras whose frames the reward reads (empty for a state reward)."""
        prefix = fmt.image_column("")
        read = tuple(c.removeprefix(prefix) for c in self.columns if c.startswith(prefix))
        return read or (self.frames.cameras if self.frames else ())

    def with_normalization(self, stats: Normalization | None) -> RewardSpec:
        if self.network is None:
            raise RrmError(f"reward '{self.name}' has no network to normalize inputs of")
        return replace(self, network=self.network.with_normalization(stats))

    def to_json(self) -> dict[str, Any]:
        """The artifact's ``reward.json`` body (format and version keys added by export)."""
        out: dict[str, Any] = {"name": self.name}
        if self.network is not None:
            out.update(self.network.to_json())
        else:
            out["columns"] = list(self.columns)
        out["window"] = self.window.to_json()
        if self.encoders:
            out["encoders"] = {c: dict(r) for c, r in self.encoders.items()}
        if self.frames is not None:
            sizes = {"height": self.frames.height, "width": self.frames.width}
            out["frames"] = {"cameras": list(self.frames.cameras), "quality": self.frames.quality,
                             **{k: v for k, v in sizes.items() if v is not None}}
        if self.task is not None:
            out["task"] = self.task
        out["training"] = dict(self.training)
        return out

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> RewardSpec:
        """Parse ``reward.json`` (or a checkpoint's spec); missing window means k = 1."""
        network = NetworkSpec.from_json(spec) if "network" in spec else None
        columns = network.columns if network else tuple(map(str, spec.get("columns", ())))
        window = (network.window if network else
                  Window(**spec["window"]) if spec.get("window") else Window())
        frames = spec.get("frames") or None
        training = dict(spec.get("training") or {})
        return cls(
            name=str(spec.get("name", "reward")), columns=columns, window=window,
            frames=None if frames is None else Frames(
                tuple(map(str, frames.get("cameras", ()))),
                int(frames["height"]) if "height" in frames else None,
                int(frames["width"]) if "width" in frames else None,
                str(frames.get("quality", "fast"))),
            encoders={str(c): dict(r) for c, r in (spec.get("encoders") or {}).items()},
            task=spec.get("task", training.get("task")), network=network, training=training)

    @classmethod
    def learned(cls, name: str, network: NetworkSpec, *,
                image: Mapping[str, Any] | None = None, task: str | None = None,
                training: Mapping[str, Any] | None = None) -> RewardSpec:
        """A learned reward's spec (its window is its network's); ``image`` is
        ``vision.embeddings.image_spec``."""
        return cls.from_json({"name": name, **network.to_json(), **(image or {}),
                              **({"task": task} if task else {}),
                              "training": dict(training or {})})


def reward_spec(model: Mapping[str, Any], widths: Mapping[str, int],
                stats: Normalization | None,
                encoder: Mapping[str, Any] | None = None) -> NetworkSpec:
    """The network spec of a ``model`` config (shared by train-reward and train-online);
    ``window`` (k, default 1) and ``stride`` (default 1) give the steps it reads, ``encoder``
    the record of the image encoder it fine-tunes (None: none)."""
    return NetworkSpec.from_json({
        "network": str(model["network"]),
        "params": {k: v for k, v in model.items() if k not in REWARD_KEYS},
        "inputs": [{"column": name, "width": int(widths[name])} for name in model["inputs"]],
        "prior": {"name": str(model["prior"]), "weight": float(model["prior_weight"]),
                  "negate": bool(model["negate_prior"]),
                  "as_input": bool(model["prior_as_input"])},
        "window": model_window(model).to_json(),
        "encoder": encoder,
    }).with_normalization(stats)


def model_window(model: Mapping[str, Any]) -> Window:
    """The window of a ``model`` config: ``window`` steps (default 1) ``stride`` apart."""
    return Window(int(model.get("window", 1)), int(model.get("stride", 1)))


def finetune_blocks(model: Mapping[str, Any]) -> int:
    """How many of its image encoder's last blocks a ``model`` config trains (0: none, the
    model reads cached frozen features)."""
    return int(model.get("finetune_blocks", 0))
