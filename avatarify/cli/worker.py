"""`avatarify worker` (serve the model to other machines, on this machine's model or a Ray Serve deployment),
`avatarify worker status` and `avatarify worker keys`."""
from __future__ import annotations

import argparse
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.loader import ModelOptions
from ..remote import CLIENT_TIMEOUT, DEFAULT_BIND, MAX_CLIENTS, MAX_CLIENTS_PER_PEER, RAY_MAX_CLIENTS
from .options import DEFAULT_KEYS, add_model_arguments, keys_dir, model_options

if TYPE_CHECKING:  # the parser stays light: the serving modules load only when --ray is used
    from ..remote.serve.options import RayOptions


def _number(value: str, zero_allowed: bool, meaning: str) -> float:
    """`value` as a finite number above 0 (or from 0, with `zero_allowed`); else what it should be."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and (number >= 0 if zero_allowed else number > 0)):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of {meaning}")
    return number


def _seconds(value: str) -> float:
    return _number(value, zero_allowed=False, meaning="seconds above 0")


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0")
    return int(value)


def _amount(value: str) -> float:
    return _number(value, zero_allowed=True, meaning="0 or more")


def _range(value: str) -> tuple[int, int]:
    from ..remote.serve.options import parse_autoscale

    try:
        return parse_autoscale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    parser.add_argument(
        "--max-clients", type=_count, metavar="N",
        help=f"clients served at once ({MAX_CLIENTS}; with --ray {RAY_MAX_CLIENTS})",
    )  # fmt: skip
    add_model_arguments(parser, remote=False)
    _add_ray_arguments(parser)
    parser.set_defaults(func=run_worker)
    commands = parser.add_subparsers(dest="worker_command", metavar="COMMAND")
    _add_status_command(commands)
    keys = commands.add_parser(
        "keys",
        help="create the worker's and a client's key pairs",
        description="Create CurveZMQ key pairs for the worker (server.key*) and a client (client.key*), and "
        "authorize the client. Existing keys are kept.",
    )
    keys.add_argument("--dir", type=Path, help="the keys folder (default: the user config folder)")
    keys.set_defaults(func=run_keys)


def _add_status_command(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser(
        "status",
        help="show a running worker's clients, replicas, batches and timings",
        description="Ask a running worker (its front end, with --ray) for its figures: clients, frames, replicas and "
        "their sessions, batch sizes, queue lengths and the median time of each stage.",
    )
    status.add_argument("--address", default=DEFAULT_BIND, metavar="tcp://HOST:PORT", help=f"the worker ({DEFAULT_BIND})")
    status.add_argument(
        "--keys", nargs="?", const=DEFAULT_KEYS, metavar="DIR",
        help="connect with CurveZMQ keys: server.key and a client pair in DIR (default: the user keys folder)",
    )  # fmt: skip
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(func=run_status)


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("serving many users (Ray Serve)")
    group.add_argument("--ray", action="store_true", help="run the model on a Ray Serve deployment: replicas, batching")
    group.add_argument(
        "--ray-address", metavar="auto|HOST:PORT",
        help="the Ray cluster: auto (the one this machine joined with `ray start`) or its head's HOST:PORT; "
        "without it, an embedded Ray on this machine",
    )  # fmt: skip
    scale = group.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=_count, metavar="N", help="model replicas (1)")
    scale.add_argument("--autoscale", type=_range, metavar="MIN..MAX", help="replicas follow the load within MIN..MAX")
    group.add_argument("--max-batch", type=_count, metavar="B", help="frames of different sessions per model call (8)")
    group.add_argument("--batch-wait", type=_amount, metavar="MS", help="longest wait for a batch to fill (2 ms)")
    group.add_argument("--replica-cpus", type=_amount, metavar="C", help="CPUs each replica reserves (1)")
    group.add_argument("--replica-gpus", type=_amount, metavar="G",
                       help="GPUs each replica reserves (1 where the cluster has GPUs, else 0; 0.5 puts two on one)")  # fmt: skip


_RAY_ONLY = ("ray_address", "replicas", "autoscale", "max_batch", "batch_wait", "replica_cpus", "replica_gpus")


def _ray_options(args: argparse.Namespace) -> RayOptions | None:
    from ..core.errors import AvatarifyError
    from ..remote.serve.options import DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BATCH, RayOptions, require_ray

    given = [name for name in _RAY_ONLY if getattr(args, name) is not None]
    if not args.ray:
        if given:
            raise AvatarifyError(f"--{given[0].replace('_', '-')} needs --ray.")
        return None
    if args.engine != "fomm":
        raise AvatarifyError("--ray serves the FOMM engine only (batches across sessions); drop --engine liveportrait.")
    if args.backend == "onnx" or args.provider:
        raise AvatarifyError("--ray runs the torch backend (batches across sessions); drop --backend onnx and --provider.")
    options = RayOptions(
        address=args.ray_address, replicas=args.replicas or 1, autoscale=args.autoscale,
        max_batch=args.max_batch or DEFAULT_MAX_BATCH,
        batch_wait_ms=DEFAULT_BATCH_WAIT_MS if args.batch_wait is None else args.batch_wait,
        replica_cpus=1.0 if args.replica_cpus is None else args.replica_cpus, replica_gpus=args.replica_gpus,
    )  # fmt: skip
    require_ray()
    return options


def _ray_model(args: argparse.Namespace, ray: RayOptions) -> ModelOptions:
    """The model the replicas load. On an embedded Ray its files are looked up here first, so that a missing or
    unreadable one is said at once instead of by replicas that keep failing; on a cluster, each replica's machine
    looks them up itself."""
    from dataclasses import replace

    model = model_options(args)
    if ray.address is not None:
        return model
    from ..model.fomm import DEFAULT_CONFIG, read_model_params
    from ..model.weights import find_checkpoint

    read_model_params(model.config or DEFAULT_CONFIG)
    return replace(model, checkpoint=find_checkpoint(model.checkpoint))


def run_worker(args: argparse.Namespace) -> int:
    from ..remote.keys import load_server_keys
    from ..remote.worker import Worker, check_bind

    directory = keys_dir(args.keys)
    keys = load_server_keys(directory) if directory is not None else None
    check_bind(args.bind, keys)  # before the model loads, so a refusal is immediate
    ray = _ray_options(args)
    if ray is not None:
        from ..remote.serve.backend import RayBackend

        backend = RayBackend(ray, _ray_model(args, ray))
    else:
        from ..model.loader import predictor_factory
        from ..remote.backend import LocalBackend

        factory = predictor_factory(model_options(args))
        backend = LocalBackend(factory, output_size=factory.output_size)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # stop cleanly under service managers
    worker = Worker(
        backend, bind=args.bind, keys=keys, client_timeout=args.client_timeout,
        max_clients=args.max_clients or (RAY_MAX_CLIENTS if ray else MAX_CLIENTS),
        max_clients_per_peer=args.max_clients_per_peer,
    )  # fmt: skip
    worker.serve(stop)
    return 0


def run_status(args: argparse.Namespace) -> int:
    import json

    from ..remote.keys import load_client_keys
    from ..remote.monitor import describe, query_status

    directory = keys_dir(args.keys)
    report = query_status(args.address, load_client_keys(directory) if directory is not None else None)
    print(json.dumps(report, indent=2) if args.json else "\n".join(describe(report)))
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
