"""`avatarify run`: the real-time pipeline from the terminal, without a window."""
from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path

from .options import add_model_arguments, session_options

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0
# How long the camera, the model and the worker may take to answer before the run gives up on them.
START_TIMEOUT = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the avatar pipeline without a window (camera -> avatar -> virtual camera)",
        description="Animate an avatar with a camera (or a video file / image folder) and send it to the "
        "virtual camera, without a window. Stop with Ctrl-C.",
    )
    parser.add_argument(
        "--camera", default="0", help="camera index or name, a video file or an image folder (default: 0)"
    )
    parser.add_argument("--width", type=int, help="requested camera width")
    parser.add_argument("--height", type=int, help="requested camera height")
    parser.add_argument("--fps", type=float, help="requested camera frame rate (a file's own rate by default)")
    parser.add_argument("--list-cameras", action="store_true", help="list cameras and virtual cameras, then exit")
    parser.add_argument("--avatar", help="avatar name from the avatar folders, or a picture file (default: the first)")
    parser.add_argument(
        "--vcam", action=argparse.BooleanOptionalAction, default=True, help="send to the virtual camera (default: on)"
    )
    parser.add_argument("--vcam-device", help="virtual camera device, e.g. /dev/video10 or 'OBS Virtual Camera'")
    parser.add_argument("--keep-aspect", action="store_true", help="pad the output to the camera's aspect ratio")
    parser.add_argument("--record", type=Path, metavar="OUT.mp4", help="also record the output to this file")
    parser.add_argument("--frames", type=int, metavar="N", help="stop after N output frames")
    parser.add_argument("--smart-crop", action="store_true", help="follow the face instead of the centred crop")
    parser.add_argument("--passthrough", action="store_true", help="send the camera crop, not the avatar")
    parser.add_argument(
        "--mirror-output", action=argparse.BooleanOptionalAction, default=False, help="mirror the output (default: off)"
    )
    parser.add_argument("--motion-strength", type=float, default=1.0, help="motion multiplier (default: 1.0)")
    parser.add_argument(
        "--absolute", action="store_true", help="absolute keypoint transfer instead of relative (needs matching faces)"
    )
    parser.add_argument(
        "--camera-when-unavailable", action="store_true",
        help="send the camera while the model cannot animate (default: hold the avatar; your face never goes out)",
    )
    add_model_arguments(parser)
    parser.set_defaults(func=run_command)


def _list_devices() -> int:
    from ..pipeline.camera import list_cameras
    from ..pipeline.vcam import list_virtual_cameras

    cameras = list_cameras()
    print("Cameras:" if cameras else "Cameras: none found")
    for camera in cameras:
        print(f"  {camera.index}: {camera.name}")
    virtual = list_virtual_cameras()
    print("Virtual cameras:" if virtual else "Virtual cameras: none found")
    for device in virtual:
        print(f"  {device}")
    return 0


def _avatar_library(spec: str | None):
    """The library with the chosen avatar, checked before anything is opened: (library, index)."""
    from ..core.errors import InputError
    from ..core.paths import user_avatar_dir
    from ..pipeline.avatars import AvatarLibrary

    library = AvatarLibrary.default(spec)
    if not len(library):
        raise InputError(f"No avatars found: put pictures in {user_avatar_dir()} or pass --avatar PICTURE.")
    index = library.find(spec) if spec else 0
    if index is None:
        raise InputError(f"No avatar called {spec!r}; available: {', '.join(library.names)} (or give a picture file).")
    library.image(index)  # an unreadable picture fails here, with its own message
    return library, index


def _settings(args: argparse.Namespace):
    from ..core.settings import Settings

    return Settings(
        camera=args.camera,
        vcam_enabled=args.vcam,
        vcam_device=args.vcam_device or "",
        relative=not args.absolute,
        motion_strength=args.motion_strength,
        passthrough=args.passthrough,
        mirror_preview=False,
        mirror_output=args.mirror_output,
        smart_crop=args.smart_crop,
        output_keep_aspect=args.keep_aspect,
        camera_when_unavailable=args.camera_when_unavailable,
    )


