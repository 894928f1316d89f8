"""Batched animation for serving: one model call for frames of many sessions equals each session's own Predictor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.core.frame import MotionOptions, prepare_frame
from avatarify.core.images import read_image
from avatarify.core.video import read_frames
from avatarify.model.batch import BatchAnimator, FrameJob, Pose
from avatarify.model.fomm import load_model
from avatarify.model.predictor import Predictor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def video_frames(driving_video) -> list[np.ndarray]:
    frames = []
    for frame in read_frames(driving_video):
        frames.append(prepare_frame(frame))
        if len(frames) == 8:
            break
    return frames


@pytest.fixture(scope="module")
def avatar_images(avatars_dir) -> list[np.ndarray]:
    return [prepare_frame(read_image(avatars_dir / f"{name}.jpg")) for name in ("mona", "einstein", "obama")]


def fp32_model(small_config, small_checkpoint):
    return load_model(small_config, small_checkpoint)


# (avatar, neutral frame or None for "this frame calibrates", driving frame, motion options): a batch mixing
# avatars, neutral poses, calibration frames and every motion option.
SESSIONS = [
    (0, 0, 3, MotionOptions()),
    (1, 1, 4, MotionOptions(motion_strength=0.5)),
    (2, None, 5, MotionOptions()),
    (0, 2, 6, MotionOptions(relative=False)),
    (1, 0, 7, MotionOptions(adapt_movement_scale=False, motion_strength=1.5)),
    (2, 3, 2, MotionOptions(motion_strength=0.0)),
]


def test_a_batch_of_mixed_sessions_equals_each_sessions_own_predictor(
    small_config, small_checkpoint, video_frames, avatar_images
):
    animator = BatchAnimator(fp32_model(small_config, small_checkpoint), precision="fp32")
    predictor = Predictor(fp32_model(small_config, small_checkpoint), precision="fp32")
    avatars = [animator.prepare_avatar(image) for image in avatar_images]
    neutrals = animator.poses([video_frames[i] for i in range(4)])
    jobs = [
        FrameJob(avatars[avatar], video_frames[frame], None if neutral is None else neutrals[neutral], motion)
        for avatar, neutral, frame, motion in SESSIONS
    ]
    batch = animator.animate(jobs)
    assert len(batch.images) == len(batch.poses) == len(SESSIONS)
    assert set(batch.stage_ms) == {"keypoints", "generator"}

    for (avatar, neutral, frame, motion), image, pose in zip(SESSIONS, batch.images, batch.poses, strict=True):
        predictor.set_avatar(avatar_images[avatar])
        if neutral is None:
            predictor.calibrate()
        else:
            predictor.set_neutral(video_frames[neutral])
        predictor.motion = motion
        alone = predictor.predict(video_frames[frame])
        # Equal to float rounding: the same 8-bit levels but where a value sits on a rounding edge.
        difference = np.abs(image.astype(int) - alone)
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01, (difference.max(), (difference > 0).mean())
        kp = predictor.detect_keypoints(video_frames[frame])
        np.testing.assert_allclose(pose.value, kp["value"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(pose.jacobian, kp["jacobian"][0].numpy(), atol=1e-4)
    # Different avatars and options really give different pictures: nothing is shared across the batch by mistake.
    assert len({image.tobytes() for image in batch.images}) == len(SESSIONS)


def test_a_batch_of_one_is_the_predictor_exactly(small_config, small_checkpoint, video_frames, avatar_images):
    animator = BatchAnimator(fp32_model(small_config, small_checkpoint), precision="fp32")
    predictor = Predictor(fp32_model(small_config, small_checkpoint), precision="fp32")
    predictor.set_avatar(avatar_images[1])
    predictor.set_neutral(video_frames[0])
    (neutral,) = animator.poses([video_frames[0]])
    job = FrameJob(animator.prepare_avatar(avatar_images[1]), video_frames[5], neutral)
    np.testing.assert_array_equal(animator.animate([job]).images[0], predictor.predict(video_frames[5]))


def test_poses_travel_as_bytes_and_bad_bytes_are_refused():
    rng = np.random.default_rng(1)
    pose = Pose(rng.standard_normal((10, 2)).astype(np.float32), rng.standard_normal((10, 2, 2)).astype(np.float32))
    again = Pose.from_bytes(pose.to_bytes(), 10)
    np.testing.assert_array_equal(again.value, pose.value)
    np.testing.assert_array_equal(again.jacobian, pose.jacobian)
    with pytest.raises(ValueError, match="240"):
        Pose.from_bytes(pose.to_bytes()[:-4], 10)
    with pytest.raises(ValueError, match="non-finite"):
        Pose.from_bytes(np.full(60, np.nan, dtype=np.float32).tobytes(), 10)
    assert torch.from_numpy(again.value).shape == (10, 2)
