"""LivePortrait's weights: lookup order, `avatarify weights where|verify --engine liveportrait`, and
`avatarify weights download --engine liveportrait` through huggingface_hub against a real local HTTP server that
answers the hub's endpoints (paths-info with LFS sha256, HEAD and ranged GET on resolve URLs), serving the golden
set's weight files."""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from avatarify.cli.main import main
from avatarify.core import paths
from avatarify.core.errors import CheckpointError
from avatarify.model import weights as common
from avatarify.model.liveportrait import weights
from avatarify.model.liveportrait.model import load_model

COMMIT = "4f1c2a7e9b0d3c5e8f6a1b2c3d4e5f6a7b8c9d0e"


@dataclass
class FakeHub:
    """Files of one repository served the way the hub serves them, with scripted faults."""

    files: dict[str, bytes]  # repository path -> bytes
    announced: dict[str, bytes] = field(default_factory=dict)  # repository path -> the bytes paths-info describes
    cuts: dict[str, int] = field(default_factory=dict)  # repository path -> responses that break off halfway
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gets(self, repo_path: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(repo_path)]


def _handler(hub: FakeHub) -> type[http.server.BaseHTTPRequestHandler]:
    resolve = re.compile(rf"/{weights.HUB_REPO}/resolve/[^/]+/(.+)")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"", send: int | None = None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[:send] if send is not None else body)
            if send is not None:
                self.close_connection = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            hub.requests.append(("POST", self.path, None))
            wanted = urllib.parse.parse_qs(body).get("paths", [])
            infos = []
            for path in wanted:
                data = hub.announced.get(path, hub.files.get(path))
                if data is not None:
                    infos.append({"type": "file", "path": path, "size": len(data), "oid": "0" * 40,
                                  "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                          "pointerSize": 134}})
            payload = json.dumps(infos).encode()
            self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(payload))}, payload)

        def _file(self, head: bool) -> None:
            match = resolve.fullmatch(urllib.parse.unquote(self.path))
            hub.requests.append(("HEAD" if head else "GET", self.path, self.headers.get("Range")))
            data = hub.files.get(match.group(1)) if match else None
            if data is None:
                self._send(404, {"Content-Length": "0", "X-Error-Code": "EntryNotFound"})
                return
            sha = hashlib.sha256(hub.announced.get(match.group(1), data)).hexdigest()
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
            if head:
                self._send(200, {**headers, "Content-Length": str(len(data))})
                return
            start = int(re.fullmatch(r"bytes=(\d+)-.*", self.headers.get("Range") or "bytes=0-").group(1))
            body = data[start:]
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            cut = None
            if hub.cuts.get(match.group(1), 0) > 0:
                hub.cuts[match.group(1)] -= 1
                cut = len(body) // 2
            self._send(206 if start else 200, {**headers, "Content-Length": str(len(body))}, body, send=cut)

        def do_HEAD(self) -> None:
            self._file(head=True)

        def do_GET(self) -> None:
            self._file(head=False)

    return Handler


