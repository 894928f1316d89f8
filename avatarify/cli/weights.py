"""`avatarify weights download | verify | where`."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..model.weights import CHECKPOINT_MD5, CHECKPOINT_NAME, WEIGHTS_URL_ENV


def _md5(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an md5 (32 hex digits)")
    return text.lower()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="download, check and locate the model weights",
        description="Download, check and locate the First Order Motion Model weights (vox-adv-cpk.pth.tar).",
    )
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    download = actions.add_parser(
        "download",
        help=f"download {CHECKPOINT_NAME} (resumable, checksum verified)",
        description=f"Download {CHECKPOINT_NAME} from the known mirrors in turn, resuming an interrupted download, "
        "verify its md5 and move it into place. The published weights are CC BY-NC 4.0: non-commercial use only.",
    )
    download.add_argument("--dest", type=Path, help="folder to save into (default: the user data folder)")
    download.add_argument(
        "--url", action="append", metavar="URL",
        help=f"download from this URL instead of the known mirrors (repeatable; default: ${WEIGHTS_URL_ENV} if set)",
    )
    download.add_argument("--md5", type=_md5, default=CHECKPOINT_MD5, help="expected md5 (default: %(default)s)")
    download.add_argument("--name", default=CHECKPOINT_NAME, help="file name to save as (default: %(default)s)")
    download.add_argument("--force", action="store_true", help="replace an existing file with another checksum")
    download.set_defaults(func=run_download)

    verify = actions.add_parser(
        "verify",
        help="check that a file is a usable checkpoint",
        description="Check that PATH loads safely as a FOMM checkpoint (plain weights, no code) and fits the model "
        "config, and report whether it is the published vox-adv-cpk.pth.tar.",
    )
    verify.add_argument("path", type=Path, help="the checkpoint file")
    verify.add_argument("--config", type=Path, help="FOMM config YAML it must fit (default: vox-256)")
    verify.add_argument("--md5", type=_md5, help="fail unless the file has this md5")
    verify.set_defaults(func=run_verify)

    where = actions.add_parser(
        "where",
        help="show where the weights are looked for and what is found",
        description="Print the checkpoint lookup order and the file that would be used; exit status 1 if none.",
    )
    where.set_defaults(func=run_where)


def run_download(args: argparse.Namespace) -> int:
    from ..model.weights import download_weights

    path = download_weights(args.dest, args.url, md5=args.md5, name=args.name, force=args.force)
    print(f"{path} is ready (md5 {args.md5}).")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..model.weights import verify_checkpoint

    report = verify_checkpoint(args.path, args.config, md5=args.md5)
    print(f"{report.path}: OK, plain weights that fit {report.config.name}.")
    if report.is_published:
        print(f"md5 {report.md5}: the published {CHECKPOINT_NAME}.")
    else:
        print(f"md5 {report.md5}: not the published {CHECKPOINT_NAME} (md5 {CHECKPOINT_MD5}).")
    return 0


def run_where(args: argparse.Namespace) -> int:
    from ..core.errors import CheckpointError
    from ..model.weights import find_checkpoint, lookup_steps

    print("Checkpoint lookup order (the first file found is used):")
    for number, step in enumerate(lookup_steps(), start=1):
        if step.path is None:
            state = "a flag of the commands that run the model" if step.source == "--checkpoint" else "not set"
            print(f"  {number}. {step.source}: {state}")
        else:
            print(f"  {number}. {step.source}: {step.path} [{'found' if step.found else 'missing'}]")
    try:
        print(f"Using {find_checkpoint()}")
    except CheckpointError as exc:
        print(exc)
        return 1
    return 0
