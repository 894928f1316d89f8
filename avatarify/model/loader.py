"""Building a ready local predictor from the model options: the checkpoint found by the usual lookup, the config,
the device and the decoder's precision.

The one place that says what to do when PyTorch is not installed (the thin client): use a worker, or install
the `model` extra.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core.errors import AvatarifyError
from ..core.frame import MotionOptions

if TYPE_CHECKING:
    from .predictor import PredictorBase

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "onnx")


class ModelNotInstalledError(AvatarifyError):
    """The local model was asked for, but this installation has no PyTorch (the thin client)."""


MODEL_NOT_INSTALLED = (
    "Running the model on this computer needs PyTorch, which this installation lacks: install it with "
    "`pip install 'avatarify[model]'` (./run.sh does), or run the model on a worker with --worker tcp://HOST:PORT."
)


@dataclass(frozen=True)
class ModelOptions:
    """Which local model to run and how: None means "the usual" (lookup order, bundled vox-256, best device)."""

    checkpoint: Path | None = None
    config: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    # "auto" measures torch against the installed ONNX providers once and remembers (see model.backend).
    backend: str = "auto"
    provider: str | None = None


def model_installed() -> bool:
    """Whether PyTorch (the `model` extra) is importable here."""
    return importlib.util.find_spec("torch") is not None


def require_model() -> None:
    """Raise `ModelNotInstalledError` with what to do when PyTorch is missing."""
    if not model_installed():
        raise ModelNotInstalledError(MODEL_NOT_INSTALLED)


def create_predictor(options: ModelOptions = ModelOptions(), motion: MotionOptions | None = None) -> PredictorBase:
    """A local predictor with the checkpoint found by the usual lookup order (config None: vox-256), on the
    backend the options name (`backend_reason` says why)."""
    return _engine(options).predictor(motion)


def predictor_factory(options: ModelOptions = ModelOptions()) -> Callable[[], PredictorBase]:
    """Load the model once; the factory makes predictors that share it (one per worker client)."""
    engine = _engine(options)
    return engine.predictor


def _engine(options: ModelOptions):
    require_model()
    from .backend import ModelSource, load_engine
    from .fomm import DEFAULT_CONFIG
    from .weights import find_checkpoint

    source = ModelSource(config=options.config or DEFAULT_CONFIG, checkpoint=find_checkpoint(options.checkpoint))
    return load_engine(source, options.backend, options.provider, options.device, options.precision)
