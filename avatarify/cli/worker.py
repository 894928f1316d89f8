"""`avatarify worker` (serve the model to other machines) and `avatarify worker keys`."""
from __future__ import annotations

import argparse
import math
import signal
import threading
from pathlib import Path

from ..remote import CLIENT_TIMEOUT, DEFAULT_BIND, MAX_CLIENTS_PER_PEER
from .options import DEFAULT_KEYS, add_model_arguments, keys_dir, model_options


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return seconds


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0")
    return int(value)


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
    parser.add_argument(
        "--max-clients-per-peer",
        type=_count,
        default=MAX_CLIENTS_PER_PEER,
        metavar="N",
        help=f"places one client key (with --keys) or one address may hold ({MAX_CLIENTS_PER_PEER}); over an SSH "
        "tunnel every client comes from 127.0.0.1",
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


def run_worker(args: argparse.Namespace) -> int:
    from ..model.loader import predictor_factory
    from ..remote.keys import load_server_keys
    from ..remote.worker import Worker, check_bind

    directory = keys_dir(args.keys)
    keys = load_server_keys(directory) if directory is not None else None
    check_bind(args.bind, keys)  # before the model loads, so a refusal is immediate
    factory = predictor_factory(model_options(args))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # stop cleanly under service managers
    worker = Worker(
        factory, bind=args.bind, keys=keys, client_timeout=args.client_timeout,
        max_clients_per_peer=args.max_clients_per_peer, output_size=factory.output_size,
    )
    worker.serve(stop)
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from ..core.paths import keys_dir as default_keys_dir
    from ..remote.keys import AUTHORIZED_DIR, create_keys

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