@pytest.fixture
def hub(lp_golden_dir):
    pytest.importorskip("huggingface_hub", reason="the LivePortrait download needs huggingface_hub (the model extra)")
    files = {
        f"{weights.HUB_FOLDER}/{relative}": (lp_golden_dir / Path(relative).name).read_bytes()
        for relative in weights.PUBLISHED_FILES.values()
    }
    state = FakeHub(files=files)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user data folder, redirected into tmp_path through platformdirs; no weights variables set."""
    monkeypatch.setattr(paths.platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "userdata"))
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(weights.HUB_ENDPOINT_ENV, raising=False)
    monkeypatch.setattr(common, "REPO_WEIGHTS_DIR", tmp_path / "repo_weights")
    return tmp_path / "userdata" / "weights" / "liveportrait"


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("avatarify: error:")]


def download(hub: FakeHub, dest: Path, *extra: str) -> int:
    return main(["weights", "download", "--engine", "liveportrait", "--endpoint", hub.endpoint, "--dest", str(dest),
                 *extra])


def test_download_places_the_five_checked_files_that_then_load(hub, lp_golden_dir, tmp_path, capsys, monkeypatch):
    # huggingface_hub draws its progress bars on terminals only; this variable makes it draw them here too.
    monkeypatch.setenv("TQDM_POSITION", "-1")
    dest = tmp_path / "lp"
    assert download(hub, dest) == 0
    for relative in weights.PUBLISHED_FILES.values():
        assert (dest / relative).read_bytes() == (lp_golden_dir / Path(relative).name).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["base_models", "retargeting_models"]  # no staging left
    out, err = capsys.readouterr()
    assert str(dest) in out and "100%" in err  # huggingface_hub's progress bars ran to the end
    load_model(lp_golden_dir / "config.yaml", dest)
    assert [m for m, *_ in hub.requests].count("POST") == 1  # the checksums come from the hub's metadata


def test_download_resumes_a_dropped_connection_with_a_range_request(hub, tmp_path):
    # huggingface_hub writes in 10 MB chunks: a file of several chunks, cut halfway, resumes after the last whole one.
    big = f"{weights.HUB_FOLDER}/{weights.PUBLISHED_FILES['spade_generator']}"
    hub.files[big] = os.urandom(24 << 20)
    hub.cuts[big] = 1
    assert download(hub, tmp_path / "lp") == 0
    assert (tmp_path / "lp" / weights.PUBLISHED_FILES["spade_generator"]).read_bytes() == hub.files[big]
    first, resumed = hub.gets(big)
    assert first is None
    start = int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1))
    assert 0 < start <= len(hub.files[big]) // 2


def test_checksum_mismatch_is_discarded_and_named(hub, tmp_path, capsys):
    path = f"{weights.HUB_FOLDER}/{weights.PUBLISHED_FILES['warping_module']}"
    hub.announced[path] = hub.files[path]
    hub.files[path] = hub.files[path][:-10] + b"x" * 10  # what arrives is not what the hub's metadata says
    dest = tmp_path / "lp"
    assert download(hub, dest) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "checksum mismatch" in line and hashlib.sha256(hub.announced[path]).hexdigest() in line
    assert not (dest / weights.PUBLISHED_FILES["warping_module"]).exists()
    assert not list((dest / weights.STAGING_NAME).rglob("warping_module.pth"))
    # The files checked before it stay: a second run fetches only what is missing.
    assert (dest / weights.PUBLISHED_FILES["motion_extractor"]).is_file()
    hub.files[path] = hub.announced.pop(path)
    hub.requests.clear()
    assert download(hub, dest) == 0
    fetched = [p.rsplit("/", 1)[1] for m, p, _ in hub.requests if m == "GET"]
    assert fetched == ["warping_module.pth", "spade_generator.pth", "stitching_retargeting_module.pth"]


def test_existing_files_are_kept_or_replaced_only_with_force(hub, tmp_path, capsys):
    dest = tmp_path / "lp"
    assert download(hub, dest) == 0
    hub.requests.clear()
    assert download(hub, dest) == 0
    assert [m for m, *_ in hub.requests] == ["POST"]  # checked locally, nothing downloaded
    mine = dest / weights.PUBLISHED_FILES["appearance_feature_extractor"]
    mine.write_bytes(b"my own file")
    capsys.readouterr()
    assert download(hub, dest) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "--force" in line and str(mine) in line
    assert mine.read_bytes() == b"my own file"
    assert download(hub, dest, "--force") == 0
    assert mine.read_bytes() == hub.files[f"{weights.HUB_FOLDER}/{weights.PUBLISHED_FILES['appearance_feature_extractor']}"]


def test_unreachable_hub_is_one_line(tmp_path, capsys):
    pytest.importorskip("huggingface_hub", reason="the LivePortrait download needs huggingface_hub (the model extra)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "lp"
    code = main(["weights", "download", "--engine", "liveportrait", "--endpoint", f"http://127.0.0.1:{port}",
                 "--dest", str(dest)])
    assert code == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert f"127.0.0.1:{port}" in line and "--checkpoint" in line
    assert not dest.exists() or not any(dest.rglob("*.pth"))


def test_fomm_only_options_are_refused(tmp_path, capsys):
    assert main(["weights", "download", "--engine", "liveportrait", "--md5", "0" * 32, "--dest", str(tmp_path)]) == 2
    assert "--endpoint" in error_lines(capsys.readouterr().err)[0]


def test_default_destination_is_found_by_the_lookup(hub, user_dir, monkeypatch, capsys):
    monkeypatch.setenv(weights.HUB_ENDPOINT_ENV, hub.endpoint)
    assert main(["weights", "download", "--engine", "liveportrait"]) == 0
    assert weights.find_weights_folder() == user_dir
    capsys.readouterr()
    assert main(["weights", "where", "--engine", "liveportrait"]) == 0
    out = capsys.readouterr().out
    assert f"{user_dir} [found]" in out and f"${weights.WEIGHTS_ENV}: not set" in out
    assert out.strip().splitlines()[-1] == f"Using {user_dir}"


def test_lookup_order_and_named_folders_must_be_complete(lp_golden_dir, user_dir, tmp_path, monkeypatch):
    complete = [tmp_path / name for name in ("explicit", "env", "user", "repo")]
    for folder in complete:
        shutil.copytree(lp_golden_dir, folder)
    shutil.copytree(tmp_path / "user", user_dir)
    shutil.copytree(tmp_path / "repo", common.REPO_WEIGHTS_DIR / "liveportrait")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "env"))
    assert weights.find_weights_folder(tmp_path / "explicit") == tmp_path / "explicit"
    assert weights.find_weights_folder() == tmp_path / "env"
    monkeypatch.delenv(weights.WEIGHTS_ENV)
    assert weights.find_weights_folder() == user_dir
    (user_dir / "spade_generator.pth").unlink()  # incomplete: skipped, not used
    assert weights.find_weights_folder() == common.REPO_WEIGHTS_DIR / "liveportrait"
    shutil.rmtree(common.REPO_WEIGHTS_DIR)
    with pytest.raises(CheckpointError, match="weights download --engine liveportrait"):
        weights.find_weights_folder()
    with pytest.raises(CheckpointError, match="spade_generator.pth is missing"):
        weights.find_weights_folder(user_dir)  # named by the user: an error, never a silent fallback
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="does not exist"):
        weights.find_weights_folder()


def test_verify(lp_golden_dir, tmp_path, capsys):
    config = str(lp_golden_dir / "config.yaml")
    assert main(["weights", "verify", "--engine", "liveportrait", str(lp_golden_dir), "--config", config]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["weights", "verify", "--engine", "liveportrait", str(lp_golden_dir)]) == 2  # published config
    (line,) = error_lines(capsys.readouterr().err)
    assert "does not fit the model config" in line
