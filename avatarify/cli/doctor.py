"""`avatarify doctor`: a report of this installation to read or paste into a bug report."""
from __future__ import annotations

import argparse

from .options import add_model_arguments, model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..session.doctor import DOCTOR_FRAMES

    parser = subparsers.add_parser(
        "doctor",
        help="report platform, devices, backends and their speed, virtual camera and cameras",
        description="Print where this installation stands: platform, Python, torch and its devices, ONNX Runtime "
        "and its providers, the backend `auto` picks and why, a timing of each available backend (vox-256 with "
        "random weights when no checkpoint is found), the virtual camera and the cameras. Paste it into bug reports.",
    )
    parser.add_argument(
        "--frames", type=int, default=DOCTOR_FRAMES, metavar="N",
        help=f"frames timed per backend ({DOCTOR_FRAMES}; 0 skips the timing, which exports and runs each backend)",
    )
    add_model_arguments(parser, remote=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..session.doctor import build_report

    print(build_report(model_options(args), frames=max(args.frames, 0)))
    return 0
