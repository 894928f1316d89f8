"""Export-time checks: the graphs against the torch model they came from, on real face frames."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from ...core.errors import AvatarifyError
from ...core.frame import FRAME_SIZE, prepare_frame
from ..fomm import FOMM
from ..predictor import PredictorBase, Predictor
from .cache import GraphSet, graph_stem
from .runtime import CPU_PROVIDER

log = logging.getLogger(__name__)

CHECK_AVATAR = Path(__file__).resolve().parents[3] / "avatars" / "astronaut.png"
# Mean absolute difference of output images in [0, 1] from float32 torch: the float32 graphs must agree to
# float rounding; a float16 decoder costs a few thousandths.
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2}
KEYPOINT_TOLERANCE = 1e-3
# Head moves the check frames make of the avatar: (dx, dy) pixels, degrees, zoom.
MOVES = ((0, 0, 0.0, 1.0), (6, -4, 4.0, 1.05), (-8, 5, -5.0, 0.94), (3, 9, 2.0, 1.1))


class ExportCheckFailed(AvatarifyError):
    """An exported graph does not compute what the torch model computes."""


def check_frames() -> tuple[np.ndarray, list[np.ndarray]]:
    """A real face (the bundled avatar) and moved copies of it as driving frames; smooth noise without it."""
    if CHECK_AVATAR.is_file():
        image = prepare_frame(cv2.cvtColor(cv2.imread(str(CHECK_AVATAR)), cv2.COLOR_BGR2RGB))
    else:
        noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        image = cv2.resize(noise, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_CUBIC)
    centre = (FRAME_SIZE / 2, FRAME_SIZE / 2)
    driving = []
    for dx, dy, angle, zoom in MOVES:
        matrix = cv2.getRotationMatrix2D(centre, angle, zoom)
        matrix[:, 2] += (dx, dy)
        driving.append(cv2.warpAffine(image, matrix, (FRAME_SIZE, FRAME_SIZE), borderMode=cv2.BORDER_REFLECT))
    return image, driving


def compare(predictor: PredictorBase, reference: PredictorBase, frames: tuple[np.ndarray, list[np.ndarray]]) -> dict:
    """How far `predictor` is from `reference` on the frames (relative motion, first driving frame neutral):
    the largest keypoint difference and the mean and largest output differences."""
    source, driving = frames
    kp_error = 0.0
    for frame in (source, *driving):
        kp, kp_ref = predictor.detect_keypoints(frame), reference.detect_keypoints(frame)
        kp_error = max(kp_error, *((kp[k].cpu() - kp_ref[k].cpu()).abs().max().item() for k in kp_ref))
    errors = []
    for engine in (predictor, reference):
        engine.set_avatar(source)
        engine.set_neutral(driving[0])
    for frame in driving:
        errors.append((predictor.animate_frame(frame).float().cpu() - reference.animate_frame(frame).float().cpu()).abs())
    return {
        "keypoints_max": kp_error,
        "mae": float(torch.stack([e.mean() for e in errors]).mean()),
        "max": float(max(e.max() for e in errors)),
    }


def check_graphs(model: FOMM, files: dict[str, Path]) -> dict[str, dict]:
    """Run the graphs on ONNX Runtime's CPU provider and the torch model in float32 on the check frames.

    Returns each graph's results; raises `ExportCheckFailed` when a graph is off by more than the tolerance.
    """
    from .predictor import OnnxEngine

    frames = check_frames()
    reference = Predictor(model, precision="fp32", optimize=False)  # leaves the model as it is
    results: dict[str, dict] = {}
    for precision in ("fp32", "fp16"):
        stem = graph_stem("animate", precision)
        if stem not in files:
            continue
        graphs = GraphSet(next(iter(files.values())).parent, dict(files))
        result = compare(OnnxEngine(graphs, CPU_PROVIDER, precision=precision).predictor(), reference, frames)
        result["tolerance"] = TOLERANCE[precision]
        log.info("Export check, animate %s: mean error %.2e, largest %.2e", precision, result["mae"], result["max"])
        if result["mae"] > TOLERANCE[precision] or result["keypoints_max"] > KEYPOINT_TOLERANCE:
            raise ExportCheckFailed(
                f"The exported {stem} graph does not match the torch model (mean error {result['mae']:.1e}, "
                f"keypoints {result['keypoints_max']:.1e}); nothing was cached. Please report this with "
                "`avatarify doctor`."
            )
        results[stem] = result
    keypoints = {"max": max(r["keypoints_max"] for r in results.values())} if results else {}
    results.update({"keypoints": keypoints, "encoder": {"checked_through": sorted(results)}})
    return results
