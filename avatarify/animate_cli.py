"""`avatarify animate AVATAR DRIVING_VIDEO -o OUT.mp4`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .engine import add_model_arguments
from .errors import AvatarifyError

WORKER_WAIT_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate a photo with a driving video into an mp4",
        description="Animate AVATAR (a photo) with DRIVING_VIDEO and write the result to an mp4 file. "
        "The output keeps the video's frame rate, frame count and audio.",
    )
    parser.add_argument("avatar", type=Path, help="the photo to animate")
    parser.add_argument("driving_video", type=Path, help="a video of a talking face")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the mp4 file to write")
    parser.add_argument("--absolute", action="store_true", help="absolute keypoints instead of relative motion")
    parser.add_argument("--no-adapt-scale", action="store_true", help="do not adapt the motion to the face size")
    parser.add_argument("--no-crop", action="store_true", help="use the driving video's centre square, no face crop")
    parser.add_argument("--side-by-side", action="store_true", help="write driving | result")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .animate import animate_video
    from .engine import predictor_from_args
    from .images import read_image
    from .video import check_writable_output, probe_video

    output = check_writable_output(args.output)
    avatar = read_image(args.avatar)
    info = probe_video(args.driving_video)
    relative, adapt_movement_scale = not args.absolute, not args.no_adapt_scale
    if args.worker:
        from .remote.cli import remote_predictor_from_args

        # A live session may show the camera while a worker is away; a rendered file must not contain such
        # frames: a strict predictor raises instead, and the unfinished file is deleted.
        predictor = remote_predictor_from_args(args, relative, adapt_movement_scale, strict=True)
    else:
        predictor = predictor_from_args(args, relative, adapt_movement_scale)
    try:
        if args.worker and not predictor.wait_until_connected(WORKER_WAIT_S):
            raise AvatarifyError(
                f"The worker at {args.worker} does not answer; start `avatarify worker` there or check the address."
            )
        written = animate_video(
            predictor, avatar, info, output, crop_driving=not args.no_crop, side_by_side=args.side_by_side
        )
    finally:
        if args.worker:
            predictor.close()
    print(f"Wrote {written} ({info.frame_count} frames at {info.fps:g} fps{', with audio' if info.has_audio else ''}).")
    return 0
