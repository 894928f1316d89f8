"""Building a ready local predictor from the model options: the engine, the checkpoint found by the usual lookup,
the config, the device and the decoder's precision.

The one place that says what to do when PyTorch is not installed (the thin client): use a worker, or install
the `model` extra.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..core.errors import AvatarifyError
from ..core.frame import MotionOptions
from ..core.settings import ENGINES

if TYPE_CHECKING:
    from .liveportrait.predictor import LivePortraitPredictor
    from .predictor import Predictor

    LocalPredictor = Union[Predictor, LivePortraitPredictor]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_WARNING = (
    "Running the model on the CPU: expect a few frames per second. "
    "Use an NVIDIA GPU (CUDA), an Apple Silicon Mac, or a remote GPU worker for real-time speed."
)
# FOMM (256x256 output, light enough for a CPU) stays the default; LivePortrait (512x512) wants a GPU.


class ModelNotInstalledError(AvatarifyError):
    """The local model was asked for, but this installation has no PyTorch (the thin client)."""


MODEL_NOT_INSTALLED = (
    "Running the model on this computer needs PyTorch, which this installation lacks: install it with "
    "`pip install 'avatarify[model]'` (./run.sh does), or run the model on a worker with --worker tcp://HOST:PORT."
)


@dataclass(frozen=True)
class ModelOptions:
    """Which local model to run and how: None means "the usual" (lookup order, bundled config, best device).

    `checkpoint` is FOMM's checkpoint file or LivePortrait's weights folder, as `engine` says.
    """

    engine: str = "fomm"
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


def create_predictor(options: ModelOptions = ModelOptions(), motion: MotionOptions | None = None) -> LocalPredictor:
    """A local predictor of the chosen engine, its weights found by the usual lookup order (config None: the
    bundled one). Missing weights are said before torch is imported; the CPU warning comes once a model loaded."""
    require_model()
    if options.engine not in ENGINES:
        raise AvatarifyError(f"Unknown engine {options.engine!r}; use {' or '.join(ENGINES)}.")
    if options.engine == "liveportrait":
        from .liveportrait.weights import find_weights_folder

        weights = find_weights_folder(options.checkpoint)
    else:
        from .weights import find_checkpoint

        weights = find_checkpoint(options.checkpoint)
    from .device import select_device

    device = select_device(options.device)
    if options.engine == "liveportrait":
        from .liveportrait.model import load_model as load_liveportrait
        from .liveportrait.predictor import LivePortraitPredictor

        predictor = LivePortraitPredictor(load_liveportrait(options.config, weights, device=device), motion=motion,
                                          precision=options.precision)  # fmt: skip
    else:
        from .fomm import load_model
        from .predictor import Predictor

        predictor = Predictor(load_model(options.config, weights, device=device), motion=motion,
                              precision=options.precision)  # fmt: skip
    if device.type == "cpu":
        log.warning(CPU_WARNING)
    return predictor


@dataclass(frozen=True)
class PredictorFactory:
    """Makes predictors sharing one loaded model (one per worker client); `output_size` is their results' side."""

    model: object
    engine: type
    precision: str
    output_size: int

    def __call__(self) -> LocalPredictor:
        return self.engine(self.model, precision=self.precision)


def predictor_factory(options: ModelOptions = ModelOptions()) -> PredictorFactory:
    """Load the model once; the factory makes predictors that share it."""
    first = create_predictor(options)
    return PredictorFactory(first.model, type(first), options.precision, first.output_size)
