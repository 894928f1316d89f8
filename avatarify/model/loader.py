"""Building a ready local predictor from the model options: the engine, the checkpoint found by the usual lookup,
the config, the device and the decoder's precision.

The one place that says what to do when PyTorch is not installed (the thin client): use a worker, or install
the `model` extra.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

from ..core.errors import AvatarifyError
from ..core.frame import FRAME_SIZE, MotionOptions
from ..core.settings import ENGINES

if TYPE_CHECKING:
    from .batch import BatchAnimator
    from .liveportrait.predictor import LivePortraitPredictor
    from .predictor import PredictorBase

    LocalPredictor = Union[PredictorBase, LivePortraitPredictor]

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
    """Which local model to run and how: None means "the usual" (lookup order, bundled config, best device).

    `checkpoint` is FOMM's checkpoint file or LivePortrait's weights folder, as `engine` says.
    """

    engine: str = "fomm"
    checkpoint: Path | None = None
    config: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    # FOMM only: "auto" picks torch on a CPU and measures it against the GPU's ONNX providers (see model.backend).
    backend: str = "auto"
    provider: str | None = None


def model_installed() -> bool:
    """Whether PyTorch (the `model` extra) is importable here."""
    return importlib.util.find_spec("torch") is not None


def require_model() -> None:
    """Raise `ModelNotInstalledError` with what to do when PyTorch is missing."""
    if not model_installed():
        raise ModelNotInstalledError(MODEL_NOT_INSTALLED)


@dataclass(frozen=True)
class PredictorFactory:
    """Makes predictors sharing one loaded model (one per worker client); `output_size` is their results' side."""

    make: Callable[[MotionOptions | None], LocalPredictor]
    output_size: int = FRAME_SIZE

    def __call__(self) -> LocalPredictor:
        return self.make(None)


def predictor_factory(options: ModelOptions = ModelOptions()) -> PredictorFactory:
    """Load the model once (weights found by the usual lookup order, config None: the bundled one); the factory
    makes predictors that share it. Missing weights are said before torch is imported; the CPU warning comes once
    a model loaded."""
    require_model()
    if options.engine not in ENGINES:
        raise AvatarifyError(f"Unknown engine {options.engine!r}; use {' or '.join(ENGINES)}.")
    factory = _liveportrait(options) if options.engine == "liveportrait" else _fomm(options)
    probe = factory()
    if probe.device_name.split()[0].split(":")[0] == "cpu":
        log.warning(CPU_WARNING)
    probe.close()
    return factory


def create_predictor(options: ModelOptions = ModelOptions(), motion: MotionOptions | None = None) -> LocalPredictor:
    """A local predictor of the chosen engine (see `predictor_factory`)."""
    return predictor_factory(options).make(motion)


def _fomm(options: ModelOptions) -> PredictorFactory:
    from .weights import find_checkpoint

    checkpoint = find_checkpoint(options.checkpoint)
    from .backend import ModelSource, load_engine
    from .fomm import DEFAULT_CONFIG

    source = ModelSource(config=options.config or DEFAULT_CONFIG, checkpoint=checkpoint)
    engine = load_engine(source, options.backend, options.provider, options.device, options.precision)
    return PredictorFactory(engine.predictor)


def _liveportrait(options: ModelOptions) -> PredictorFactory:
    from .liveportrait.weights import find_weights_folder

    folder = find_weights_folder(options.checkpoint)
    from .device import select_device
    from .liveportrait.model import load_model
    from .liveportrait.predictor import LivePortraitPredictor

    model = load_model(options.config, folder, device=select_device(options.device))

    def make(motion: MotionOptions | None) -> LivePortraitPredictor:
        return LivePortraitPredictor(model, motion=motion, precision=options.precision)

    return PredictorFactory(make, model.output_size)


def create_batch_animator(options: ModelOptions = ModelOptions()) -> BatchAnimator:
    """The model for serving many sessions at once (FOMM in torch only), found and placed as `create_predictor`
    does."""
    if options.engine != "fomm":
        raise AvatarifyError(f"Serving with batches across sessions runs the FOMM engine only, not {options.engine}.")
    if options.backend == "onnx":
        raise AvatarifyError("Serving with batches across sessions runs the torch backend; drop --backend onnx.")
    from .batch import BatchAnimator

    predictor = create_predictor(replace(options, backend="torch"))
    return BatchAnimator(predictor.model, precision=options.precision)
