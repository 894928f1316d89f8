"""The real-time loop: camera -> face crop -> predictor -> virtual camera, on separate threads.

Threads and hand-offs (all bounded, dropping the oldest item, so latency never piles up):

    camera source thread --newest frame--> capture (+ crop) --+--> inference --latest prediction--+
                                                              +--> analysis (landmarks, best pose)|
                                                              +--> output (preview, vcam) <-------+

The output thread runs once per camera frame with the newest prediction available, so the
preview and the virtual camera keep the camera's frame rate when the model is slower.
"""
from __future__ import annotations

import dataclasses
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import AvatarifyError
from ..core.faces import SquareCrop, cut_square
from ..model.predictor import FRAME_SIZE, AvatarPredictor, prepare_frame
from .avatars import AvatarLibrary
from .camera import FrameSource
from .crop import CropController, clamp_offset, clamp_zoom
from .frames import PipelineFrame, PipelineStats
from .handoff import DropOldest
from ..model.landmarks import LandmarkDetector, pose_score
from .settings import MAX_MOTION_STRENGTH, PipelineSettings
from .vcam import VirtualCameraOutput, even_size, fit_frame

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.5
IDLE_TIMEOUT = 0.2
CAMERA_RETRY_WAIT = 0.2
STALL_REPORT_AFTER = 3.0
STATS_WINDOW = 30
# Landmarks older than this are not drawn: the face has moved on.
LANDMARKS_MAX_AGE = 1.0
CROP_COLOR = (255, 255, 255)
SMART_CROP_COLOR = (80, 220, 80)
LANDMARK_COLOR = (255, 80, 80)


@dataclass
class _Captured:
    frame: np.ndarray  # the whole RGB camera frame
    crop: SquareCrop
    face: np.ndarray  # the FRAME_SIZE square the model sees
    t: float  # time.monotonic() when the camera delivered the frame
    camera_fps: float


@dataclass
class _Prediction:
    image: np.ndarray
    t_capture: float


@dataclass
class _Landmarks:
    points: np.ndarray  # 68 x 2, camera frame pixels
    t: float


def _rate(times: list[float]) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def _device_name(predictor: AvatarPredictor | None) -> str:
    if predictor is None:
        return "none"
    # A remote predictor may describe itself (e.g. "remote tcp://host:port").
    return str(getattr(predictor, "device_name", None) or getattr(predictor, "device", "unknown"))


def _landmark_device(predictor: AvatarPredictor | None) -> str:
    # The landmark network shares a local model's GPU; everything else (remote, MPS, none) runs it on the CPU.
    device = str(getattr(predictor, "device", "cpu"))
    return device if device.startswith("cuda") else "cpu"


def _describe(exc: Exception) -> str:
    # OpenCV's messages span several lines; the error listeners show one.
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _close_predictor(predictor: AvatarPredictor | None) -> None:
    # A remote predictor holds sockets and a thread; a local one has nothing to release.
    close = getattr(predictor, "close", None)
    if callable(close):
        close()


def output_size(frame_shape: tuple[int, ...], keep_aspect: bool) -> tuple[int, int]:
    """(width, height) of the output for camera frames of `frame_shape`: square, or the camera's aspect."""
    h, w = frame_shape[:2]
    return even_size((w, h)) if keep_aspect else even_size((min(w, h), min(w, h)))


