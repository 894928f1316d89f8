"""`avatarify worker` (serve the model to other machines), `avatarify worker keys`, and clients' --worker options."""
from __future__ import annotations

import argparse
import math
import signal
import threading
from pathlib import Path
from urllib.parse import urlsplit

from ..engine import add_model_arguments
from ..errors import AvatarifyError
from . import CLIENT_TIMEOUT, DEFAULT_BIND

# Stands for "the default keys folder" until a handler resolves it (resolving needs zmq and platformdirs).
DEFAULT_KEYS = "default"


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return seconds


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the model for other machines (remote GPU worker)",
        description="Serve the model to avatarify clients (`avatarify --worker tcp://HOST:PORT`) over ZeroMQ. "
        "Listens on loopback by default; other addresses need keys (see `avatarify worker keys`).",
    )
    parser.add_argument(
        "--bind", default=DEFAULT_BIND, metavar="tcp://HOST:PORT", help=f"where to listen ({DEFAULT_BIND})"
    )
    parser.add_argument(
        "--keys",
        nargs="?",
        const=DEFAULT_KEYS,
        metavar="DIR",
        help="require CurveZMQ keys: the server pair and authorized_clients/ in DIR (default: the user keys folder)",
    )
    parser.add_argument(
        "--client-timeout",
        type=_seconds,
        default=CLIENT_TIMEOUT,
        metavar="S",
        help=f"forget a client silent this long ({CLIENT_TIMEOUT:g} s)",
    )
    add_model_arguments(parser, remote=False)
    parser.set_defaults(func=run_worker)
    commands = parser.add_subparsers(dest="worker_command", metavar="COMMAND")
    keys = commands.add_parser(
        "keys",
        help="create the worker's and a client's key pairs",
        description="Create CurveZMQ key pairs for the worker (server.key*) and a client (client.key*), and "
        "authorize the client. Existing keys are kept.",
    )
    keys.add_argument("--dir", type=Path, help="the keys folder (default: the user config folder)")
    keys.set_defaults(func=run_keys)


def add_client_arguments(group: argparse._ArgumentGroup) -> None:
    """The options of commands that can use a remote worker instead of the local model."""
    group.add_argument(
        "--worker", metavar="tcp://HOST:PORT", help="run the model on a remote worker (`avatarify worker`)"
    )
    group.add_argument(
        "--worker-keys",
        nargs="?",
        const=DEFAULT_KEYS,
        metavar="DIR",
        help="connect with CurveZMQ keys: server.key and the client pair in DIR (default: the user keys folder)",
    )
    group.add_argument(
        "--worker-transport", choices=("jpeg", "raw"), default="jpeg", help="how frames travel (jpeg, the default)"
    )
    group.add_argument("--worker-jpeg-quality", type=int, default=90, metavar="Q", help="JPEG quality 1-100 (90)")


def _keys_dir(value: str | None) -> Path | None:
    from .keys import default_keys_dir

    if value is None:
        return None
    return default_keys_dir() if value == DEFAULT_KEYS else Path(value).expanduser()


def remote_predictor_from_args(
    args: argparse.Namespace, relative: bool = True, adapt_movement_scale: bool = True, strict: bool = False
):
    """A RemotePredictor for the --worker options (`strict`: see RemotePredictor); AvatarifyError for bad options
    or refused keys."""
    from .client import RemotePredictor
    from .keys import load_client_keys

    parts = urlsplit(args.worker)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = None
    if parts.scheme != "tcp" or port is None:
        raise AvatarifyError(f"--worker {args.worker}: give the worker's address as tcp://HOST:PORT.")
    if not 1 <= args.worker_jpeg_quality <= 100:
        raise AvatarifyError(f"--worker-jpeg-quality {args.worker_jpeg_quality}: choose a quality from 1 to 100.")
    keys_dir = _keys_dir(args.worker_keys)
    return RemotePredictor(
        args.worker,
        keys=load_client_keys(keys_dir) if keys_dir is not None else None,
        encoding=args.worker_transport,
        jpeg_quality=args.worker_jpeg_quality,
        relative=relative,
        adapt_movement_scale=adapt_movement_scale,
        strict=strict,
    )


def run_worker(args: argparse.Namespace) -> int:
    from ..engine import create_predictor
    from ..predictor import Predictor
    from .keys import load_server_keys
    from .worker import Worker, check_bind

    keys_dir = _keys_dir(args.keys)
    keys = load_server_keys(keys_dir) if keys_dir is not None else None
    check_bind(args.bind, keys)  # before the model loads, so a refusal is immediate
    model = create_predictor(args.checkpoint, args.config, args.device, precision=args.precision).model
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # stop cleanly under service managers
    worker = Worker(
        lambda: Predictor(model, precision=args.precision),
        bind=args.bind,
        keys=keys,
        client_timeout=args.client_timeout,
    )
    worker.serve(stop)
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from .keys import AUTHORIZED_DIR, create_keys, default_keys_dir

    directory = args.dir.expanduser() if args.dir else default_keys_dir()
    written = create_keys(directory)
    if written:
        print("Created " + ", ".join(str(path.relative_to(directory)) for path in written) + f" in {directory}.")
    else:
        print(f"Keys already exist in {directory}; nothing changed.")
    print(
        f"Worker machine: server.key, server.key_secret and {AUTHORIZED_DIR}/ "
        f"(then `avatarify worker --keys DIR --bind tcp://0.0.0.0:5557`).\n"
        "Client machine: server.key, client.key and client.key_secret "
        f"(then `avatarify --worker tcp://HOST:5557 --worker-keys {directory}`)."
    )
    return 0
