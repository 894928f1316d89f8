"""`avatarify weights download | verify | where`."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..core.settings import ENGINES
from ..model.weights import CHECKPOINT_MD5, CHECKPOINT_NAME, WEIGHTS_URL_ENV

ENGINE_HELP = "fomm (vox-adv-cpk.pth.tar, the default) or liveportrait (its five files from the Hugging Face hub)"


def _md5(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an md5 (32 hex digits)")
    return text.lower()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="download, check and locate the model weights",
        description="Download, check and locate the model weights: FOMM's vox-adv-cpk.pth.tar, or with "
        "--engine liveportrait LivePortrait's five files.",
    )
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    download = actions.add_parser(
        "download",
        help=f"download {CHECKPOINT_NAME}, or LivePortrait's weights (resumable, checksum verified)",
        description=f"Download {CHECKPOINT_NAME} from the known mirrors in turn, resuming an interrupted download, "
        "verify its md5 and move it into place. The published FOMM weights are CC BY-NC 4.0: non-commercial use "
        "only. With --engine liveportrait: LivePortrait's five files (about 500 MB, MIT licence) from the Hugging "
        "Face repository KwaiVGI/LivePortrait, each checked against the hub's sha256 before it is moved into place.",
    )
    download.add_argument("--engine", choices=ENGINES, default="fomm", help=ENGINE_HELP)
    download.add_argument("--dest", type=Path, help="folder to save into (default: the user data folder)")
    download.add_argument(
        "--url", action="append", metavar="URL",
        help=f"FOMM: download from this URL instead of the known mirrors (repeatable; default: ${WEIGHTS_URL_ENV} "
        "if set)",
    )
    download.add_argument("--md5", type=_md5, help=f"FOMM: expected md5 (default: {CHECKPOINT_MD5})")
    download.add_argument("--name", help=f"FOMM: file name to save as (default: {CHECKPOINT_NAME})")
    download.add_argument(
        "--endpoint", metavar="URL", help="LivePortrait: the Hugging Face hub to use (default: $HF_ENDPOINT, else "
        "huggingface.co)",
    )
    download.add_argument("--revision", default="main", help="LivePortrait: branch, tag or commit (default: main)")
    download.add_argument("--force", action="store_true", help="replace an existing file with another checksum")
    download.set_defaults(func=run_download)

    verify = actions.add_parser(
        "verify",
        help="check that a file is a usable checkpoint",
        description="Check that PATH loads safely as a FOMM checkpoint (plain weights, no code) and fits the model "
        "config, and report whether it is the published vox-adv-cpk.pth.tar; with --engine liveportrait, that the "
        "folder PATH holds LivePortrait's five files and they load safely into the architecture.",
    )
    verify.add_argument("path", type=Path, help="the checkpoint file (LivePortrait: the weights folder)")
    verify.add_argument("--engine", choices=ENGINES, default="fomm", help=ENGINE_HELP)
    verify.add_argument(
        "--config", type=Path, help="model config YAML it must fit (default: vox-256, or LivePortrait's published one)"
    )
    verify.add_argument("--md5", type=_md5, help="fail unless the file has this md5")
    verify.set_defaults(func=run_verify)

    where = actions.add_parser(
        "where",
        help="show where the weights are looked for and what is found",
        description="Print the weights lookup order and what would be used; exit status 1 if nothing is found.",
    )
    where.add_argument("--engine", choices=ENGINES, default="fomm", help=ENGINE_HELP)
    where.set_defaults(func=run_where)


def run_download(args: argparse.Namespace) -> int:
    if args.engine == "liveportrait":
        return _download_liveportrait(args)
    from ..model.weights import download_weights

    md5 = args.md5 or CHECKPOINT_MD5
    name = CHECKPOINT_NAME if args.name is None else args.name
    path = download_weights(args.dest, args.url, md5=md5, name=name, force=args.force)
    print(f"{path} is ready (md5 {md5}).")
    return 0


def _download_liveportrait(args: argparse.Namespace) -> int:
    from ..core.errors import AvatarifyError
    from ..model.liveportrait.weights import download_weights

    if args.url or args.md5 or args.name is not None:
        raise AvatarifyError("--url, --md5 and --name are for FOMM's file; LivePortrait takes --endpoint and --revision.")
    folder = download_weights(args.dest, endpoint=args.endpoint, revision=args.revision, force=args.force)
    print(f"{folder} is ready: LivePortrait's five files, sha256 checked (use it with --engine liveportrait).")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if args.engine == "liveportrait":
        from ..model.liveportrait.model import DEFAULT_CONFIG, load_model

        if args.md5:
            from ..core.errors import AvatarifyError

            raise AvatarifyError("--md5 is for FOMM's file; LivePortrait's files are checked by sha256 on download.")
        load_model(args.config, args.path)
        print(f"{args.path}: OK, LivePortrait's five files, plain weights that fit {(args.config or DEFAULT_CONFIG).name}.")
        return 0
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

    if args.engine == "liveportrait":
        from ..model.liveportrait.weights import find_weights_folder as find_checkpoint, lookup_steps

        print("LivePortrait weights lookup order (the first complete folder found is used):")
    else:
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
