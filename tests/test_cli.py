"""The `avatarify` command line: the app is the default command, subcommands are listed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from avatarify.cli.main import COMMANDS, build_parser, with_default_command


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["gui"]),
        (["--camera", "talk.mp4"], ["gui", "--camera", "talk.mp4"]),
        (["-v"], ["-v", "gui"]),
        (["-v", "--camera", "0"], ["-v", "gui", "--camera", "0"]),
        (["animate", "a.jpg", "b.mp4", "-o", "c.mp4"], ["animate", "a.jpg", "b.mp4", "-o", "c.mp4"]),
        (["-v", "run", "--frames", "3"], ["-v", "run", "--frames", "3"]),
        (["--help"], ["--help"]),
    ],
)
def test_the_app_is_the_default_command(argv, expected):
    assert with_default_command(argv) == expected


def test_every_command_parses():
    parser = build_parser()
    for command in COMMANDS:
        with pytest.raises(SystemExit) as info:
            parser.parse_args([command, "--help"])
        assert info.value.code == 0


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "avatarify", "--help"], capture_output=True, text=True, check=True)
    for command in ("animate", "weights", "run", "worker", "gui"):
        assert command in result.stdout
