"""Building a ready local predictor from the model options: the checkpoint found by the usual lookup, the config,
the device and the decoder's precision.

The one place that says what to do when PyTorch is not installed (the thin client): use a worker, or install
the `model` extra.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core.errors import AvatarifyError
from ..core.frame import MotionOptions

if TYPE_CHECKING:
    from .predictor import Predictor

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_WARNING = (
    "Running the model on the CPU: expect a few frames per second. "
    "Use an NVIDIA GPU (CUDA), an Apple Silicon Mac, or a remote GPU worker for real-time speed."
)


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


def model_installed() -> bool:
    """Whether PyTorch (the `model` extra) is importable here."""
    return importlib.util.find_spec("torch") is not None


def require_model() -> None:
    """Raise `ModelNotInstalledError` with what to do when PyTorch is missing."""
    if not model_installed():
        raise ModelNotInstalledError(MODEL_NOT_INSTALLED)


def create_predictor(options: ModelOptions = ModelOptions(), motion: MotionOptions | None = None) -> Predictor:
    """A local predictor with the checkpoint found by the usual lookup order (config None: vox-256)."""
    require_model()
    from .weights import find_checkpoint

    checkpoint = find_checkpoint(options.checkpoint)  # before torch is imported: a missing file is said at once
    from .device import select_device
    from .fomm import load_model
    from .predictor import Predictor

    model = load_model(options.config, checkpoint, device=select_device(options.device))
    predictor = Predictor(model, motion=motion, precision=options.precision)
    if model.device.type == "cpu":
        log.warning(CPU_WARNING)
    return predictor


def predictor_factory(options: ModelOptions = ModelOptions()) -> Callable[[], Predictor]:
    """Load the model once; the factory makes predictors that share it (one per worker client)."""
    first = create_predictor(options)
    model = first.model

    def make() -> Predictor:
        from .predictor import Predictor

        return Predictor(model, precision=options.precision)

    return make
