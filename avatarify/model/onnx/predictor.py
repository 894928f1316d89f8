"""The FOMM predictor on ONNX Runtime (or OpenVINO): the torch predictor's motion semantics, the graphs' arithmetic."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ...core.errors import AvatarifyError
from ...core.frame import FRAME_SIZE, MotionOptions
from ..fomm.motion import Keypoints
from ..predictor import PredictorBase
from .cache import GraphSet
from .graphs import ENCODER_OUTPUTS, KEYPOINT_OUTPUTS
from .runtime import Provider, device_index, open_session

log = logging.getLogger(__name__)

# Where each provider runs, for the status bar; OpenVINO says itself (its CPU or an Intel GPU).
DEVICE_WORDS = {"cuda": "cuda", "gpu": "gpu", "mps": "apple", "cpu": "cpu"}


def decoder_precision(provider: Provider, precision: str) -> str:
    """The animate graph's decoder precision for a --precision value on `provider`."""
    if precision == "auto":
        return "fp16" if provider.fp16 else "fp32"
    if precision not in ("fp32", "fp16"):
        raise AvatarifyError(f"--precision {precision} is for the torch backend; the ONNX backend runs fp32 or fp16.")
    return precision


class OnnxEngine:
    """The three graphs opened on one execution provider, shared by every predictor made from it.

    Opening runs each graph once: TensorRT builds (or loads) its engines then, and any operation the provider
    leaves to the CPU is found and listed in `warnings` before the first real frame.
    """

    backend = "onnx"

    def __init__(self, graphs: GraphSet, provider: Provider, device: str = "auto", precision: str = "auto") -> None:
        self.provider = provider
        self.precision = decoder_precision(provider, precision)
        device_id = device_index(device)
        engine_cache = graphs.folder / "tensorrt"
        self.keypoints = open_session(graphs.files["keypoints"], provider, device_id, engine_cache)
        self.encoder = open_session(graphs.files["encoder"], provider, device_id, engine_cache)
        self.animate = open_session(
            graphs.animate(self.precision), provider, device_id, engine_cache, fp16=self.precision == "fp16"
        )
        self._where = self._device_words(device_id)
        self._warm_up()
        self.warnings = [note for session in (self.keypoints, self.encoder, self.animate) for note in session.warnings]
        for note in self.warnings:
            log.warning("%s", note)
        self.reason = ""

    def _device_words(self, device_id: int) -> str:
        if self.provider.name == "openvino":
            return getattr(self.animate, "device", "cpu").lower()
        where = DEVICE_WORDS[self.provider.device_kind]
        return f"{where}:{device_id}" if where in ("cuda", "gpu") else where

    @property
    def device_name(self) -> str:
        precision = ", fp16 decoder" if self.precision == "fp16" else ""
        return f"{self._where} ({self.provider.label}{precision})"

    def _warm_up(self) -> None:
        grey = np.full((1, 3, FRAME_SIZE, FRAME_SIZE), 0.5, np.float32)
        value, jacobian = self.keypoints.run({"image": grey})
        features, downsampled = self.encoder.run({"image": grey})
        kp = {"value": value, "jacobian": jacobian}
        self.animate.run(animate_feeds((features, downsampled), kp, kp))

    def predictor(self, motion: MotionOptions | None = None) -> OnnxPredictor:
        """A predictor of its own (avatar, neutral pose, motion) on these graphs."""
        predictor = OnnxPredictor(self, motion)
        predictor.backend_reason = self.reason
        return predictor


def animate_feeds(encoding: tuple, kp_source: Keypoints, kp_driving: Keypoints) -> dict:
    """The animate graph's inputs; keypoints may be torch tensors or numpy arrays."""

    def array(value) -> np.ndarray:
        return value.numpy() if isinstance(value, torch.Tensor) else value

    return {
        "features": encoding[0], "downsampled": encoding[1],
        "source_value": array(kp_source["value"]), "source_jacobian": array(kp_source["jacobian"]),
        "driving_value": array(kp_driving["value"]), "driving_jacobian": array(kp_driving["jacobian"]),
    }


class OnnxPredictor(PredictorBase):
    """Animates an avatar through the exported graphs, with exactly the torch predictor's motion handling.

    Keypoints travel as small CPU tensors, so the neutral pose, adapt scale, motion strength and avatar cache are
    the torch predictor's own code; the avatar's encoding stays where the provider reads it (GPU memory on CUDA).
    """

    backend = "onnx"

    def __init__(self, engine: OnnxEngine, motion: MotionOptions | None = None) -> None:
        super().__init__(motion)
        self.engine = engine
        self.warnings = engine.warnings

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def device_name(self) -> str:
        return self.engine.device_name

    def _keypoints(self, image: torch.Tensor) -> Keypoints:
        outputs = self.engine.keypoints.run({"image": image.numpy()})
        return {name: torch.from_numpy(value) for name, value in zip(KEYPOINT_OUTPUTS, outputs)}

    def _encode(self, image: torch.Tensor) -> tuple:
        outputs = dict(zip(ENCODER_OUTPUTS, self.engine.encoder.run({"image": image.numpy()})))
        return tuple(self.engine.animate.to_device(outputs[name]) for name in ENCODER_OUTPUTS)

    def _render(self, encoding: tuple, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        return torch.from_numpy(self.engine.animate.run(animate_feeds(encoding, kp_source, kp_driving))[0])