def _start(args: argparse.Namespace, library):
    """A started session; stops with the reason when the camera or the model cannot be used at all."""
    from ..core.errors import AvatarifyError
    from ..core.settings import SettingsModel
    from ..remote.client import CONNECT_WAIT
    from ..session import Session

    options = session_options(
        args, avatar=args.avatar, landmarks=False, camera_width=args.width, camera_height=args.height,
        camera_fps=args.fps,
    )  # fmt: skip
    settings = SettingsModel(_settings(args))
    if args.passthrough:
        settings.update(passthrough=True)
    session = Session(settings, options, library)
    session.start(model=not args.passthrough)
    try:
        for component, timeout in (("camera", START_TIMEOUT), ("model", START_TIMEOUT), ("worker", CONNECT_WAIT)):
            status = session.settled(component, timeout)
            if status.failed and not _can_wait(component, status):
                error = session.model_error if component == "model" else None
                raise AvatarifyError(str(error) if error is not None else status.message)
    except BaseException:
        session.close()
        raise
    return session


def _can_wait(component: str, status) -> bool:
    """A worker that does not answer yet may come; a refusal, a missing camera or model will not."""
    return component == "worker" and "does not answer" in status.message


def run_command(args: argparse.Namespace) -> int:
    """Run the pipeline until Ctrl-C or `--frames` output frames."""
    if args.list_cameras:
        return _list_devices()
    from ..core.errors import InputError
    from ..pipeline.recorder import Recorder

    if args.frames is not None and args.frames < 1:
        raise InputError("--frames must be at least 1.")
    library, index = _avatar_library(args.avatar)
    # A recording must never replace its own camera file (inputs that are not files are ignored).
    recorder = None
    if args.record:
        recorder = Recorder(args.record, fps=args.fps or 25.0, inputs=[Path(args.camera).expanduser()])
    session = _start(args, library)
    done = threading.Event()
    counted = FrameCounter(args.frames, recorder, done)
    session.pipeline.add_listener(counted)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: done.set())
    camera = session.pipeline.snapshot.camera
    if recorder is not None and camera is not None:
        recorder.fps = camera.fps  # the recording plays at the camera's rate, known once it is open
    try:
        log.info("Running: camera %s, avatar %s. Press Ctrl-C to stop.", session.camera_spec or args.camera,
                 library.names[index])  # fmt: skip
        next_status = time.monotonic() + STATUS_INTERVAL
        while not done.wait(0.2):
            if time.monotonic() >= next_status:
                next_status += STATUS_INTERVAL
                stats = session.pipeline.stats()
                log.info("%s | virtual camera: %s", stats.summary(), stats.vcam_state)
    except KeyboardInterrupt:
        log.info("Stopping.")
    finally:
        session.close()
        if recorder is not None:
            recorder.close()
    if counted.failure is not None:
        raise counted.failure
    where = "sent to the virtual camera" if args.vcam else "made (no virtual camera)"
    log.info("%d frames %s.", counted.frames, where)
    return 0


class FrameCounter:
    """Counts (and records) one output per camera frame once it is animated; sets `done` after `limit`."""

    def __init__(self, limit: int | None, recorder, done: threading.Event) -> None:
        self.limit, self.recorder, self.done = limit, recorder, done
        self.frames = 0
        self.failure: Exception | None = None

    def __call__(self, frame) -> None:
        # On the output thread, so that --frames N gives exactly N.
        from ..core.errors import AvatarifyError

        if not frame.tick or not frame.animated or self.done.is_set():
            return
        if self.recorder is not None:
            try:
                self.recorder.write(frame.output)
            except AvatarifyError as exc:
                self.failure = exc
                self.done.set()
                return
        self.frames += 1
        if self.limit is not None and self.frames >= self.limit:
            self.done.set()
