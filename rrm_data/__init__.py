"""rrm-data: preference datasets from Meta-World and residual reward models trained on them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rrm-data")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

FORMAT_VERSION = "rrm-data/1"


def load_reward(path):  # noqa: ANN001, ANN201 - re-exported lazily to keep imports light
    """Load an exported reward artifact as a callable ``reward(obs, act)``."""
    from rrm_data.reward.artifact import load_reward as _load

    return _load(path)


__all__ = ["FORMAT_VERSION", "__version__", "load_reward"]
