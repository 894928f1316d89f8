"""`avatarify gui`: the desktop app (also what plain `avatarify` starts)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .options import add_model_arguments

if TYPE_CHECKING:
    from ..gui.devices import ModelOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="start the desktop app (the default command)",
        description="The desktop app: camera preview, avatar output and gallery, sent to a virtual camera. "
        "Without --camera/--avatar/model options the saved settings apply.",
    )
    parser.add_argument(
        "--camera",
        metavar="0|NAME|FILE",
        help="camera index or name, or a video file / image folder played as a camera (for this session)",
    )
    parser.add_argument("--avatar", metavar="NAME|FILE", help="the avatar to drive first: a gallery name or a picture")
    parser.add_argument("--settings", type=Path, metavar="FILE", help="settings file (default: in your config folder)")
    add_model_arguments(parser)
    # "Not given" rather than "auto", so that the device saved in the settings applies.
    parser.set_defaults(func=run, device=None)


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The model options the command line gave."""
    from ..gui.devices import ModelOptions

    return ModelOptions(
        config=args.config,
        checkpoint=args.checkpoint,
        device=args.device,
        precision=args.precision,
        remote=args if getattr(args, "worker", None) else None,
    )


def run(args: argparse.Namespace) -> int:
    from ..gui.app import LaunchOptions, run as run_app

    model = model_options(args)
    return run_app(LaunchOptions(camera=args.camera, avatar=args.avatar, model=model, settings_path=args.settings))
