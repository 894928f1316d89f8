"""`avatarify gui`: the desktop app (also what plain `avatarify` starts)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_model_arguments, session_options


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
    # "Not given" rather than defaults, so that the engine and device saved in the settings apply.
    parser.set_defaults(func=run, device=None, engine=None)


def run(args: argparse.Namespace) -> int:
    from ..gui.app import LaunchOptions, run as run_app

    options = session_options(args, camera=args.camera, avatar=args.avatar)
    return run_app(LaunchOptions(session=options, settings_path=args.settings))
