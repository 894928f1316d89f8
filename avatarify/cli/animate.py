"""`avatarify animate AVATAR DRIVING_VIDEO -o OUT.mp4|FOLDER/`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_model_arguments, model_options, remote_options
from ..core.errors import AvatarifyError



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate a photo with a driving video into an mp4 or PNG frames",
        description="Animate AVATAR (a photo) with DRIVING_VIDEO and write the result to an mp4 file, which keeps "
        "the video's frame rate, frame count and audio, or to a folder of lossless PNG frames (000001.png, ...).",
    )
    parser.add_argument("avatar", type=Path, help="the photo to animate")
    parser.add_argument("driving_video", type=Path, help="a video of a talking face")
    parser.add_argument(
        "-o", "--output", required=True,
        help="the mp4 file to write, or a folder for PNG frames (ends with /, exists, or has no extension)",
    )
    parser.add_argument("--absolute", action="store_true", help="absolute keypoints instead of relative motion")
    parser.add_argument("--no-adapt-scale", action="store_true", help="do not adapt the motion to the face size")
    parser.add_argument(
        "--no-crop", action="store_true", help="use the avatar's and the video's centre squares as they are, no face crop"
    )
    parser.add_argument("--side-by-side", action="store_true", help="write driving | result")
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.files import check_writable_output
    from ..core.frame import MotionOptions
    from ..core.images import read_image
    from ..core.png_frames import check_frames_folder, names_a_folder
    from ..core.video import probe_video
    from ..offline.animate import animate_video

    as_frames = names_a_folder(args.output)
    # The output must not be either input, by whatever path or link: writing it would destroy that input.
    output = (
        check_frames_folder(args.output) if as_frames
        else check_writable_output(args.output, inputs=(args.avatar, args.driving_video))
    )  # fmt: skip
    avatar = read_image(args.avatar)
    info = probe_video(args.driving_video)
    motion = MotionOptions(relative=not args.absolute, adapt_movement_scale=not args.no_adapt_scale)
    predictor = _predictor(args, motion)
    try:
        written = animate_video(
            predictor, avatar, info, output, crop=not args.no_crop, side_by_side=args.side_by_side,
            as_frames=as_frames,
        )
    finally:
        predictor.close()
    if as_frames:
        print(f"Wrote {info.frame_count} PNG frames to {written}.")
    else:
        audio = ", with audio" if info.has_audio else ""
        print(f"Wrote {written} ({info.frame_count} frames at {info.fps:g} fps{audio}).")
    return 0


def _predictor(args: argparse.Namespace, motion):
    """The local model, or a strict remote one: a rendered file must never contain a stand-in frame."""
    remote = remote_options(args)
    if remote is None:
        from ..model.loader import create_predictor

        return create_predictor(model_options(args), motion)
    from ..remote.client import CONNECT_WAIT, connect

    predictor = connect(remote, motion, strict=True, wait=CONNECT_WAIT)
    if predictor.state != "connected":
        predictor.close()
        raise AvatarifyError(
            f"The worker at {remote.address} does not answer; start `avatarify worker` there or check the address."
        )
    return predictor
