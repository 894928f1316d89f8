"""The FOMM networks as ONNX graphs, exported from the same torch modules the torch engine runs.

Three graphs, all at the fixed 256x256 frame size:

- `keypoints`: frame -> keypoint values and jacobians (run on the avatar once and on every driving frame);
- `encoder`: avatar -> the generator's encoded features and the motion network's downsampled avatar (once per avatar);
- `animate`: the avatar's encoding and keypoints plus the driving keypoints -> the animated frame (every frame):
  dense motion, feature warp, occlusion and decoder. Its `fp16` variant runs the decoder in float16 and everything
  before it in float32, as the torch engine does on CUDA.

The legacy TorchScript exporter is used: FOMM is a plain feed-forward graph, and its output is stable across
torch releases.
"""
from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ...core.frame import FRAME_SIZE
from ..fomm import FOMM, OcclusionAwareGenerator, SourceEncoding

log = logging.getLogger(__name__)

OPSET = 17
# Bump when the graphs' inputs, outputs or contents change: cached exports of another version are rebuilt.
EXPORT_VERSION = 1
PRECISIONS = ("fp32", "fp16")
GRAPH_NAMES = ("keypoints", "encoder", "animate")

KEYPOINT_OUTPUTS = ("value", "jacobian")
ENCODER_OUTPUTS = ("features", "downsampled")
ANIMATE_INPUTS = ("features", "downsampled", "source_value", "source_jacobian", "driving_value", "driving_jacobian")
WARPED = "warped"


class KeypointGraph(nn.Module):
    """The keypoint detector with its outputs as a tuple."""

    def __init__(self, model: FOMM) -> None:
        super().__init__()
        self.kp_detector = model.kp_detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kp = self.kp_detector(image)
        return kp["value"], kp["jacobian"]


class EncoderGraph(nn.Module):
    """The avatar-only half of the generator (`OcclusionAwareGenerator.encode`)."""

    def __init__(self, model: FOMM) -> None:
        super().__init__()
        self.generator = model.generator

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoding = self.generator.encode(image)
        return encoding.features, encoding.downsampled


class MotionGraph(nn.Module):
    """Dense motion, feature warp and occlusion: `OcclusionAwareGenerator.animate` up to the decoder."""

    def __init__(self, generator: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, features: torch.Tensor, downsampled: torch.Tensor, source_value: torch.Tensor,
                source_jacobian: torch.Tensor, driving_value: torch.Tensor, driving_jacobian: torch.Tensor) -> torch.Tensor:
        encoding = SourceEncoding(image=None, features=features, downsampled=downsampled)
        return self.generator.move_features(
            encoding,
            kp_driving={"value": driving_value, "jacobian": driving_jacobian},
            kp_source={"value": source_value, "jacobian": source_jacobian},
        )[WARPED]


class DecoderGraph(nn.Module):
    """Bottleneck, upsampling and output layer (`OcclusionAwareGenerator.decode`), in the decoder's number type."""

    def __init__(self, generator: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, warped: torch.Tensor) -> torch.Tensor:
        return self.generator.decode(warped)


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
            output_names: list[str], dynamic_axes: dict | None = None) -> None:
    module.eval()  # the exporter restores the wrapper's mode recursively: a fresh wrapper is in training mode
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter is chosen on purpose; its deprecation and constant-folding notes are noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module, inputs, str(path), opset_version=OPSET, dynamo=False, do_constant_folding=True,
            input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
        )


def _example_inputs(model: FOMM) -> tuple[torch.Tensor, ...]:
    """Inputs of the animate graph's shapes, from the model itself on a mid-grey frame."""
    image = torch.full((1, 3, FRAME_SIZE, FRAME_SIZE), 0.5, device=model.device)
    with torch.no_grad():
        kp = model.kp_detector(image)
        encoding = model.generator.encode(image)
    return encoding.features, encoding.downsampled, kp["value"], kp["jacobian"], kp["value"], kp["jacobian"]


def _export_animate(model: FOMM, precision: str, path: Path) -> None:
    """Motion and decoder exported separately and joined at the warped features.

    The decoder is traced on a 2x2 map (its graph has no fixed spatial size) because tracing runs it once, and
    float16 convolutions on a CPU take minutes at full size. Joined, the graph takes the motion graph's fixed shapes.
    """
    import onnx
    from onnx import compose

    generator = model.generator
    if precision == "fp16":
        generator = copy.deepcopy(generator)
        generator.set_decoder_dtype(torch.float16)
    inputs = _example_inputs(model)
    small = torch.zeros(1, generator.feature_channels, 2, 2, device=model.device)
    motion_path, decoder_path = path.with_suffix(".motion.tmp"), path.with_suffix(".decoder.tmp")
    try:
        _export(MotionGraph(generator), inputs, motion_path, list(ANIMATE_INPUTS), [WARPED])
        _export(DecoderGraph(generator), (small,), decoder_path, [WARPED], ["prediction"],
                dynamic_axes={WARPED: {2: "height", 3: "width"}, "prediction": {2: "out_height", 3: "out_width"}})
        motion, decoder = onnx.load(str(motion_path)), onnx.load(str(decoder_path))
    finally:
        motion_path.unlink(missing_ok=True)
        decoder_path.unlink(missing_ok=True)
    decoder = compose.add_prefix(decoder, "decoder/", rename_inputs=False, rename_outputs=False)
    merged = compose.merge_models(motion, decoder, io_map=[(WARPED, WARPED)])
    onnx.save(onnx.shape_inference.infer_shapes(merged), str(path))


def export_graph(model: FOMM, name: str, precision: str, path: Path) -> None:
    """Write graph `name` ("keypoints", "encoder" or "animate") of `model` to `path`.

    `precision` matters for "animate" only ("fp16": decoder in float16). The model is left as it was.
    """
    if name not in GRAPH_NAMES or precision not in PRECISIONS:
        raise ValueError(f"unknown graph {name!r} or precision {precision!r}")
    log.info("Exporting the %s graph (%s) to %s", name, precision, path)
    image = torch.full((1, 3, FRAME_SIZE, FRAME_SIZE), 0.5, device=model.device)
    if name == "keypoints":
        _export(KeypointGraph(model), (image,), path, ["image"], list(KEYPOINT_OUTPUTS))
    elif name == "encoder":
        _export(EncoderGraph(model), (image,), path, ["image"], list(ENCODER_OUTPUTS))
    else:
        _export_animate(model, precision, path)
