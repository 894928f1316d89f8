"""The pipeline's small parts on their own: hand-offs, timing figures, drawing, the shared snapshot, the problem board."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from avatarify.core.faces import SquareCrop
from avatarify.core.frame import MotionOptions, content_key, prepare_frame
from avatarify.core.settings import Settings
from avatarify.pipeline.drawing import (
    CROP_COLOR,
    LANDMARK_COLOR,
    SMART_CROP_COLOR,
    blend_into,
    compose_output,
    draw_crop,
    draw_landmarks,
    output_size,
    render_preview,
)
from avatarify.pipeline.frames import PipelineFrame, PipelineStats
from avatarify.pipeline.handoff import DropOldest
from avatarify.pipeline.stage import Stage
from avatarify.pipeline.problems import ProblemBoard, one_line
from avatarify.pipeline.state import Avatar, SharedState, Snapshot
from avatarify.pipeline.stats import StageTimes, rate
from fakes import FakePredictor

GUARD = 5.0  # seconds a waiting test thread gets before the test calls it stuck; never a speed requirement


def get_in_thread(handoff: DropOldest[int], timeout: float | None) -> list[int | None]:
    """What `handoff.get(timeout)` returns, called on another thread; [] if it is still waiting after GUARD."""
    result: list[int | None] = []
    thread = threading.Thread(target=lambda: result.append(handoff.get(timeout)), daemon=True)
    thread.start()
    thread.join(GUARD)
    return result


# Hand-offs


def test_drop_oldest_holds_one_item_by_default():
    handoff: DropOldest[str] = DropOldest()
    handoff.put("first")
    assert handoff.dropped == 0 and len(handoff) == 1
    handoff.put("second")
    assert handoff.dropped == 1 and len(handoff) == 1
    assert handoff.get(0) == "second"


def test_drop_oldest_refuses_a_size_below_one():
    with pytest.raises(ValueError, match="^maxsize must be at least 1$"):
        DropOldest(0)
    assert len(DropOldest(1)) == 0


def test_drop_oldest_counts_each_dropped_item_once():
    handoff: DropOldest[int] = DropOldest(3)
    for value in range(3):
        handoff.put(value)
    assert handoff.dropped == 0
    for value in range(3, 7):
        handoff.put(value)
    assert handoff.dropped == 4
    assert [handoff.get(0) for _ in range(3)] == [4, 5, 6]


def test_get_on_an_empty_hand_off_gives_none_after_its_timeout():
    handoff: DropOldest[int] = DropOldest()
    assert handoff.get(0) is None
    assert get_in_thread(handoff, 0.01) == [None]


def test_get_waits_for_an_item_put_meanwhile():
    for timeout in (None, GUARD - 1.0):  # a finite wait long enough for any loaded machine
        handoff: DropOldest[int] = DropOldest()
        timer = threading.Timer(0.01, handoff.put, args=(7,))
        timer.start()
        assert get_in_thread(handoff, timeout) == [7]
        timer.join()


def test_wake_ends_one_wait_at_once_and_items_still_come_first():
    handoff: DropOldest[int] = DropOldest()
    result: list[int | None] = []
    waiting = threading.Thread(target=lambda: result.append(handoff.get(None)), daemon=True)
    waiting.start()
    handoff.wake()
    waiting.join(GUARD)
    assert result == [None]  # a wait without a timeout, ended
    handoff.wake()
    assert handoff.get(GUARD) is None  # a wake with nobody waiting ends the next wait
    assert get_in_thread(handoff, 0.01) == [None]  # and only that one
    handoff.put(3)
    handoff.wake()
    assert handoff.get(0) == 3  # an item held is handed out, wake or not


def test_a_stage_waiting_for_work_stops_at_once_not_after_its_idle_timeout():
    class Idle(Stage[int]):
        idles = 0

        def idle(self) -> None:
            self.idles += 1

    stage = Idle(idle_timeout=60.0)
    stage.start()
    stage.request_stop()
    assert stage.join(GUARD) and stage.idles <= 1


def test_clear_forgets_the_items_held():
    handoff: DropOldest[int] = DropOldest(2)
    handoff.put(1)
    handoff.put(2)
    handoff.clear()
    assert len(handoff) == 0 and handoff.get(0) is None and handoff.dropped == 0


# Timing figures


def test_rate_needs_two_times_moving_forward():
    assert rate([]) == 0.0
    assert rate([5.0]) == 0.0
    assert rate([5.0, 5.0]) == 0.0
    assert rate([6.0, 5.0]) == 0.0
    assert rate([5.0, 5.5]) == 2.0
    assert rate([5.0, 5.0, 6.0]) == 2.0  # two frames stamped alike still count
    assert rate([0.0, 0.25, 0.5, 1.0]) == 3.0


@pytest.mark.parametrize("name", ["capture", "crop", "model", "output", "latency", "wait", "handoff"])
def test_stage_times_keep_each_stage_in_milliseconds(name):
    times = StageTimes()
    assert times.median(name) == 0.0
    for seconds in (0.010, 0.030, 0.020):
        times.record(name, seconds)
    assert times.median(name) == pytest.approx(20.0)


def test_stage_times_keep_the_last_30_durations():
    times = StageTimes()
    for seconds in [1.0] * 16 + [0.0] * 15:
        times.record("model", seconds)
    # The oldest 1.0 is gone: 15 of each, whose median lies half-way.
    assert times.median("model") == pytest.approx(500.0)


def test_stage_times_take_a_shorter_window():
    times = StageTimes(window=2)
    for seconds in (0.001, 0.003, 0.005):
        times.record("crop", seconds)
    assert times.median("crop") == pytest.approx(4.0)


def test_event_rates_over_the_last_30_events_and_forgotten_on_request():
    times = StageTimes()
    assert times.rate("camera") == 0.0
    # An early event, then 30 at 10 per second: only the last 30 count.
    for t in [0.0] + [10.0 + i / 10 for i in range(30)]:
        times.event("camera", t)
    times.event("model", 1.0)
    times.event("model", 1.5)
    assert times.rate("camera") == pytest.approx(10.0)
    assert times.rate("model") == pytest.approx(2.0)
    times.forget("camera")
    assert times.rate("camera") == 0.0 and times.rate("model") == pytest.approx(2.0)


# Drawing


def test_output_size_is_even_and_square_or_the_cameras_aspect():
    assert output_size((480, 640, 3), keep_aspect=False) == (480, 480)
    assert output_size((641, 481, 3), keep_aspect=False) == (480, 480)
    assert output_size((481, 641, 3), keep_aspect=True) == (640, 480)


def test_compose_output_fits_and_mirrors():
    square = np.zeros((4, 4, 3), np.uint8)
    square[:, 0] = 200
    assert np.array_equal(compose_output(square, (4, 4), mirror=False), square)
    mirrored = compose_output(square, (4, 4), mirror=True)
    assert mirrored.flags.c_contiguous and mirrored[:, 3].min() == 200 and mirrored[:, :3].max() == 0
    wide = compose_output(np.full((4, 4, 3), 90, np.uint8), (8, 4), mirror=False)
    # Centred on black: two black columns either side.
    assert wide.shape == (4, 8, 3) and wide[:, 2:6].min() == 90 and wide[:, :2].max() == 0 and wide[:, 6:].max() == 0


def numbered_patch(side: int) -> np.ndarray:
    """A square patch whose every pixel differs, so that the part blended in shows."""
    values = np.arange(side * side, dtype=np.uint8).reshape(side, side) * 10 + 5
    return np.repeat(values[:, :, None], 3, axis=2)


def test_blend_into_mixes_the_patch_scaled_to_the_crop():
    image = np.zeros((10, 10, 3), np.uint8)
    blend_into(image, np.full((2, 2, 3), 200, np.uint8), SquareCrop(5, 5, 4), 0.5)
    assert (image[3:7, 3:7] == 100).all()
    image[3:7, 3:7] = 0
    assert image.max() == 0
    # A quarter of the avatar over the camera picture.
    camera = np.full((10, 10, 3), 40, np.uint8)
    blend_into(camera, np.full((4, 4, 3), 200, np.uint8), SquareCrop(5, 5, 4), 0.25)
    assert (camera[3:7, 3:7] == 80).all() and camera[:3].max() == 40


def test_blend_into_clips_a_crop_past_the_corner():
    image = np.zeros((10, 10, 3), np.uint8)
    patch = numbered_patch(4)
    blend_into(image, patch, SquareCrop(0, 0, 4), 1.0)  # corners (-2, -2, 2, 2)
    assert np.array_equal(image[:2, :2], patch[2:, 2:])
    image[:2, :2] = 0
    assert image.max() == 0
    blend_into(image, patch, SquareCrop(10, 10, 4), 1.0)  # corners (8, 8, 12, 12)
    assert np.array_equal(image[8:, 8:], patch[:2, :2])


@pytest.mark.parametrize("crop", [SquareCrop(12, 5, 4), SquareCrop(5, 12, 4), SquareCrop(-2, 5, 4), SquareCrop(-9, -9, 4)])
def test_blend_into_leaves_the_image_alone_when_the_crop_is_outside(crop):
    image = np.zeros((10, 10, 3), np.uint8)
    blend_into(image, np.full((4, 4, 3), 200, np.uint8), crop, 1.0)
    assert image.max() == 0


def dot_extent(side: float) -> tuple[int, int, np.ndarray]:
    """The columns a landmark dot at (20, 20) covers for a face of `side`, and the centre pixel."""
    image = np.zeros((40, 40, 3), np.uint8)
    draw_landmarks(image, np.array([[20.4, 19.6]]), SquareCrop(20, 20, side))
    columns = np.nonzero(image[..., 0].any(axis=0))[0]
    return columns.min(), columns.max(), image[20, 20]


def test_landmark_dots_are_filled_and_grow_with_the_face():
    small_left, small_right, centre = dot_extent(160)
    assert tuple(centre) == LANDMARK_COLOR and small_right - small_left <= 4
    assert dot_extent(80)[:2] == (small_left, small_right)  # a small face still gets dots of radius 1
    left, right, centre = dot_extent(800)  # radius 5
    assert tuple(centre) == LANDMARK_COLOR and right - left >= 10


def test_landmark_dots_have_smooth_edges():
    image = np.zeros((40, 40, 3), np.uint8)
    draw_landmarks(image, np.array([[20.0, 20.0]]), SquareCrop(20, 20, 800))
    red = image[..., 0]
    assert ((red > 0) & (red < LANDMARK_COLOR[0])).any()


def test_crop_square_outlines_the_models_square():
    image = np.zeros((240, 100, 3), np.uint8)
    draw_crop(image, SquareCrop(50, 50, 20), smart=False)  # corners (40, 40, 60, 60)
    assert list(np.nonzero(image[50, :, 0])[0]) == [40, 59]
    assert list(np.nonzero(image[:, 50, 0])[0]) == [40, 59]
    assert tuple(image[40, 50]) == CROP_COLOR
    draw_crop(image, SquareCrop(50, 50, 20), smart=True)
    assert tuple(image[59, 59]) == SMART_CROP_COLOR


def test_crop_square_thickens_with_the_frame():
    image = np.zeros((480, 100, 3), np.uint8)
    draw_crop(image, SquareCrop(50, 50, 20), smart=False)
    assert list(np.nonzero(image[50, :, 0])[0]) == [39, 40, 41, 58, 59, 60]


def test_render_preview_draws_on_a_copy_and_mirrors():
    frame = np.zeros((240, 100, 3), np.uint8)
    crop = SquareCrop(50, 50, 20)
    overlay = np.full((8, 8, 3), 200, np.uint8)
    plain = render_preview(frame, crop, smart=False, mirror=False, overlay=overlay)
    assert frame.max() == 0
    assert tuple(plain[40, 40]) == CROP_COLOR and plain[50, 50].max() == 0  # no opacity: no overlay
    blended = render_preview(frame, crop, smart=True, mirror=False, overlay=overlay, opacity=0.5)
    assert tuple(blended[50, 50]) == (100, 100, 100) and tuple(blended[40, 40]) == SMART_CROP_COLOR
    # An opacity without an overlay (none loaded yet) draws the rest.
    bare = render_preview(frame, crop, smart=False, mirror=False, opacity=0.5)
    assert np.array_equal(bare, plain)
    dotted = render_preview(frame, crop, smart=False, mirror=False, landmarks=np.array([[45.0, 52.0]]))
    assert tuple(dotted[52, 45]) == LANDMARK_COLOR
    mirrored = render_preview(frame, crop, smart=False, mirror=True, landmarks=np.array([[45.0, 52.0]]))
    assert mirrored.flags.c_contiguous and np.array_equal(mirrored, dotted[:, ::-1])


# The shared snapshot


def test_avatar_from_picture_is_prepared_and_keyed():
    picture = np.full((300, 200, 3), 120, np.uint8)
    avatar = Avatar.from_picture(picture, "grey")
    assert np.array_equal(avatar.image, prepare_frame(picture))
    assert avatar.key == content_key(avatar.image) and avatar.name == "grey"
    assert Avatar.from_picture(picture).name == ""


def test_snapshot_defaults():
    snapshot = Snapshot()
    assert snapshot.settings == Settings()
    assert (snapshot.camera, snapshot.predictor, snapshot.output, snapshot.landmarks, snapshot.avatar) == (None,) * 5
    assert (snapshot.crop_epoch, snapshot.pose_epoch) == (0, 0)


def test_animating_needs_a_model_an_avatar_and_no_passthrough():
    avatar = Avatar.from_picture(np.zeros((64, 64, 3), np.uint8))
    model = FakePredictor()
    assert Snapshot(predictor=model, avatar=avatar).animating
    assert not Snapshot(predictor=None, avatar=avatar).animating
    assert not Snapshot(predictor=model, avatar=None).animating
    assert not Snapshot(Settings(passthrough=True), predictor=model, avatar=avatar).animating


def test_landmarks_are_wanted_to_show_them_or_find_the_best_frame():
    assert not Snapshot().wants_landmarks
    assert Snapshot(Settings(show_landmarks=True)).wants_landmarks
    assert Snapshot(Settings(find_best_frame=True)).wants_landmarks


def test_motion_follows_the_settings():
    settings = Settings(relative=False, adapt_scale=False, motion_strength=0.5)
    assert Snapshot(settings).motion == MotionOptions(False, False, 0.5)
    assert Snapshot().motion == MotionOptions(True, True, 1.0)


def test_shared_state_replaces_the_snapshot_whole_and_counts_epochs():
    first = Snapshot()
    state = SharedState(first)
    assert state.current is first
    old, new = state.replace(settings=Settings(mirror_preview=False))
    assert old is first and new is state.current and not new.settings.mirror_preview
    state.bump("pose_epoch")
    state.bump("pose_epoch")
    state.bump("crop_epoch")
    assert (state.current.pose_epoch, state.current.crop_epoch) == (2, 1)
    assert not state.current.settings.mirror_preview  # bumping keeps the rest
    assert first.pose_epoch == 0  # snapshots already handed out never change


# The problem board


def test_one_line_names_the_error_and_joins_its_lines():
    assert one_line(ValueError("bad  frame\n  size\t(3)")) == "ValueError: bad frame size (3)"
    assert one_line(RuntimeError()) == "RuntimeError: "


def test_a_problem_is_reported_once_changed_and_cleared_once(caplog):
    board = ProblemBoard()
    heard: list[tuple[str, str | None]] = []
    board.add_listener(lambda topic, message: heard.append((topic, message)))
    with caplog.at_level(logging.INFO, logger="avatarify.pipeline.problems"):
        board.report("camera", "Camera lost")
        board.report("camera", "Camera lost")
        board.report("camera", "Camera busy")
        board.report("model", "Model failed")
        assert board.get("camera") == "Camera busy" and board.get("output") is None
        assert board.current() == {"camera": "Camera busy", "model": "Model failed"}
        board.clear("camera", "Camera back")
        board.clear("camera", "Camera back again")
        board.clear("output", "never reported")
        board.clear("model")
    assert heard == [
        ("camera", "Camera lost"),
        ("camera", "Camera busy"),
        ("model", "Model failed"),
        ("camera", None),
        ("model", None),
    ]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Camera lost"),
        ("WARNING", "Camera busy"),
        ("WARNING", "Model failed"),
        ("INFO", "Camera back"),
    ]
    assert board.current() == {} and board.get("camera") is None


def test_current_problems_are_a_copy():
    board = ProblemBoard()
    board.report("vcam", "Virtual camera missing")
    board.current().clear()
    assert board.current() == {"vcam": "Virtual camera missing"}


def test_a_failing_listener_neither_stops_the_others_nor_the_report(caplog):
    board = ProblemBoard()
    heard: list[tuple[str, str | None]] = []

    def broken(topic: str, message: str | None) -> None:
        raise RuntimeError("listener broke")

    board.add_listener(broken)
    board.add_listener(lambda topic, message: heard.append((topic, message)))
    with caplog.at_level(logging.ERROR, logger="avatarify.pipeline.problems"):
        board.report("output", "Output failed")
        board.clear("output")
    assert heard == [("output", "Output failed"), ("output", None)]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == ["A problem listener failed"] * 2


# What listeners receive


def test_statistics_lines_for_the_overlay():
    stats = PipelineStats(
        camera_fps=29.96,
        model_fps=12.34,
        capture_ms=1.4,
        crop_ms=2.6,
        model_ms=80.5,
        output_ms=3.0,
        latency_ms=120.49,
        device="cuda:0",
    )
    assert stats.lines() == [
        "camera 30.0 fps  model 12.3 fps",
        "capture 1  crop 3  model 80  output 3 ms",
        "latency 120 ms  device cuda:0",
    ]
    stats.best_frame_score = 0.876
    assert stats.lines()[-1] == "best pose 0.88" and len(stats.lines()) == 4


def test_statistics_summary_for_a_terminal():
    stats = PipelineStats(camera_fps=30.0, model_fps=9.96, model_ms=101.2, latency_ms=150.6)
    assert stats.summary() == "camera 30.0 fps | model 10.0 fps (101 ms) | latency 151 ms"
    stats.best_frame_score = 0.5
    assert stats.summary() == "camera 30.0 fps | model 10.0 fps (101 ms) | latency 151 ms | best pose 0.50"


def test_statistics_before_any_frame():
    stats = PipelineStats()
    assert (stats.device, stats.vcam_state, stats.best_frame_score) == ("none", "off", None)
    assert stats.lines() == [
        "camera 0.0 fps  model 0.0 fps",
        "capture 0  crop 0  model 0  output 0 ms",
        "latency 0 ms  device none",
    ]


def test_a_pipeline_frame_is_by_default_a_fresh_animated_camera_tick():
    image = np.zeros((2, 2, 3), np.uint8)
    frame = PipelineFrame(image, image, PipelineStats())
    assert (frame.animated, frame.note, frame.tick, frame.fresh) == (True, "", True, True)
