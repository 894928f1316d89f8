"""The real-time predictor: cached avatar encoding, calibration, modes and avatar switching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.model.fomm import load_model, normalize_kp
from avatarify.core.frame import MotionOptions, prepare_frame
from avatarify.model.predictor import Predictor
from avatarify.core.video import read_frames

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def golden_frames(golden_dir):
    data = np.load(golden_dir / "inputs.npz")
    return data["source_uint8_hwc"], list(data["driving_uint8_nhwc"])


@pytest.fixture(scope="module")
def video_frames(driving_video):
    frames = []
    for frame in read_frames(driving_video):
        frames.append(prepare_frame(frame))
        if len(frames) == 6:
            return frames
    return frames


def assert_same_image(actual, expected):
    """Equal up to float32 rounding as amplified by grid sampling (the golden set's noise floor)."""
    difference = (actual - expected).abs()
    assert difference.max() < 3e-3 and difference.mean() < 5e-5, (difference.max(), difference.mean())


def plain_forward(model, source, driving, neutral, relative=True, adapt=True):
    """The original per-frame call pattern: everything recomputed from the images."""
    def tensor(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255

    with torch.no_grad():
        kp_source = model.kp_detector(tensor(source))
        kp_norm = normalize_kp(
            kp_source, model.kp_detector(tensor(driving)), model.kp_detector(tensor(neutral)),
            adapt_movement_scale=adapt, use_relative_movement=relative, use_relative_jacobian=relative,
        )
        return model.generator(tensor(source), kp_source=kp_source, kp_driving=kp_norm)["prediction"]


def test_cached_path_matches_uncached(small_model, small_config, small_checkpoint, golden_frames):
    source, driving = golden_frames
    predictor = Predictor(load_model(small_config, small_checkpoint), optimize=False)
    predictor.set_avatar(source)
    for frame in driving:
        cached = predictor.animate_frame(frame)
        assert (cached - plain_forward(small_model, source, frame, driving[0])).abs().max() < 1e-4


def test_absolute_mode_matches_uncached(small_model, small_config, small_checkpoint, golden_frames):
    source, driving = golden_frames
    predictor = Predictor(load_model(small_config, small_checkpoint), MotionOptions(relative=False), optimize=False)
    predictor.set_avatar(source)
    for frame in driving[1:]:
        expected = plain_forward(small_model, source, frame, driving[0], relative=False, adapt=False)
        assert (predictor.animate_frame(frame) - expected).abs().max() < 1e-4


def test_first_frame_is_neutral_until_calibrated(small_predictor, small_model, golden_frames):
    source, driving = golden_frames
    small_predictor.set_avatar(source)
    first = small_predictor.animate_frame(driving[2])
    # The first frame is the neutral pose: relative motion is zero, so the avatar is reproduced as is.
    assert_same_image(first, plain_forward(small_model, source, driving[2], driving[2]))
    later = small_predictor.animate_frame(driving[1])
    assert_same_image(later, plain_forward(small_model, source, driving[1], driving[2]))
    small_predictor.calibrate()
    small_predictor.animate_frame(driving[3])
    after = small_predictor.animate_frame(driving[1])
    assert_same_image(after, plain_forward(small_model, source, driving[1], driving[3]))
    assert (after - later).abs().max() > 1e-3


def test_set_neutral_takes_the_given_frame(small_predictor, small_model, golden_frames):
    source, driving = golden_frames
    small_predictor.set_avatar(source)
    small_predictor.set_neutral(driving[0])
    out = small_predictor.animate_frame(driving[2])
    assert_same_image(out, plain_forward(small_model, source, driving[2], driving[0]))


def test_motion_strength_scales_relative_motion(small_predictor, video_frames):
    small_predictor.set_avatar(video_frames[0])
    neutral = small_predictor.animate_frame(video_frames[0])
    small_predictor.motion = MotionOptions(motion_strength=0.0)
    frozen = small_predictor.animate_frame(video_frames[5])
    small_predictor.motion = MotionOptions(motion_strength=1.0)
    moving = small_predictor.animate_frame(video_frames[5])
    assert (frozen - neutral).abs().max() < 1e-4
    assert (moving - neutral).abs().max() > 1e-3


def test_switching_back_to_an_avatar_reuses_its_encoding(small_predictor, avatars_dir):
    from avatarify.core.images import read_image

    first, second = (read_image(avatars_dir / name) for name in ("mona.jpg", "obama.jpg"))
    calls = []
    hook = small_predictor.model.generator.first.register_forward_hook(lambda *args: calls.append(1))
    try:
        small_predictor.set_avatar(first)
        small_predictor.set_avatar(second)
        assert len(calls) == 2
        small_predictor.set_avatar(first.copy())
        assert len(calls) == 2, "the encoder ran again for an avatar seen before"
    finally:
        hook.remove()
    assert np.array_equal(small_predictor.avatar, prepare_frame(first))


def test_predict_returns_rgb_uint8(small_predictor, video_frames):
    small_predictor.set_avatar(np.zeros((300, 500), np.uint8))
    out = small_predictor.predict(video_frames[1])
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8


def test_predict_without_avatar_fails_clearly(small_predictor, video_frames):
    with pytest.raises(RuntimeError, match="set_avatar"):
        small_predictor.predict(video_frames[0])


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_fast_paths_stay_close_to_float32(precision, small_predictor, small_config, small_checkpoint, golden_frames):
    """Reduced precision and the rewritten networks keep the output within 1e-2 mean absolute error."""
    source, driving = golden_frames
    fast = Predictor(load_model(small_config, small_checkpoint), precision=precision)
    for predictor in (small_predictor, fast):
        predictor.set_avatar(source)
        predictor.set_neutral(driving[0])
    for frame in driving[1:]:
        error = (fast.animate_frame(frame) - small_predictor.animate_frame(frame)).abs().mean()
        assert error < 1e-2


def test_rewritten_float32_networks_match_the_original(small_predictor, small_model, golden_frames):
    source, driving = golden_frames
    assert small_predictor.model.generator.inference_optimized
    small_predictor.set_avatar(source)
    small_predictor.set_neutral(driving[0])
    for frame in driving[1:]:
        assert_same_image(small_predictor.animate_frame(frame), plain_forward(small_model, source, frame, driving[0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fast_path_stays_close_to_cpu_float32(small_predictor, small_config, small_checkpoint, golden_frames):
    source, driving = golden_frames
    gpu = Predictor(load_model(small_config, small_checkpoint, device="cuda"))
    assert "fp16 decoder" in gpu.fast_path
    for predictor in (small_predictor, gpu):
        predictor.set_avatar(source)
        predictor.set_neutral(driving[0])
    for frame in driving[1:]:
        error = (gpu.animate_frame(frame).cpu() - small_predictor.animate_frame(frame)).abs().mean()
        assert error < 1e-2
