"""LivePortrait reproduces the original code stage by stage on the golden set (real frames, its own checkpoints).

The set is read from $AVATARIFY_LP_GOLDEN when set (default: ../shared/liveportrait-reference/golden_small_a).
Every stage is compared with the original's output to float rounding: the largest difference must stay within
TOLERANCE times the stage's own magnitude (at least 1).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.model.frames import image_to_tensor, tensor_to_image
from avatarify.model.liveportrait.keypoints import relative_keypoints, transform_keypoints
from avatarify.model.liveportrait.model import load_model
from avatarify.model.liveportrait.predictor import LivePortraitPredictor

# float32 rounding through a few dozen layers; the original reloaded from the same files differs by 5e-6.
TOLERANCE = 3e-5
HEADS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


def assert_matches(actual: torch.Tensor | np.ndarray, expected: np.ndarray, name: str) -> None:
    actual = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape}, expected {expected.shape}"
    error = float(np.abs(actual - expected).max())
    limit = TOLERANCE * max(1.0, float(np.abs(expected).max()))
    assert error <= limit, f"{name}: max abs difference {error:.3g} > {limit:.3g}"


@pytest.fixture(scope="module")
def model(lp_golden_dir):
    return load_model(lp_golden_dir / "config.yaml", lp_golden_dir, device="cpu")


@pytest.fixture(scope="module")
def stages(model, lp_golden):
    """Every stage of the original pipeline run here once: the source, then each driving frame relative to frame 0."""
    with torch.no_grad():
        source = image_to_tensor(lp_golden["source"], model.device)
        out = {"source_raw": model.motion_extractor(source), "source_info": model.motion(source)}
        out["source_feature_3d"] = model.appearance_feature_extractor(source)
        out["source_x_s"] = transform_keypoints(out["source_info"])
        warp_source = model.warping_module.prepare(out["source_feature_3d"], out["source_x_s"])
        frames = [model.motion(image_to_tensor(frame, model.device)) for frame in lp_golden["driving"]]
        per_frame = []
        for info in frames:
            moved = relative_keypoints(out["source_info"], info, frames[0])
            stitched = model.stitching_retargeting_module(out["source_x_s"], moved)
            warped = model.warping_module(warp_source, stitched)
            image = model.spade_generator(warped.features)
            per_frame.append({"info": info, "x_d_new_pose": moved, "x_d_stitched_pose": stitched,
                              "occlusion_map": warped.occlusion, "deformation": warped.deformation,
                              "warped": warped.features, "image_pose": image})
    out["frames"] = per_frame
    return out


def stacked(stages, key: str) -> torch.Tensor:
    return torch.cat([frame[key] for frame in stages["frames"]])


@pytest.mark.parametrize("head", HEADS)
def test_motion_extractor_raw_heads(stages, lp_golden, head):
    assert_matches(stages["source_raw"][head], lp_golden[f"source_raw_{head}"], f"raw {head}")


@pytest.mark.parametrize("head", HEADS)
def test_source_degrees_and_keypoint_shapes(stages, lp_golden, head):
    assert_matches(getattr(stages["source_info"], head), lp_golden[f"source_info_{head}"], f"source {head}")


def test_source_rotation_matrix(stages, lp_golden):
    assert_matches(stages["source_info"].rotation, lp_golden["source_R"], "source R")


@pytest.mark.parametrize("head", HEADS)
def test_driving_motion_per_frame(stages, lp_golden, head):
    values = torch.cat([getattr(frame["info"], head) for frame in stages["frames"]])
    assert_matches(values, lp_golden[f"x_d_info_{head}"], f"driving {head}")


def test_driving_rotation_matrices(stages, lp_golden):
    rotations = torch.cat([frame["info"].rotation for frame in stages["frames"]])
    assert_matches(rotations, lp_golden["R_d"], "driving R")


def test_appearance_feature_volume(stages, lp_golden):
    assert_matches(stages["source_feature_3d"], lp_golden["source_feature_3d"], "feature volume")


def test_source_keypoints_in_driving_space(stages, lp_golden):
    assert_matches(stages["source_x_s"], lp_golden["source_x_s"], "x_s")


def test_relative_motion_keypoints(stages, lp_golden):
    assert_matches(stacked(stages, "x_d_new_pose"), lp_golden["x_d_new_pose"], "x_d_new")
    # With a still source the expression-friendly variant equals the plain one (hull ratio 1).
    assert_matches(stacked(stages, "x_d_new_pose"), lp_golden["x_d_new_expr"], "x_d_new_expr")


def test_stitching(stages, lp_golden):
    assert_matches(stacked(stages, "x_d_stitched_pose"), lp_golden["x_d_stitched_pose"], "stitched")
    moved = stacked(stages, "x_d_stitched_pose") - stacked(stages, "x_d_new_pose")
    assert moved.abs().max() > 1e-4, "stitching must move the keypoints, or this test checks nothing"


@pytest.mark.parametrize("key", ["occlusion_map", "deformation", "warped"])
def test_dense_motion_occlusion_and_warp(stages, lp_golden, key):
    assert_matches(stacked(stages, key), lp_golden[key], key)


def test_decoded_image(stages, lp_golden):
    assert_matches(stacked(stages, "image_pose"), lp_golden["image_pose"], "image")


def test_predictor_reproduces_the_golden_frames(model, lp_golden):
    """The real-time engine (cached avatar, first frame as the neutral pose) gives the same warps and pictures
    (the decoder, the slow part, on the last frame only: the other frames' pictures are checked above)."""
    predictor = LivePortraitPredictor(model, precision="fp32")
    predictor.set_avatar(lp_golden["source"])
    for index, frame in enumerate(lp_golden["driving"]):
        keypoints = predictor.driving_keypoints(frame)
        assert_matches(keypoints, lp_golden["x_d_stitched_pose"][index : index + 1], f"predictor keypoints {index}")
        warped = predictor.warp(keypoints)
        assert_matches(warped.features, lp_golden["warped"][index : index + 1], f"predictor warp {index}")
    picture = predictor.decode(warped.features)
    assert_matches(picture, lp_golden["image_pose"][-1:], "predictor picture")
    expected = np.round(lp_golden["image_pose"][-1].transpose(1, 2, 0) * 255)
    assert np.abs(tensor_to_image(picture).astype(int) - expected).max() <= 1
