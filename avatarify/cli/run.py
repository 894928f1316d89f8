"""`avatarify run`: the real-time pipeline from the terminal, without a window."""
from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path

from .options import add_model_arguments, model_options, remote_options

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0


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
    from ..core.errors import InputError
    from ..pipeline.avatars import AvatarLibrary, default_user_avatar_dir

    library = AvatarLibrary.default(spec)
    if not len(library):
        raise InputError(
            f"No avatars found: put pictures in {default_user_avatar_dir()} or pass --avatar PICTURE."
        )
    index = library.find(spec) if spec else 0
    if index is None:
        raise InputError(f"No avatar called {spec!r}; available: {', '.join(library.names)} (or give a picture file).")
    return library, index


def run_command(args: argparse.Namespace) -> int:
    """Run the pipeline until Ctrl-C or `--frames` output frames."""
    if args.list_cameras:
        return _list_devices()
    from ..core.errors import AvatarifyError, InputError
    from ..pipeline.camera import open_source
    from ..pipeline.pipeline import Pipeline
    from ..pipeline.recorder import Recorder
    from ..pipeline.settings import PipelineSettings
    from ..pipeline.vcam import VirtualCameraOutput

    if args.frames is not None and args.frames < 1:
        raise InputError("--frames must be at least 1.")
    library, avatar_index = _avatar_library(args.avatar)
    library.image(avatar_index)  # an unreadable picture fails here, with its own message
    recorder = Recorder(args.record, fps=args.fps or 25.0) if args.record else None
    predictor = None if args.passthrough else _predictor(args)
    settings = PipelineSettings(
        relative=not args.absolute,
        motion_strength=args.motion_strength,
        passthrough=args.passthrough,
        mirror_output=args.mirror_output,
        smart_crop=args.smart_crop,
        output_keep_aspect=args.keep_aspect,
    )
    camera = open_source(args.camera, args.width, args.height, args.fps)
    output = VirtualCameraOutput(device=args.vcam_device, fps=camera.fps) if args.vcam else None
    pipeline = Pipeline(camera, library, predictor, output=output, settings=settings)
    if recorder is not None:
        recorder.fps = camera.fps  # the recording plays at the camera's rate, known once it is open
    done = threading.Event()
    produced = 0
    failures: list[AvatarifyError] = []

    def on_frame(frame) -> None:
        # Frames are counted and recorded here, on the output thread, so that --frames N gives exactly N.
        nonlocal produced
        if not frame.animated or done.is_set():
            return
        if recorder is not None:
            try:
                recorder.write(frame.output)
            except AvatarifyError as exc:
                failures.append(exc)
                done.set()
                return
        produced += 1
        if args.frames is not None and produced >= args.frames:
            done.set()

    try:
        pipeline.select_avatar(avatar_index)
        pipeline.add_listener(on_frame)
        log.info("Running: camera %s, avatar %s. Press Ctrl-C to stop.", camera.name, library.names[avatar_index])
        pipeline.start()
        next_status = time.monotonic() + STATUS_INTERVAL
        while not done.wait(0.2):
            if time.monotonic() >= next_status:
                next_status += STATUS_INTERVAL
                stats = pipeline.stats()
                log.info("%s | virtual camera: %s", stats.summary(), stats.vcam_state)
    except KeyboardInterrupt:
        log.info("Stopping.")
    finally:
        pipeline.stop()  # also closes the predictor
        if recorder is not None:
            recorder.close()
    if failures:
        raise failures[0]
    log.info("%d frames sent.", produced)
    return 0


def _predictor(args: argparse.Namespace):
    remote = remote_options(args)
    if remote is not None:
        from ..remote.client import CONNECT_TIMEOUT, connect

        return connect(remote, wait=CONNECT_TIMEOUT)
    from ..model.loader import create_predictor

    return create_predictor(model_options(args))
