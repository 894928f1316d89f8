"""The LivePortrait predictor: avatar cache, neutral pose, relative/absolute motion and strength, precision, and
the engine choice in the loader. The golden set's weights and frames; pictures are decoded only where needed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.core.errors import AvatarifyError
from avatarify.core.frame import AvatarPredictor, MotionOptions
from avatarify.model.frames import AvatarCache
from avatarify.model.liveportrait.keypoints import place_keypoints, rotation_matrix, scale_rotation
from avatarify.model.liveportrait.model import load_model
from avatarify.model.liveportrait.predictor import LivePortraitPredictor
from avatarify.model.loader import ModelOptions, create_predictor, predictor_factory


@pytest.fixture(scope="module")
def model(lp_golden_dir):
    return load_model(lp_golden_dir / "config.yaml", lp_golden_dir)


@pytest.fixture
def predictor(model, lp_golden):
    predictor = LivePortraitPredictor(model, precision="fp32")
    predictor.set_avatar(lp_golden["source"])
    return predictor


@torch.no_grad()
def still_keypoints(predictor: LivePortraitPredictor) -> torch.Tensor:
    """Where the avatar's keypoints go when the face has not moved: its own, stitched to itself."""
    avatar = predictor._current_avatar()
    return predictor.model.stitching_retargeting_module(avatar.keypoints, avatar.keypoints)


def test_is_an_avatar_predictor_with_512_output(predictor):
    assert isinstance(predictor, AvatarPredictor)
    assert predictor.output_size == 512 and predictor.device_name == "cpu"
    assert predictor.decoder_dtype == torch.float32


def test_first_frame_is_the_neutral_pose_until_calibrated(predictor, lp_golden):
    first, other = lp_golden["driving"][0], lp_golden["driving"][2]
    torch.testing.assert_close(predictor.driving_keypoints(first), still_keypoints(predictor), atol=2e-6, rtol=0)
    moved = predictor.driving_keypoints(other)
    assert (moved - still_keypoints(predictor)).abs().max() > 1e-3
    predictor.calibrate()
    assert predictor.neutral is None
    torch.testing.assert_close(predictor.driving_keypoints(other), still_keypoints(predictor), atol=2e-6, rtol=0)
    predictor.set_neutral(first)
    torch.testing.assert_close(predictor.driving_keypoints(other), moved, atol=1e-6, rtol=0)


def test_motion_strength_zero_keeps_the_avatar_still_and_scales_in_between(predictor, lp_golden):
    neutral, frame = lp_golden["driving"][0], lp_golden["driving"][2]
    predictor.set_neutral(neutral)
    full = predictor.driving_keypoints(frame)
    predictor.motion = MotionOptions(motion_strength=0.0)
    torch.testing.assert_close(predictor.driving_keypoints(frame), still_keypoints(predictor), atol=2e-6, rtol=0)
    predictor.motion = MotionOptions(motion_strength=0.5)
    half = predictor.driving_keypoints(frame)
    still = still_keypoints(predictor)
    assert 0.2 < float((half - still).norm() / (full - still).norm()) < 0.8


def test_absolute_motion_takes_the_driving_pose_and_expression(predictor, lp_golden):
    frame = lp_golden["driving"][1]
    predictor.motion = MotionOptions(relative=False)
    source, driving = predictor._current_avatar().info, predictor.motion_of(frame)
    expected = place_keypoints(source.kp, driving.rotation, driving.exp, source.scale, driving.t)
    expected = predictor.model.stitching_retargeting_module(predictor._current_avatar().keypoints, expected)
    torch.testing.assert_close(predictor.driving_keypoints(frame), expected)


def test_avatars_are_prepared_once_by_content(predictor, lp_golden):
    prepared = predictor._current_avatar()
    predictor.set_avatar(lp_golden["source"].copy())
    assert predictor._current_avatar() is prepared and predictor.cached_avatars == 1
    predictor.set_avatar(lp_golden["driving"][0])
    assert predictor.cached_avatars == 2 and predictor._current_avatar() is not prepared
    predictor.set_avatar(lp_golden["source"])
    assert predictor._current_avatar() is prepared
    np.testing.assert_array_equal(predictor.avatar, lp_golden["source"])
    predictor.close()
    assert predictor.avatar is None and predictor.cached_avatars == 0
    with pytest.raises(RuntimeError, match="No avatar"):
        predictor.driving_keypoints(lp_golden["driving"][0])


def test_avatar_cache_forgets_the_least_recently_used():
    cache: AvatarCache[str] = AvatarCache(2)
    made = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda key=key: made.append(key) or key.upper())
    assert made == ["a", "b", "c", "b"]  # "b" was the oldest when "c" came
    assert len(cache) == 2


def test_scale_rotation():
    rotation = rotation_matrix(torch.tensor([12.0, -3.0]), torch.tensor([-20.0, 0.5]), torch.tensor([5.0, 0.0]))
    assert scale_rotation(rotation, 1.0) is rotation
    torch.testing.assert_close(scale_rotation(rotation, 0.0), torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)
    half = scale_rotation(rotation, 0.5)
    torch.testing.assert_close(half @ half, rotation, atol=1e-6, rtol=0)
    torch.testing.assert_close(scale_rotation(torch.eye(3)[None], 0.3), torch.eye(3)[None])


def test_reduced_precision_decoder_stays_close_to_float32(lp_golden_dir):
    fp32 = LivePortraitPredictor(load_model(lp_golden_dir / "config.yaml", lp_golden_dir), precision="fp32")
    bf16 = LivePortraitPredictor(load_model(lp_golden_dir / "config.yaml", lp_golden_dir), precision="bf16")
    assert bf16.decoder_dtype == torch.bfloat16  # every CPU build of torch has bf16 kernels
    features = torch.randn(1, fp32.model.spade_generator.in_channels, 4, 4, generator=torch.Generator().manual_seed(0))
    reference, reduced = fp32.decode(features), bf16.decode(features)
    assert reduced.dtype == torch.bfloat16
    assert float((reduced.float() - reference).abs().mean()) < 0.01
    with pytest.raises(ValueError, match="precision"):
        LivePortraitPredictor(fp32.model, precision="int8")


def test_loader_builds_the_chosen_engine(lp_golden_dir, lp_golden):
    options = ModelOptions(engine="liveportrait", checkpoint=lp_golden_dir, config=lp_golden_dir / "config.yaml",
                           device="cpu", precision="fp32")
    predictor = create_predictor(options, MotionOptions(motion_strength=0.7))
    assert isinstance(predictor, LivePortraitPredictor) and predictor.motion.motion_strength == 0.7
    make = predictor_factory(options)
    first, second = make(), make()
    assert first.model is second.model and first is not second
    with pytest.raises(AvatarifyError, match="Unknown engine"):
        create_predictor(ModelOptions(engine="sadtalker"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_half_precision_decoder_matches_the_golden_pictures(lp_golden_dir, lp_golden):
    predictor = LivePortraitPredictor(load_model(lp_golden_dir / "config.yaml", lp_golden_dir, device="cuda"))
    assert predictor.decoder_dtype == torch.float16  # "auto" on CUDA
    predictor.set_avatar(lp_golden["source"])
    for index, frame in enumerate(lp_golden["driving"]):
        picture = predictor.predict(frame).astype(float)
        assert picture.shape == (512, 512, 3)
        expected = lp_golden["image_pose"][index].transpose(1, 2, 0) * 255
        assert np.abs(picture - expected).mean() < 1.0 and np.abs(picture - expected).max() <= 8
