"""CurveZMQ key pairs for the worker and its clients: creating them safely and loading them onto sockets.

A keys folder holds `server.key` / `server.key_secret` (the worker's pair), `client.key` /
`client.key_secret` (a client's pair) and `authorized_clients/` (the public keys the worker accepts).
The worker needs the server pair and `authorized_clients/`; a client needs `server.key` and its own pair.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from ..core.errors import AvatarifyError
from ..core.paths import keys_dir as default_keys_dir

SERVER_NAME = "server"
CLIENT_NAME = "client"
AUTHORIZED_DIR = "authorized_clients"


class WorkerKeysError(AvatarifyError):
    """Worker keys are missing or unreadable."""


def public_key_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.key"


def secret_key_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.key_secret"


@dataclass(frozen=True)
class ServerKeys:
    """The worker's key pair and the folder of client public keys it accepts."""

    public: bytes
    secret: bytes
    authorized_dir: Path

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CurveZMQ server with this key pair (set before binding)."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_server = True


@dataclass(frozen=True)
class ClientKeys:
    """A client's key pair and the public key of the worker it trusts."""

    public: bytes
    secret: bytes
    server_public: bytes

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CurveZMQ client of that worker (set before connecting)."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server_public


def create_keys(directory: Path | None = None) -> list[Path]:
    """Create the server and client key pairs in `directory` where missing and authorize the client.

    Existing key pairs and authorized keys are kept (a new client key is authorized under a free name).
    Each file appears whole (written aside, then moved in place); secret keys are readable by the user only.
    Returns the files written.
    """
    directory = Path(directory) if directory is not None else default_keys_dir()
    try:
        return _create_keys(directory)
    except OSError as exc:
        raise WorkerKeysError(
            f"Cannot write worker keys in {directory}: {exc.strerror or exc}. Choose another folder with --dir."
        ) from None


def _create_keys(directory: Path) -> list[Path]:
    authorized = directory / AUTHORIZED_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized.mkdir(mode=0o700, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(dir=directory, prefix=".new-keys-") as scratch:
        for name in (SERVER_NAME, CLIENT_NAME):
            if secret_key_path(directory, name).is_file():
                continue
            public, secret = zmq.auth.create_certificates(scratch, name)
            os.chmod(secret, 0o600)
            # The secret file holds the public key too, so the pair is complete once it is in place.
            for source, target in (
                (public, public_key_path(directory, name)),
                (secret, secret_key_path(directory, name)),
            ):
                os.replace(source, target)
                written.append(target)
        client_public = public_key_path(directory, CLIENT_NAME).read_bytes()
        if not any(key.read_bytes() == client_public for key in authorized.glob("*.key")):
            # Other keys there may be clients still in use: the new one goes beside them, under a free name.
            authorized_key = public_key_path(authorized, CLIENT_NAME)
            number = 1
            while authorized_key.exists():
                number += 1
                authorized_key = public_key_path(authorized, f"{CLIENT_NAME}-{number}")
            staged = Path(scratch) / "authorized.key"
            staged.write_bytes(client_public)
            os.replace(staged, authorized_key)
            written.append(authorized_key)
    return written


def _read_pair(path: Path) -> tuple[bytes, bytes]:
    if not path.is_file():
        raise WorkerKeysError(
            f"Worker key {path} does not exist. Create keys with `avatarify worker keys --dir {path.parent}` "
            "and copy the files the other machine needs (see README)."
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise WorkerKeysError(
            f"Worker key {path} is unreadable ({exc}); create new keys with `avatarify worker keys`."
        ) from None
    if not public or (path.suffix == ".key_secret" and not secret):
        raise WorkerKeysError(f"Worker key {path} holds no key; create new keys with `avatarify worker keys`.")
    return public, secret or b""


def load_server_keys(directory: Path | None = None) -> ServerKeys:
    """The worker's keys from a keys folder; WorkerKeysError says what is missing."""
    directory = Path(directory) if directory is not None else default_keys_dir()
    public, secret = _read_pair(secret_key_path(directory, SERVER_NAME))
    authorized = directory / AUTHORIZED_DIR
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise WorkerKeysError(
            f"No client public keys in {authorized}: the worker would accept nobody. "
            f"Run `avatarify worker keys --dir {directory}` or copy a client's client.key there."
        )
    return ServerKeys(public=public, secret=secret, authorized_dir=authorized)


def load_client_keys(directory: Path | None = None) -> ClientKeys:
    """A client's keys from a keys folder; WorkerKeysError says what is missing."""
    directory = Path(directory) if directory is not None else default_keys_dir()
    public, secret = _read_pair(secret_key_path(directory, CLIENT_NAME))
    server_public, _ = _read_pair(public_key_path(directory, SERVER_NAME))
    return ClientKeys(public=public, secret=secret, server_public=server_public)