def blend_into(image: np.ndarray, patch: np.ndarray, crop: SquareCrop, opacity: float) -> None:
    """Blend the square `patch`, scaled to `crop`, into `image` in place (clipped to the image)."""
    x0, y0, x1, y1 = crop.corners()
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    scaled = cv2.resize(patch, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    region = image[cy0:cy1, cx0:cx1]
    part = scaled[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    image[cy0:cy1, cx0:cx1] = cv2.addWeighted(part, opacity, region, 1.0 - opacity, 0.0)


class Pipeline:
    """The headless real-time avatar pipeline with every control the app offers.

    The pipeline owns the camera, the virtual camera output and the predictor it is given:
    `stop()` (or leaving the `with` block) releases them, and replacing one closes the old one.
    Listeners are called on the output thread; errors reach the error listeners as one-line
    messages (each once until the problem clears) and never stop the pipeline.
    """

    def __init__(
        self,
        camera: FrameSource,
        avatars: AvatarLibrary,
        predictor: AvatarPredictor | None,
        output: VirtualCameraOutput | None = None,
        settings: PipelineSettings | None = None,
        landmarks: LandmarkDetector | None = None,
    ) -> None:
        self._camera = camera
        self._avatars = avatars
        self._predictor = predictor
        self._output = output
        self._settings = dataclasses.replace(settings) if settings else PipelineSettings()
        self._landmarks = landmarks or LandmarkDetector(device=_landmark_device(predictor))
        self._lock = threading.RLock()
        self._crop = CropController()
        self._crop_reset = False
        self._model_queue: DropOldest[_Captured] = DropOldest(1)
        self._analysis_queue: DropOldest[_Captured] = DropOldest(1)
        self._output_queue: DropOldest[_Captured] = DropOldest(2)
        self._prediction: _Prediction | None = None
        self._frame_landmarks: _Landmarks | None = None
        self._avatar_index: int | None = None
        self._avatar_path: Path | None = None  # what the index pointed at, so a reload can find it again
        self._avatar_image: np.ndarray | None = None
        self._avatar_pending: np.ndarray | None = None
        self._avatar_landmarks: np.ndarray | None = None
        self._best_score: float | None = None
        self._listeners: list[Callable[[PipelineFrame], None]] = []
        self._error_listeners: list[Callable[[str], None]] = []
        self._errors: dict[str, str] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_output: np.ndarray | None = None
        self._last_prediction: _Prediction | None = None  # the output thread's: latency counts new results only
        self._stats_lock = threading.Lock()
        self._timings: dict[str, deque[float]] = {
            name: deque(maxlen=STATS_WINDOW) for name in ("capture", "crop", "model", "output", "latency")
        }
        self._camera_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self._model_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self._apply_model_settings()
        if len(avatars):
            self.select_avatar(0)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the capture, inference, analysis and output threads."""
        if self._threads:
            return
        self._stopping.clear()
        for name, target in (
            ("capture", self._capture_loop),
            ("inference", self._inference_loop),
            ("analysis", self._analysis_loop),
            ("output", self._output_loop),
        ):
            thread = threading.Thread(target=target, name=f"pipeline {name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads and release the camera, the virtual camera and the predictor."""
        self._stopping.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10.0)
        self._threads = []
        with self._lock:
            camera, output, predictor = self._camera, self._output, self._predictor
            self._output = None
        camera.close()
        if output is not None:
            output.close()
        _close_predictor(predictor)

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._threads)

    # ----------------------------------------------------------------- listeners and errors
    def add_listener(self, callback: Callable[[PipelineFrame], None]) -> None:
        """Call `callback` (on the output thread) with every processed frame."""
        self._listeners.append(callback)

    def add_error_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback` with a one-line message whenever something goes wrong."""
        self._error_listeners.append(callback)

    def _report(self, topic: str, message: str) -> None:
        with self._lock:
            if self._errors.get(topic) == message:
                return
            self._errors[topic] = message
        log.warning("%s", message)
        for callback in list(self._error_listeners):
            try:
                callback(message)
            except Exception:
                log.exception("An error listener failed")

    def _clear(self, topic: str, recovered: str | None = None) -> None:
        with self._lock:
            had_error = self._errors.pop(topic, None) is not None
        if had_error and recovered:
            log.info("%s", recovered)

    @property
    def errors(self) -> dict[str, str]:
        """The problems not cleared yet, by topic ("camera", "model", "vcam", "landmarks", ...)."""
        with self._lock:
            return dict(self._errors)

    # ----------------------------------------------------------------- settings
    @property
    def settings(self) -> PipelineSettings:
        """A copy of the current settings; change them with the methods below."""
        with self._lock:
            return dataclasses.replace(self._settings)

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)

    def _apply_model_settings(self) -> None:
        with self._lock:
            predictor, settings = self._predictor, self._settings
        if predictor is not None:
            predictor.relative = settings.relative
            predictor.adapt_movement_scale = settings.adapt_movement_scale
            predictor.motion_strength = settings.motion_strength

    # ----------------------------------------------------------------- avatars
    @property
    def avatars(self) -> AvatarLibrary:
        return self._avatars

    @property
    def avatar_index(self) -> int | None:
        return self._avatar_index

    def select_avatar(self, index: int) -> None:
        """Animate avatar number `index` of the library (instant for avatars used before)."""
        try:
            image = prepare_frame(self._avatars.image(index))
        except AvatarifyError as exc:
            self._report("avatar", str(exc))
            return
        self._clear("avatar")
        with self._lock:
            self._avatar_index = index
            self._avatar_path = self._avatars.paths[index]
            self._avatar_image = image
            self._avatar_pending = image
            self._avatar_landmarks = None
            self._best_score = None

    def next_avatar(self) -> None:
        if len(self._avatars):
            current = self._avatar_index
            self.select_avatar(0 if current is None else (current + 1) % len(self._avatars))

    def previous_avatar(self) -> None:
        if len(self._avatars):
            current = self._avatar_index
            self.select_avatar(len(self._avatars) - 1 if current is None else (current - 1) % len(self._avatars))

    def reload_avatars(self) -> None:
        """List the avatar folders again, keeping the current avatar when it is still there.

        When it is gone, the avatar that took its place in the list (else the last one) is driven.
        The library may have been reloaded already (`add`, `remove`): the current avatar is
        remembered by its path, not by its index.
        """
        with self._lock:
            index, current = self._avatar_index, self._avatar_path
        self._avatars.reload()
        if current is not None and current in self._avatars.paths:
            with self._lock:
                self._avatar_index = self._avatars.paths.index(current)
        elif len(self._avatars):
            self.select_avatar(min(index or 0, len(self._avatars) - 1))
        else:
            with self._lock:
                self._avatar_index = self._avatar_path = None

    # ----------------------------------------------------------------- pose and model
    def calibrate(self) -> None:
        """Take the current pose as the neutral one."""
        with self._lock:
            predictor = self._predictor
            self._best_score = None
        if predictor is not None:
            predictor.calibrate()

    def set_passthrough(self, on: bool) -> None:
        """Send the camera crop instead of the avatar."""
        self._update(passthrough=bool(on))

    def set_find_best_frame(self, on: bool) -> None:
        """Keep the frame whose pose is closest to the avatar's as the neutral pose (needs landmarks)."""
        self._update(find_best_frame=bool(on))
        with self._lock:
            self._best_score = None

    def set_relative(self, on: bool) -> None:
        self._update(relative=bool(on))
        self._apply_model_settings()

    def set_adapt_scale(self, on: bool) -> None:
        self._update(adapt_movement_scale=bool(on))
        self._apply_model_settings()

    def set_motion_strength(self, value: float) -> None:
        """Multiplier on the relative keypoint motion; 1.0 is the model's original behaviour."""
        self._update(motion_strength=min(MAX_MOTION_STRENGTH, max(0.0, float(value))))
        self._apply_model_settings()

    def set_predictor(self, predictor: AvatarPredictor | None) -> None:
        """Use another predictor (None: camera passthrough only); the old one is closed."""
        with self._lock:
            old, self._predictor = self._predictor, predictor
            self._prediction = None
            self._avatar_pending = self._avatar_image
            self._best_score = None
        self._clear("model")
        self._apply_model_settings()
        if old is not predictor:
            _close_predictor(old)

    # ----------------------------------------------------------------- view
    def set_mirror_preview(self, on: bool) -> None:
        self._update(mirror_preview=bool(on))

    def set_mirror_output(self, on: bool) -> None:
        self._update(mirror_output=bool(on))

    def set_overlay_opacity(self, value: float) -> None:
        """Draw the avatar over the camera preview with this opacity (0..1), for matching its pose."""
        self._update(overlay_opacity=min(1.0, max(0.0, float(value))))

    def set_show_landmarks(self, on: bool) -> None:
        self._update(show_landmarks=bool(on))

    def set_show_stats(self, on: bool) -> None:
        self._update(show_stats=bool(on))

    def set_output_keep_aspect(self, on: bool) -> None:
        """Pad the output to the camera's aspect ratio instead of sending a square."""
        self._update(output_keep_aspect=bool(on))

    # ----------------------------------------------------------------- crop
    def zoom_crop(self, factor: float) -> None:
        """Zoom the crop in (factor > 1) or out."""
        with self._lock:
            self._update(crop_zoom=clamp_zoom(self._settings.crop_zoom * factor))

    def move_crop(self, dx: float, dy: float) -> None:
        """Move the crop by fractions of the frame size, as seen in the preview (mirrored or not)."""
        with self._lock:
            sign = -1.0 if self._settings.mirror_preview else 1.0
            x, y = self._settings.crop_offset
            self._update(crop_offset=clamp_offset((x + sign * dx, y + dy)))

    def reset_crop(self) -> None:
        self._update(crop_zoom=1.0, crop_offset=(0.0, 0.0))
        self._crop_reset = True

    def set_smart_crop(self, on: bool) -> None:
        """Follow the face (detected every few frames, smoothed) instead of the centred crop."""
        self._update(smart_crop=bool(on))
        self._crop_reset = True

    # ----------------------------------------------------------------- devices
    @property
    def camera(self) -> FrameSource:
        return self._camera

    def set_camera(self, camera: FrameSource) -> None:
        """Switch to another camera; the old one is closed."""
        self._replace("_camera", camera, "camera")
        self._crop_reset = True
        with self._stats_lock:
            self._camera_times.clear()

    def set_output(self, output: VirtualCameraOutput | None) -> None:
        """Send to another virtual camera (None: no virtual camera); the old one is closed."""
        self._replace("_output", output, "vcam")

    def _replace(self, attribute: str, new: object, topic: str) -> None:
        with self._lock:
            old = getattr(self, attribute)
            setattr(self, attribute, new)
        if old is not None and old is not new:
            old.close()
        self._clear(topic)

    # ----------------------------------------------------------------- stats
    def stats(self) -> PipelineStats:
        """Frame rates and median stage timings over the last frames."""
        with self._stats_lock:
            timings = {name: list(values) for name, values in self._timings.items()}
            camera_times, model_times = list(self._camera_times), list(self._model_times)
        with self._lock:
            settings, predictor, output, best = self._settings, self._predictor, self._output, self._best_score

        def median(name: str) -> float:
            return statistics.median(timings[name]) if timings[name] else 0.0

        return PipelineStats(
            camera_fps=_rate(camera_times),
            model_fps=_rate(model_times),
            capture_ms=median("capture"),
            crop_ms=median("crop"),
            model_ms=median("model"),
            output_ms=median("output"),
            latency_ms=median("latency"),
            best_frame_score=best if settings.find_best_frame else None,
            device=_device_name(predictor),
            vcam_state=output.state if output is not None else "off",
        )

    def _record(self, name: str, seconds: float) -> None:
        with self._stats_lock:
            self._timings[name].append(seconds * 1000.0)

    # ----------------------------------------------------------------- capture thread
    def _capture_loop(self) -> None:
        stalled_since: float | None = None
        while not self._stopping.is_set():
            camera = self._camera
            try:
                frame = camera.read(timeout=READ_TIMEOUT)
            except Exception as exc:  # any source failure: report, keep the last output, retry
                reason = str(exc) if camera.name in str(exc) else f"Camera {camera.name} lost: {exc}"
                self._report("camera", f"{reason} Retrying.")
                self._stopping.wait(CAMERA_RETRY_WAIT)
                continue
            now = time.monotonic()
            if frame is None:
                stalled_since = stalled_since or now
                if now - stalled_since > STALL_REPORT_AFTER:
                    self._report("camera", f"{camera.name} sends no frames. Waiting for it.")
                continue
            stalled_since = None
            self._clear("camera", f"{camera.name} is back")
            try:
                self._process_capture(camera, frame, now)
            except Exception as exc:  # one bad frame must not end the capture thread
                log.exception("Capture stage failed")
                self._report("capture", f"A camera frame could not be processed: {_describe(exc)}")
                continue
            self._clear("capture")

    def _process_capture(self, camera: FrameSource, frame: np.ndarray, now: float) -> None:
        grabbed = getattr(camera, "timestamp", 0.0) or now
        settings = self.settings
        if self._crop_reset:
            self._crop_reset = False
            self._crop.reset()
        crop = self._crop.crop(frame, grabbed, settings.smart_crop, settings.crop_zoom, settings.crop_offset)
        face = cut_square(frame, crop, FRAME_SIZE)
        done = time.monotonic()
        self._record("capture", now - grabbed)
        self._record("crop", done - now)
        with self._stats_lock:
            self._camera_times.append(grabbed)
        item = _Captured(frame, crop, face, grabbed, float(getattr(camera, "fps", 0.0) or 0.0))
        if self._predictor is not None and not settings.passthrough:
            self._model_queue.put(item)
        if settings.show_landmarks or settings.find_best_frame:
            self._analysis_queue.put(item)
        self._output_queue.put(item)

    # ----------------------------------------------------------------- inference thread
    def _inference_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._model_queue.get(timeout=IDLE_TIMEOUT)
            if item is None:
                continue
            with self._lock:
                predictor, pending = self._predictor, self._avatar_pending
                self._avatar_pending = None
                has_avatar = self._avatar_image is not None
            if predictor is None or not has_avatar:
                continue
            try:
                if pending is not None:
                    predictor.set_avatar(pending)
                started = time.monotonic()
                image = predictor.predict(item.face)
            except Exception as exc:  # a model or remote-worker failure must not end the loop
                with self._lock:
                    replaced = predictor is not self._predictor
                if replaced:  # closed by `set_predictor` while it worked on this frame
                    continue
                self._report("model", f"The model failed on a frame: {_describe(exc)}")
                with self._lock:
                    if self._avatar_pending is None:  # retry this avatar with the next frame unless another was chosen
                        self._avatar_pending = pending
                continue
            finished = time.monotonic()
            self._clear("model")
            self._record("model", finished - started)
            with self._stats_lock:
                self._model_times.append(finished)
            with self._lock:
                if predictor is self._predictor:
                    self._prediction = _Prediction(image, item.t)

    # ----------------------------------------------------------------- analysis thread
    def _analysis_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._analysis_queue.get(timeout=IDLE_TIMEOUT)
            if item is None:
                continue
            detector = self._landmarks
            if detector.unavailable:
                self._report("landmarks", f"Face landmarks {detector.state}")
                continue
            try:
                self._analyse(detector, item)
            except Exception as exc:  # a landmark or predictor failure must not end the analysis thread
                log.exception("Analysis stage failed")
                self._report("analysis", f"Face analysis failed on a frame: {_describe(exc)}")
                continue
            self._clear("analysis")

    def _analyse(self, detector: LandmarkDetector, item: _Captured) -> None:
        points = detector.landmarks(item.face)
        if points is None:
            return
        scale = item.crop.side / FRAME_SIZE
        origin = np.array([item.crop.cx - item.crop.side / 2, item.crop.cy - item.crop.side / 2])
        self._frame_landmarks = _Landmarks(points * scale + origin, time.monotonic())
        if self.settings.find_best_frame:
            self._update_best_frame(detector, item.face, points)

    def _update_best_frame(self, detector: LandmarkDetector, face: np.ndarray, points: np.ndarray) -> None:
        with self._lock:
            avatar, avatar_points, predictor = self._avatar_image, self._avatar_landmarks, self._predictor
        if avatar is None or predictor is None:
            return
        if avatar_points is None:
            avatar_points = detector.landmarks(avatar)
            if avatar_points is None:
                if detector.available:
                    self._report("landmarks", "Find best frame: no face found in the avatar picture.")
                return
            with self._lock:
                if self._avatar_image is avatar:
                    self._avatar_landmarks = avatar_points
        score = pose_score(avatar_points, points)
        with self._lock:
            best = self._best_score
        if best is not None and score <= best:
            return
        predictor.set_neutral(face)
        # Published after the neutral pose is in place, so a reader of the score can rely on it.
        with self._lock:
            if self._avatar_image is avatar:
                self._best_score = score
        log.debug("New best neutral frame, score %.3f", score)

    # ----------------------------------------------------------------- output thread
    def _output_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._output_queue.get(timeout=READ_TIMEOUT)
            if item is None:
                self._keep_output_alive()
                continue
            try:
                self._produce(item)
            except Exception as exc:  # a drawing or device bug must not freeze the app
                log.exception("Output stage failed")
                self._report("output", f"The output stage failed: {_describe(exc)}")

    def _keep_output_alive(self) -> None:
        """Without camera frames, keep sending the last good output so other apps do not freeze or drop us."""
        with self._lock:
            output, last = self._output, self._last_output
        if output is not None and last is not None:
            output.send(last)

    def _produce(self, item: _Captured) -> None:
        started = time.monotonic()
        settings = self.settings
        with self._lock:
            predictor, prediction = self._predictor, self._prediction
            output = self._output
        size = output_size(item.frame.shape, settings.output_keep_aspect)
        animated, fresh = True, True
        if settings.passthrough or predictor is None:
            square, origin = cut_square(item.frame, item.crop, min(size)), item.t
        elif prediction is not None:
            square, origin = prediction.image, prediction.t_capture
            fresh = prediction is not self._last_prediction
            self._last_prediction = prediction
        else:
            square, origin, animated = np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.uint8), item.t, False
        result = fit_frame(square, size)
        if settings.mirror_output:
            result = np.ascontiguousarray(result[:, ::-1])
        preview = self._render_preview(item, settings)
        if output is not None:
            if output.send(result, fps=item.camera_fps or None):
                self._clear("vcam")
            elif output.error and output is self._output:  # not one `set_output` closed meanwhile
                self._report("vcam", output.error)
        finished = time.monotonic()
        self._record("output", finished - started)
        if animated and fresh:
            # Latency is measured when a result first goes out; repeating it until the next one
            # (a model slower than the camera) shows as the model frame rate instead.
            self._record("latency", finished - origin)
        stats = self.stats()
        if settings.show_stats:
            self._draw_stats(preview, stats)
        with self._lock:
            self._last_output = result
        frame = PipelineFrame(preview=preview, output=result, stats=stats, animated=animated)
        for callback in list(self._listeners):
            try:
                callback(frame)
            except Exception:
                log.exception("A frame listener failed")

    def _render_preview(self, item: _Captured, settings: PipelineSettings) -> np.ndarray:
        preview = item.frame.copy()
        with self._lock:
            avatar = self._avatar_image
        if settings.overlay_opacity > 0 and avatar is not None:
            blend_into(preview, avatar, item.crop, settings.overlay_opacity)
        if settings.show_landmarks:
            landmarks = self._frame_landmarks
            if landmarks is not None and time.monotonic() - landmarks.t < LANDMARKS_MAX_AGE:
                radius = max(1, round(item.crop.side / 160))
                for x, y in landmarks.points:
                    cv2.circle(preview, (round(x), round(y)), radius, LANDMARK_COLOR, -1, cv2.LINE_AA)
        x0, y0, x1, y1 = item.crop.corners()
        color = SMART_CROP_COLOR if settings.smart_crop else CROP_COLOR
        cv2.rectangle(preview, (x0, y0), (x1 - 1, y1 - 1), color, max(1, preview.shape[0] // 240))
        if settings.mirror_preview:
            preview = np.ascontiguousarray(preview[:, ::-1])
        if settings.show_landmarks and self._landmarks.unavailable:
            self._draw_text(preview, ["landmarks unavailable"], bottom=True)
        return preview

    def _draw_stats(self, preview: np.ndarray, stats: PipelineStats) -> None:
        lines = [
            f"camera {stats.camera_fps:.1f} fps  model {stats.model_fps:.1f} fps",
            f"capture {stats.capture_ms:.0f}  crop {stats.crop_ms:.0f}  model {stats.model_ms:.0f}  "
            f"output {stats.output_ms:.0f} ms",
            f"latency {stats.latency_ms:.0f} ms  device {stats.device}",
        ]
        if stats.best_frame_score is not None:
            lines.append(f"best pose {stats.best_frame_score:.2f}")
        self._draw_text(preview, lines)

    @staticmethod
    def _draw_text(image: np.ndarray, lines: list[str], bottom: bool = False) -> None:
        scale = max(0.4, image.shape[0] / 900)
        step = round(28 * scale) + 4
        y = image.shape[0] - step * len(lines) if bottom else step
        for line in lines:
            cv2.putText(image, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
            y += step
