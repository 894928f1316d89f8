"""A session: the one place that builds, owns and reports on every part of a real-time avatar session.

Camera, model (local or on a worker), face landmarks, virtual camera and the pipeline are opened here from
the settings and this session's options, replaced when the settings change, and closed here. Slow opens run in
the background, each with a generation token so a later request always wins. Each part reports a status the
window and `avatarify run` show. Qt-free.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..core.errors import AvatarifyError, CheckpointError
from ..core.settings import Settings, SettingsModel
from ..core.status import COMPONENTS, OFF, ComponentStatus, State, running, starting
from ..model.loader import model_installed
from ..pipeline.avatars import AvatarLibrary
from ..pipeline.camera import CameraError
from ..pipeline.pipeline import Pipeline
from . import status as describe
from .avatars import AvatarChoice
from .openers import Openers
from .options import SessionOptions
from .slot import Slot

log = logging.getLogger(__name__)

CAMERA_RETRY_INTERVAL = 2.0
WATCH_INTERVAL = 0.25
SETTLE_POLL = 0.05
CLOSE_TIMEOUT = 3.0
CAMERA_FIELDS = ("camera", "camera_width", "camera_height")
VCAM_FIELDS = ("vcam_enabled", "vcam_device", "vcam_backend")
MODEL_FIELDS = ("engine", "model_device", "checkpoint")
LANDMARK_FIELDS = ("show_landmarks", "find_best_frame")
StatusListener = Callable[[str, ComponentStatus], None]


class Session:
    """Owns the pipeline and its parts; `start` opens them, `close` releases them all within a timeout."""

    def __init__(
        self,
        settings: SettingsModel,
        options: SessionOptions = SessionOptions(),
        library: AvatarLibrary | None = None,
        openers: Openers = Openers(),
    ) -> None:
        self.settings = settings
        self.options = options
        self.openers = openers
        self.pipeline = Pipeline(settings=settings.value)
        self.avatars = AvatarChoice(
            library if library is not None else AvatarLibrary.default(options.avatar), self._avatar_chosen
        )
        self.camera_spec: str | None = options.camera
        self._listeners: list[StatusListener] = []
        self._reported: dict[str, ComponentStatus] = {}
        self._report_lock = threading.Lock()
        self._loaded_checkpoint: str | None = None
        # Why the last model load failed, in the exception's own words (a command line prints those).
        self.model_error: Exception | None = None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="session status", daemon=True)
        self.slots = {
            "camera": Slot("camera", self.pipeline.set_camera, self._changed),
            "model": Slot("model", self.pipeline.set_predictor, self._changed),
            "landmarks": Slot("landmarks", self.pipeline.set_landmarks, self._changed),
            "vcam": Slot("vcam", self.pipeline.set_output, self._changed),
        }
        self._observers = [
            settings.observe(lambda _old, new: self.pipeline.apply(new)),
            settings.observe(lambda _old, _new: self._camera_chosen(), CAMERA_FIELDS),
            settings.observe(lambda _old, _new: self.open_vcam(), VCAM_FIELDS),
            settings.observe(self._model_settings_changed, MODEL_FIELDS),
            settings.observe(lambda _old, _new: self._ensure_landmarks(), LANDMARK_FIELDS),
        ]
        self.pipeline.problems.add_listener(lambda _topic, _message: self._changed())

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self, model: bool = True) -> list[str]:
        """Drive the first avatar, open the camera, load the model (unless `model` is False), open the virtual
        camera, start the pipeline. Returns what the user should hear about the avatar chosen, if anything."""
        notices = self._choose_first_avatar()
        self.open_camera()
        if model:
            self.load_model()
        self.open_vcam()
        self._ensure_landmarks()
        self.pipeline.start()
        self._watcher.start()
        return notices

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Stop the pipeline and close every part within `timeout` seconds in all; False if something lingers."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        for disconnect in self._observers:
            disconnect()
        stopped = self.pipeline.stop(timeout=max(0.1, deadline - time.monotonic()))
        closed = [slot.close(deadline) for slot in self.slots.values()]
        return stopped and all(closed)

    # -- status -----------------------------------------------------------------------------------------------

    def add_status_listener(self, callback: StatusListener) -> None:
        """Call `callback(component, status)` (on any thread) whenever a component's status changes."""
        self._listeners.append(callback)

    def statuses(self) -> dict[str, ComponentStatus]:
        """Every component's current status, in the order of `COMPONENTS`."""
        problems = self.pipeline.problems.current()
        snapshot = self.pipeline.snapshot
        model = self.slots["model"].status
        predictor = snapshot.predictor
        remote = self.options.remote
        worker = OFF
        if remote is not None and predictor is not None:
            worker = describe.worker_status(predictor.state, remote.address, getattr(predictor, "problem", None))
        camera = self.slots["camera"].status
        if problems.get("camera") or problems.get("capture"):
            camera = describe.camera_failed(problems.get("camera") or problems["capture"])
        if problems.get("model") and remote is None:
            model = describe.failed_on_frames(model, problems["model"])
        detector = snapshot.landmarks
        landmarks = describe.landmark_status(getattr(detector, "state", None), snapshot.wants_landmarks)
        vcam = describe.vcam_status(snapshot.output) if self.settings.value.vcam_enabled else OFF
        found = {"camera": camera, "model": model, "worker": worker, "landmarks": landmarks, "vcam": vcam}
        return {name: found[name] for name in COMPONENTS}

    def settled(self, component: str, timeout: float) -> ComponentStatus:
        """Wait up to `timeout` s while `component` is starting; its status then (STARTING if it never settled)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.statuses()[component]
            if status.state is not State.STARTING or time.monotonic() >= deadline or self._stop.is_set():
                return status
            time.sleep(SETTLE_POLL)

    def _changed(self, *_: object) -> None:
        """Tell listeners about the components whose status differs from what they last heard."""
        with self._report_lock:
            current = self.statuses()
            changed = [(n, s) for n, s in current.items() if self._reported.get(n) != s]
            self._reported.update(changed)
        for name, status in changed:
            for callback in list(self._listeners):
                try:
                    callback(name, status)
                except Exception:
                    log.exception("A status listener failed")

    def _watch(self) -> None:
        # States that change without an event (a worker connecting, a device opening with the first frame).
        while not self._stop.wait(WATCH_INTERVAL):
            self._changed()

    # -- camera -----------------------------------------------------------------------------------------------

    def _camera_chosen(self) -> None:
        self.camera_spec = None  # a camera chosen in the window replaces the command line's
        self.open_camera()

    def open_camera(self) -> None:
        """Open this session's camera (else the settings'); one that is not there is tried again every 2 s."""
        spec = self.camera_spec or self.settings.value.camera
        slot = self.slots["camera"]
        slot.run(slot.begin(starting(f"Opening camera {spec}…")), lambda token: self._open_camera(token, spec))

    def _open_camera(self, token: int, spec: str) -> None:
        settings, options = self.settings.value, self.options
        width = options.camera_width or settings.camera_width
        height = options.camera_height or settings.camera_height
        slot = self.slots["camera"]
        while slot.is_current(token) and not self._stop.is_set():
            try:
                camera = self.openers.camera(spec, width, height, options.camera_fps)
            except CameraError as exc:
                slot.fail(token, describe.camera_failed(str(exc)))
                self._stop.wait(CAMERA_RETRY_INTERVAL)
                continue
            slot.finish(token, camera, running(camera.name))
            return

    # -- model ------------------------------------------------------------------------------------------------

    def load_model(self, checkpoint: Path | None = None) -> None:
        """Load the model (from `checkpoint`, a file the user located, else the usual places) or connect to the
        worker, in the background."""
        slot = self.slots["model"]
        message = "Connecting to the worker…" if self.options.remote else "Loading the model…"
        slot.run(slot.begin(starting(message)), lambda token: self._load_model(token, checkpoint))

    def _load_model(self, token: int, located: Path | None) -> None:
        slot, settings = self.slots["model"], self.settings.value
        motion = self.pipeline.snapshot.motion
        if self.options.remote is not None:
            predictor = self.openers.remote_model(self.options.remote, motion)
            slot.finish(token, predictor, describe.model_running(f"the worker at {self.options.remote.address}"))
            return
        remembered = Path(settings.checkpoint) if settings.checkpoint and located is None else None
        try:
            predictor, note = self._open_local(located or remembered, settings, remembered is not None)
        except Exception as exc:  # every failure becomes a status, never a crash
            log.warning("The model could not be loaded: %s", exc, exc_info=not isinstance(exc, AvatarifyError))
            if slot.fail(token, describe.model_failed(exc)):
                self.model_error = exc
            return
        self.model_error = None
        status = describe.model_running(predictor.device_name, note, getattr(predictor, "status_note", ""))
        if slot.finish(token, predictor, status) and located:
            self._loaded_checkpoint = str(located)
            self.settings.update(checkpoint=str(located))  # remembered only once it loaded

    def _open_local(self, checkpoint: Path | None, settings: Settings, remembered: bool):
        """The local predictor; a remembered checkpoint that is gone or broken falls back to the usual lookup."""
        motion = self.pipeline.snapshot.motion
        try:
            chosen = self.options.model(settings.engine, settings.model_device, checkpoint)
            return self.openers.local_model(chosen, motion), ""
        except CheckpointError as exc:
            if not remembered or self.options.checkpoint is not None:
                raise
            log.warning("The remembered checkpoint %s cannot be used (%s); looking in the usual places.", checkpoint, exc)
        predictor = self.openers.local_model(self.options.model(settings.engine, settings.model_device, None), motion)
        self._loaded_checkpoint = ""
        self.settings.update(checkpoint="")
        return predictor, f"the remembered checkpoint {checkpoint.name} could not be used"

    def _model_settings_changed(self, old: Settings, new: Settings) -> None:
        if old.engine != new.engine and new.checkpoint:
            self.settings.update(checkpoint="")  # a file remembered for one engine means nothing to the other
            return  # that change loads the model
        if (old.engine, old.model_device) == (new.engine, new.model_device) and new.checkpoint == self._loaded_checkpoint:
            return  # the session itself just remembered the checkpoint it loaded
        self.load_model(Path(new.checkpoint) if new.checkpoint else None)

    # -- virtual camera, landmarks, avatar --------------------------------------------------------------------

    def open_vcam(self) -> None:
        """Open the virtual camera the settings name (it starts with the first frame), or remove it when off."""
        slot, settings = self.slots["vcam"], self.settings.value
        if not settings.vcam_enabled:
            slot.clear()
            return
        output = self.openers.vcam(settings)
        slot.finish(slot.begin(starting("Virtual camera: waiting for the first frame")), output, OFF)

    def _ensure_landmarks(self) -> None:
        """Create the landmark network the first time the overlay or find-best-frame needs it."""
        slot = self.slots["landmarks"]
        if slot.current is not None or not self.options.landmarks or not self.pipeline.snapshot.wants_landmarks:
            return
        device = self.pipeline.snapshot.predictor.device_name if self.pipeline.snapshot.predictor else "cpu"
        slot.finish(slot.begin(OFF), self.openers.landmarks(device if device.startswith("cuda") else "cpu"), OFF)

    def reload_landmarks(self) -> None:
        """Make a new landmark detector (after its weights were put in place)."""
        self.slots["landmarks"].clear()
        self._ensure_landmarks()

    def devices(self) -> list[str]:
        """The devices the model can run on here, best first (only the CPU where the model is not installed)."""
        if not model_installed():
            return ["cpu"]
        from ..model.device import available_devices

        return available_devices()

    def _choose_first_avatar(self) -> list[str]:
        """Drive the avatar the command line or the settings name, else the first one."""
        wanted = self.options.avatar or self.settings.value.avatar
        if not len(self.avatars.library):
            return ["No avatars yet: add a picture with “Add…” or drop one on the gallery."]
        notices = []
        try:
            if not (wanted and self.avatars.select_named(wanted)):
                if self.options.avatar:
                    notices.append(f"No avatar called {self.options.avatar!r}; pick one in the gallery or add it.")
                self.avatars.select(0)
        except AvatarifyError as exc:
            notices.append(str(exc))
        return notices

    def _avatar_chosen(self, avatar) -> None:
        self.pipeline.set_avatar(avatar)
        if avatar is not None:
            self.settings.update(avatar=avatar.name)
