"""The `avatarify` command: the desktop app by default, and subcommands for everything else."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..core.errors import AvatarifyError

# Subcommand name -> module with `register(subparsers)`; each module keeps heavy imports
# inside its handler so that `avatarify --help` stays fast.
COMMANDS = {
    "animate": "avatarify.cli.animate",
    "weights": "avatarify.cli.weights",
    "run": "avatarify.cli.run",
    "worker": "avatarify.cli.worker",
    "gui": "avatarify.cli.gui",
    "export-onnx": "avatarify.cli.export_onnx",
    "doctor": "avatarify.cli.doctor",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatarify", description="Real-time photo avatars for video calls (First Order Motion Model)."
    )
    parser.add_argument("--version", action="version", version=f"avatarify {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


TOP_LEVEL_FLAGS = {"-v", "--verbose"}


def with_default_command(argv: list[str]) -> list[str]:
    """`avatarify [-v] [GUI OPTIONS]` means `avatarify [-v] gui [GUI OPTIONS]`: the app is the default command."""
    leading = 0
    while leading < len(argv) and argv[leading] in TOP_LEVEL_FLAGS:
        leading += 1
    rest = argv[leading:]
    if not rest and leading == 0:
        return ["gui"]
    if rest and (rest[0] in COMMANDS or rest[0] in {"-h", "--help", "--version"}):
        return argv
    return [*argv[:leading], "gui", *rest]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; user errors print one line and exit with status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(with_default_command(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args.func(args) or 0)
    except AvatarifyError as exc:
        print(f"avatarify: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
