"""Worker keys (`avatarify worker keys`) and the refusal to serve other machines without them."""
from __future__ import annotations

import stat
import tempfile

import pytest
import zmq
import zmq.auth

from avatarify.cli.main import main
from avatarify.core.paths import keys_dir
from avatarify.remote.keys import (
    WorkerKeysError,
    create_keys,
    load_client_keys,
    load_server_keys,
)
from avatarify.remote.worker import WorkerBindError, check_bind, is_local_endpoint


def test_keys_command_creates_both_pairs_and_authorizes_the_client(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert main(["worker", "keys", "--dir", str(folder)]) == 0
    assert "Created" in capsys.readouterr().out
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == [
        "authorized_clients/client.key",
        "client.key",
        "client.key_secret",
        "server.key",
        "server.key_secret",
    ]
    for secret in ("server.key_secret", "client.key_secret"):
        assert stat.S_IMODE((folder / secret).stat().st_mode) == 0o600
    assert (folder / "authorized_clients" / "client.key").read_bytes() == (folder / "client.key").read_bytes()
    for private in (folder, folder / "authorized_clients"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    server, client = load_server_keys(folder), load_client_keys(folder)
    assert client.server_public == server.public and server.authorized_dir == folder / "authorized_clients"
    assert zmq.auth.load_certificate(folder / "client.key")[0] == client.public
    assert server.secret and client.secret and server.secret != client.secret


def test_keys_go_to_the_user_keys_folder_by_default(capsys):
    assert main(["worker", "keys"]) == 0
    assert str(keys_dir()) in capsys.readouterr().out
    assert sorted(path.name for path in keys_dir().iterdir()) == [
        "authorized_clients", "client.key", "client.key_secret", "server.key", "server.key_secret",
    ]  # fmt: skip
    assert load_client_keys().server_public == load_server_keys().public
    assert create_keys() == []


def test_a_new_nested_folder_is_made_and_the_system_temp_folder_is_not_needed(tmp_path, monkeypatch):
    # Files are staged beside the keys, so that moving them in place never crosses file systems.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-folder"))
    folder = tmp_path / "new" / "nested" / "keys"
    assert len(create_keys(folder)) == 5
    assert load_client_keys(folder).server_public == load_server_keys(folder).public


def test_the_pairs_secure_a_connection(tmp_path):
    create_keys(tmp_path)
    context = zmq.Context.instance()
    server, client = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    try:
        load_server_keys(tmp_path).apply(server)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        load_client_keys(tmp_path).apply(client)
        client.connect(f"tcp://127.0.0.1:{port}")
        assert (server.curve_server, client.curve_server) == (True, False)
        client.send(b"hello")
        assert server.poll(5000), "the CurveZMQ handshake failed"
        assert server.recv_multipart()[1] == b"hello"
    finally:
        server.close(linger=0)
        client.close(linger=0)


def test_existing_keys_are_kept(tmp_path, capsys):
    first = create_keys(tmp_path)
    assert len(first) == 5
    before = {p: p.read_bytes() for p in first}
    assert create_keys(tmp_path) == []
    assert {p: p.read_bytes() for p in first} == before
    assert main(["worker", "keys", "--dir", str(tmp_path)]) == 0
    assert "already exist" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new-keys")]


def test_a_lost_client_pair_is_made_again_and_authorized_beside_the_old_key(tmp_path):
    create_keys(tmp_path)
    server_secret = (tmp_path / "server.key_secret").read_bytes()
    old_authorized = (tmp_path / "authorized_clients" / "client.key").read_bytes()
    (tmp_path / "client.key_secret").unlink()
    written = sorted(str(p.relative_to(tmp_path)) for p in create_keys(tmp_path))
    assert written == ["authorized_clients/client-2.key", "client.key", "client.key_secret"]
    assert (tmp_path / "server.key_secret").read_bytes() == server_secret
    assert (tmp_path / "authorized_clients" / "client.key").read_bytes() == old_authorized
    assert (tmp_path / "authorized_clients" / "client-2.key").read_bytes() == (tmp_path / "client.key").read_bytes()
    assert create_keys(tmp_path) == []


def test_an_authorized_key_of_another_client_is_never_replaced(tmp_path):
    create_keys(tmp_path / "other")
    other_public = (tmp_path / "other" / "client.key").read_bytes()
    authorized = tmp_path / "keys" / "authorized_clients"
    authorized.mkdir(parents=True)
    (authorized / "client.key").write_bytes(other_public)
    (authorized / "client-2.key").write_bytes(other_public)
    written = sorted(str(p.relative_to(tmp_path / "keys")) for p in create_keys(tmp_path / "keys"))
    assert "authorized_clients/client-3.key" in written
    assert (authorized / "client.key").read_bytes() == other_public
    assert (authorized / "client-2.key").read_bytes() == other_public
    assert (authorized / "client-3.key").read_bytes() == (tmp_path / "keys" / "client.key").read_bytes()


def test_an_unwritable_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["worker", "keys", "--dir", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == (
        f"avatarify: error: Cannot write worker keys in {tmp_path / 'taken'}: File exists. "
        "Choose another folder with --dir.\n"
    )


def test_missing_keys_say_what_to_run(tmp_path):
    with pytest.raises(WorkerKeysError) as missing:
        load_client_keys(tmp_path)
    assert str(missing.value) == (
        f"Worker key {tmp_path / 'client.key_secret'} does not exist. Create keys with "
        f"`avatarify worker keys --dir {tmp_path}` and copy the files the other machine needs (see README)."
    )
    create_keys(tmp_path)
    for public in (tmp_path / "authorized_clients").iterdir():
        public.unlink()
    with pytest.raises(WorkerKeysError, match="would accept nobody"):
        load_server_keys(tmp_path)
    (tmp_path / "server.key").write_text("not a key\n")
    with pytest.raises(WorkerKeysError, match="server.key is unreadable"):
        load_client_keys(tmp_path)
    public_only = (tmp_path / "client.key").read_text()
    (tmp_path / "client.key_secret").write_text(public_only)
    with pytest.raises(WorkerKeysError, match="client.key_secret holds no key"):
        load_client_keys(tmp_path)


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5557", True),
        ("tcp://127.0.0.2:5557", True),
        ("tcp://localhost:5557", True),
        ("tcp://[::1]:5557", True),
        ("ipc:///tmp/avatarify-worker", True),
        ("tcp://0.0.0.0:5557", False),
        ("tcp://*:5557", False),
        ("tcp://192.168.1.20:5557", False),
        ("tcp://eth0:5557", False),
        ("tcp://gpu-host.example.com:5557", False),
        ("pgm://239.192.1.1:5555", False),
    ],
)
def test_only_loopback_counts_as_local(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_binding_beyond_loopback_needs_keys(tmp_path, capsys):
    check_bind("tcp://127.0.0.1:5557", None)
    with pytest.raises(WorkerBindError, match="without keys"):
        check_bind("tcp://0.0.0.0:5557", None)
    create_keys(tmp_path)
    check_bind("tcp://0.0.0.0:5557", load_server_keys(tmp_path))
    # Refused before any model is loaded: the checkpoint given does not even exist.
    assert main(["worker", "--bind", "tcp://*:5557", "--checkpoint", str(tmp_path / "none.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatarify: error: Refusing to listen on tcp://*:5557 without keys")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_client_timeout_must_be_seconds_above_zero(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--client-timeout", value])
    assert exit_info.value.code == 2
    assert f"--client-timeout: {value!r} is not a number of seconds above 0" in capsys.readouterr().err
